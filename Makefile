# The two set-up commands are `make demo` and `make test`; both work on a fresh clone with only
# python3, make and apt. Everything else here is a helper they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# sudo only when not already root (CI runs as root and may have no sudo at all).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Real parts for the tests: a PostgreSQL server.
APT_PACKAGES := postgresql
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test apt-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

apt-deps:
	@missing=""; \
	for package in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: $(VENV)/.installed
	@echo "== 1. init the store (subscribers.db, embedded SQLite)"
	$(BIN)/newsletter init
	@echo "== 2. import the sample signup export (example.org addresses only)"
	$(BIN)/newsletter subscribers import samples/signup-export.csv --confirmed --tag faq-updates --tag client-stories
	@echo "== 3. stats"
	$(BIN)/newsletter subscribers stats

test: apt-deps $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/import_bench.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache outbox subscribers.db subscribers.db-*

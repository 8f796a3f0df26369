# The two set-up commands are `make demo` and `make test`; both work on a fresh clone with only
# python3, make and apt. Everything else here is a helper they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# sudo only when not already root (CI runs as root and may have no sudo at all).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Real parts for the tests: a PostgreSQL server, and Chromium for the signup page's browser test
# (driven by Playwright with executable_path=/usr/bin/chromium; no browser is ever downloaded).
APT_PACKAGES := postgresql chromium chromium-driver
# The delivery benchmark sends into Postfix's smtp-sink and compares with smtp-source.
BENCH_APT_PACKAGES := postfix
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test apt-deps install-apt bench clean

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
	@$(MAKE) --no-print-directory install-apt PACKAGES="$(APT_PACKAGES)"

install-apt:
	@missing=""; \
	for package in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if echo "$$missing" | grep -q postfix; then \
	    echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
	  fi; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: $(VENV)/.installed
	@echo "== 1. init the store (subscribers.db, embedded SQLite)"
	$(BIN)/newsletter init
	@echo "== 2. import the sample signup export (example.org addresses only)"
	$(BIN)/newsletter subscribers import samples/signup-export.csv --confirmed --tag faq-updates --tag client-stories
	@echo "== 3. lint and build the seed campaigns into build/"
	$(BIN)/newsletter campaign lint faq-addiction
	$(BIN)/newsletter campaign lint --strict client-stories
	$(BIN)/newsletter campaign build faq-addiction -o build
	$(BIN)/newsletter campaign build client-stories -o build
	@echo "== 4. send the stories campaign through the file transport into outbox/ (a rerun sends nothing twice)"
	@echo "$(BIN)/newsletter campaign send client-stories --transport file:outbox/ --yes"
	@# Links are signed with the developer's NEWSLETTER_SECRET_KEY if set, else with a throwaway key;
	@# either way it is never printed.
	@NEWSLETTER_SECRET_KEY="$${NEWSLETTER_SECRET_KEY:-$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))')}" \
	  $(BIN)/newsletter campaign send client-stories --transport file:outbox/ --yes
	@echo "== 5. summary"
	$(BIN)/newsletter subscribers stats
	$(BIN)/newsletter campaign status client-stories
	@echo "Open the built email: $(CURDIR)/build/client-stories.html"
	@echo "The sent messages (one .eml per subscriber): $(CURDIR)/outbox/"

test: apt-deps $(VENV)/.installed-dev
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-dev
	@$(MAKE) --no-print-directory install-apt PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/send_bench.py
	$(BIN)/python bench/deid_recall.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache outbox subscribers.db subscribers.db-*

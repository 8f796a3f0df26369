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
# The delivery benchmark sends into Postfix's smtp-sink and compares with smtp-source; its
# PostgreSQL figures start a throwaway server.
BENCH_APT_PACKAGES := postfix postgresql
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test check apt-deps install-apt bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }

# Dependencies come from the hash-locked files (refresh them with `make lock`); the project itself is
# then installed on top without touching them. setuptools is in the lock, so no build step fetches
# anything unpinned.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml requirements-dev.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
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
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	  $(SUDO) apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing; \
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

test: apt-deps $(VENV)/.installed-dev check
	$(BIN)/python -m pytest

# The checked habits: lint, formatting and types over the package (settings in pyproject.toml).
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Refresh the hash-locked dependency files from the ranges in pyproject.toml.
lock: $(VENV)/.installed-dev
	$(BIN)/python -m piptools compile --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	  --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(BIN)/python -m piptools compile --quiet --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
	  --no-emit-index-url --no-emit-find-links --extra dev -o requirements-dev.lock pyproject.toml

bench: $(VENV)/.installed-dev
	@$(MAKE) --no-print-directory install-apt PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/render_bench.py
	$(BIN)/python bench/send_bench.py
	$(BIN)/python bench/startup_bench.py
	$(BIN)/python bench/deid_recall.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache outbox subscribers.db subscribers.db-*

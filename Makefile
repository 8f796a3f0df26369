# The two set-up commands are `make demo` and `make test`; both work on a fresh clone with only
# python3, make and apt. Everything else here is a helper they use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# sudo only when not already root (CI runs as root and may have no sudo at all).
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# Real parts for the tests: a PostgreSQL server, Chromium for the signup page's browser test
# (driven by Playwright with executable_path=/usr/bin/chromium; no browser is ever downloaded), and
# SpamAssassin, which lint runs offline on every campaign's message; Dovecot for the bounce mailbox
# (the tests start it with a throw-away configuration).
APT_PACKAGES := postgresql chromium chromium-driver spamassassin dovecot-imapd
# The delivery benchmark sends into Postfix's smtp-sink and compares with smtp-source; the spam
# benchmark times SpamAssassin.
# The delivery benchmark sends into Postfix's smtp-sink and compares with smtp-source (its PostgreSQL
# figures start a throwaway server); the spam benchmark times SpamAssassin.
BENCH_APT_PACKAGES := postfix postgresql spamassassin
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# The development secret key of `make demo` and `make serve`: made once, kept out of git (.gitignore)
# and readable by its owner only. The program itself reads secrets only from its environment
# (NEWSLETTER_SECRET_KEY): these targets pass the key there, unless one is set already.
DEV_KEY := .newsletter-dev-key
WITH_DEV_KEY = NEWSLETTER_SECRET_KEY="$${NEWSLETTER_SECRET_KEY:-$$(cat $(DEV_KEY))}"
# Where `make serve` listens, and so where the links in the demo's emails point: a server on a loopback
# address builds its links from its own address (see `newsletter serve --help`).
LOCAL_URL := http://127.0.0.1:8000

.PHONY: demo serve test check fuzz apt-deps install-apt bench lock clean

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

$(DEV_KEY):
	@umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@.part && mv $@.part $@
	@echo "Made a development secret key in $@ (readable by you only, ignored by git)"

demo: $(VENV)/.installed $(DEV_KEY)
	@echo "== 1. init the store (subscribers.db, embedded SQLite)"
	$(BIN)/newsletter init
	@echo "== 2. import the sample signup export (example.org addresses only): each person's own topics,"
	@echo "      consent and signup time; those who said no to consent are not imported"
	$(BIN)/newsletter subscribers import samples/signup-export.csv --confirmed
	@echo "== 3. lint the FAQ and the seed campaigns, and build the campaigns into build/"
	$(BIN)/newsletter faq lint
	$(BIN)/newsletter campaign lint faq-addiction
	$(BIN)/newsletter campaign lint --strict client-stories
	$(BIN)/newsletter campaign build faq-addiction -o build
	$(BIN)/newsletter campaign build client-stories -o build
	@echo "== 4. send the seed campaigns, each to those who chose its topic, through the file transport into"
	@echo "      outbox/ (a rerun sends nothing twice); their links point at $(LOCAL_URL), where make serve"
	@echo "      listens, and are signed with the development key in $(DEV_KEY)"
	@echo "NEWSLETTER_PUBLIC_BASE_URL=$(LOCAL_URL) $(BIN)/newsletter campaign send faq-addiction --transport file:outbox/ --yes"
	@echo "NEWSLETTER_PUBLIC_BASE_URL=$(LOCAL_URL) $(BIN)/newsletter campaign send client-stories --transport file:outbox/ --yes"
	@# The key is never printed: it goes from its file into the environment.
	@chmod 600 $(DEV_KEY)
	@export $(WITH_DEV_KEY) NEWSLETTER_PUBLIC_BASE_URL=$(LOCAL_URL); \
	  $(BIN)/newsletter campaign send faq-addiction --transport file:outbox/ --yes && \
	  $(BIN)/newsletter campaign send client-stories --transport file:outbox/ --yes
	@echo "== 5. the FAQ answers subscribers have not heard yet (faq-addiction carried two of the seven)"
	$(BIN)/newsletter faq changes
	@echo "== 6. summary"
	$(BIN)/newsletter subscribers stats
	$(BIN)/newsletter campaign status faq-addiction
	$(BIN)/newsletter campaign status client-stories
	@echo "Open the built emails: $(CURDIR)/build/faq-addiction.html and $(CURDIR)/build/client-stories.html"
	@echo "The sent messages (one .eml per subscriber and campaign; Return-Path is the VERP envelope sender): $(CURDIR)/outbox/"
	@echo "== 7. what comes back: a hard bounce and a complaint about two addresses the demo mailed (a rerun changes nothing)"
	$(BIN)/newsletter bounces ingest samples/bounces/
	$(BIN)/newsletter campaign report client-stories
	@echo "Draft the next FAQ update from the answers listed in step 5: $(BIN)/newsletter campaign new SLUG --from-faq"
	@echo "Try the subscriber side: make serve, then open $(LOCAL_URL)/subscribe (see the README's quick start)"

# The web endpoint on $(LOCAL_URL), with the development key: the links in the demo's emails work here.
serve: $(VENV)/.installed $(DEV_KEY)
	@chmod 600 $(DEV_KEY)
	@$(WITH_DEV_KEY) $(BIN)/newsletter serve --host 127.0.0.1 --port 8000

test: apt-deps $(VENV)/.installed-dev check
	$(BIN)/python -m pytest

# The checked habits: lint, formatting and types over the package (settings in pyproject.toml).
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The property and fuzz tests (tests/test_fuzz_*.py) on a long budget; `make test` runs them briefly.
fuzz: $(VENV)/.installed-dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -q tests/test_fuzz_*.py

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
	$(BIN)/python bench/spam_bench.py
	$(BIN)/python bench/bounce_bench.py
	$(BIN)/python bench/timing_bench.py --probe

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache outbox subscribers.db subscribers.db-* $(DEV_KEY)

# The quick start: `make run` serves the chat, `make test` runs the tests, each in the virtual environment .venv
# (made by the first of them; a stock Debian/Ubuntu Python refuses `pip install` outside one).
# Prerequisites (Python 3.11+, Node.js and npm, MariaDB, Redis, Chromium): README.md, "Quick start".
#
#   make run ARGS="--port 8000"      arguments for run_server.py (default: SQLite in chat.db, port 5000)
#   make test PYTEST_ARGS="-x tests/test_wscat.py"
#   make venv VENV_FLAGS=--system-site-packages   reuse what the system Python has (.ci/run does this)

PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test venv deps dev-deps node-deps browser clean-venv

run: deps
	$(PY) run_server.py $(ARGS)

test: dev-deps node-deps browser
	$(PY) -m pytest $(PYTEST_ARGS)

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

# Stamps: pip runs again only when a requirements file is newer than the last install.
deps: $(VENV)/.deps
$(VENV)/.deps: requirements.txt | $(PY)
	$(PIP) -r requirements.txt
	touch $@

dev-deps: $(VENV)/.dev-deps
$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) -r requirements-dev.txt
	touch $(VENV)/.deps $@

# wscat, which the terminal-client tests drive, into node_modules/.bin (package.json pins it).
node-deps: node_modules/.bin/wscat
node_modules/.bin/wscat: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The browser tests drive Chromium through Python Playwright: `chromium` on PATH (Debian's package), CHAT_TEST_CHROMIUM,
# or else Playwright's own, which this fetches once into ~/.cache/ms-playwright (where that download is not allowed,
# install chromium instead; without any, the browser tests are skipped outside CI, with the reason).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [ -n "$$CHAT_TEST_CHROMIUM" ]; then :; \
	elif ls $${PLAYWRIGHT_BROWSERS_PATH:-$$HOME/.cache/ms-playwright}/chromium-*/chrome-linux*/chrome >/dev/null 2>&1; then :; \
	else echo "no chromium on PATH: $(PY) -m playwright install chromium"; \
	  $(PY) -m playwright install chromium || echo "could not; install it with: sudo apt-get install chromium"; fi

clean-venv:
	rm -rf $(VENV)

# Chaosplane developer entry points. Everything runs from the .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install install-test run test lint bench screenshots

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamp files: pip runs again only when a requirements file changed.
$(VENV)/.installed: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The system packages come first: NetfilterQueue (the agent's userspace delayer) compiles against them.
$(VENV)/.installed-test: requirements-test.txt requirements-agent.txt requirements.txt | $(PY)
	$(PY) -m devtools.sysdeps
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

run: install
	$(PY) -m devtools.run

test: install-test
	$(PY) -m devtools.testrun $(PYTEST_ARGS)

# The main portal pages of the demo tenant, rendered by headless Chromium (README.md shows three).
screenshots: install-test
	$(PY) -m devtools.screenshots

lint: install-test
	$(VENV)/bin/ruff check .

bench: install-test
	$(PY) bench/api_latency.py
	@if [ "$$(id -u)" = 0 ]; then $(PY) bench/agent_inject.py && $(PY) bench/run_latency.py; \
	else echo "bench/agent_inject.py and bench/run_latency.py need root (network namespaces): skipped"; fi

# Every target sets up what it needs: on a fresh machine `make demo` and `make test` just work.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo-live install demo sandbox test lint type format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("syncd needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The main job: the four sandboxes plus the daemon on a local SQLite file, run to
# convergence once with a summary per account (`demo-live` keeps the daemon running).
demo: $(VENV)/.installed
	$(VENV)/bin/syncd --config config/demo.toml demo --once

demo-live: $(VENV)/.installed
	$(VENV)/bin/syncd --config config/demo.toml demo

sandbox: $(VENV)/.installed
	$(VENV)/bin/syncd sandbox --listen 127.0.0.1:8900 --control

# Two workers: much of the suite waits on sandboxes and subprocesses, so two processes
# halve the wall time on a 2-core machine. PYTEST_ARGS="-n 0" runs it in one process.
test: $(VENV)/.installed
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

type: $(VENV)/.installed
	$(VENV)/bin/mypy

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

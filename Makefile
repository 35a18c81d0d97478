# domainlm: two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow lint format clean bench-quick guide

setup: $(VENV)/.installed

# torch is installed first, pinned, so pip takes the CPU wheel; the project's range then installs nothing more.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	touch $@

demo: setup
	$(VENV)/bin/domainlm demo

test: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

# every benchmark's smoke run, one after the other (each prints its table and a RESULT line; BENCHMARKS.md)
BENCHMARKS := $(sort $(filter-out benchmarks/_%,$(wildcard benchmarks/*.py)))
bench-quick: setup
	$(foreach b,$(BENCHMARKS),$(PY) $(b) --quick &&) true

# every output and figure docs/guide.md quotes, regenerated (about 30 minutes; an idle machine)
guide: setup
	$(PY) scripts/guide.py

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

format: setup
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf runs .pytest_cache

# Entry points: `make` runs the whole artifact, `make test` runs the tests.
# Both create .venv from requirements.lock (exact pins) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSDEPS := $(VENV)/.system-deps

.PHONY: all run test lint format bench clean

all: run

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(SYSDEPS): scripts/install-system-deps.sh | $(STAMP)
	./scripts/install-system-deps.sh
	touch $(SYSDEPS)

run: $(STAMP) $(SYSDEPS)
	$(PY) -m prophet_model run

test: $(STAMP) $(SYSDEPS)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py

clean:
	rm -rf results book/_build .pytest_cache .ruff_cache .hypothesis

# Entry points: `make` runs the whole artifact, `make test` runs the tests.
# Both create .venv from requirements.lock (exact pins) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSDEPS := $(VENV)/.system-deps

INPUTS := _config.yml $(wildcard catalog/*.yml) $(wildcard prophet_model/*.py) $(wildcard templates/*)
RESULTS := results/data/all_systems_comparison.csv
PAPER := results/paper/macros.tex
BOOK := book/_build/html/index.html
BOOK_SOURCES := $(wildcard book/*.md book/*.yml book/_templates/* book/_static/*) benchmarks/results.json

.PHONY: all run pipeline paper book test lint format bench clean

# The whole artifact: model outputs, executed notebooks, the paper's LaTeX, the book.
all: $(RESULTS) pipeline $(PAPER) $(BOOK)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(SYSDEPS): scripts/install-system-deps.sh | $(STAMP)
	./scripts/install-system-deps.sh
	touch $(SYSDEPS)

$(RESULTS): $(INPUTS) | $(STAMP) $(SYSDEPS)
	$(PY) -m prophet_model run

$(PAPER): $(RESULTS) $(wildcard templates/*.tex.j2)
	$(PY) -m prophet_model paper

# The book: generated pages from the results, then Jupyter Book with warnings as errors.
$(BOOK): $(RESULTS) $(PAPER) $(BOOK_SOURCES) $(wildcard book/systems/*.ipynb book/cross_system.ipynb book/validation.ipynb book/sensitivity.ipynb)
	$(PY) -m prophet_model book
	$(VENV)/bin/jupyter-book build book/ -W --keep-going --quiet

book: $(BOOK)

run: $(STAMP) $(SYSDEPS)
	$(PY) -m prophet_model run

pipeline: $(RESULTS) | $(STAMP)
	$(PY) -m prophet_model pipeline

paper: $(RESULTS) | $(STAMP)
	$(PY) -m prophet_model paper

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
	$(PY) benchmarks/bench_make.py

clean:
	rm -rf results book/_build book/_generated book/systems book/cross_system.ipynb book/validation.ipynb book/sensitivity.ipynb book/.pipeline-cache .pytest_cache .ruff_cache .hypothesis

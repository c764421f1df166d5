# Entry points: `make` runs the whole artifact, `make test` runs the tests.
# Every target first runs scripts/venv.sh: it refuses a Python older than 3.11, rebuilds a .venv made
# from another Python, and installs requirements.lock (exact pins) when it changed.
#
# The artifact's steps run in one fixed order (results -> paper -> notebooks -> book), also under
# `make -jN`, and each step decides for itself what is stale: `run --if-stale` and `paper --if-stale`
# read the results folder's manifest (config hash, inputs hash and sha256 of every file), the
# pipeline keeps a per-notebook cache, and `book --build` rebuilds the site only when a source
# changed (from scratch when pages were added or removed). So any sequence of edits and hand-run
# commands ends, after `make`, with CSVs, LaTeX and book consistent with the config.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SYSDEPS := $(VENV)/.system-deps
# Test files run in parallel in one process more than the cores (at most 4): a file's tests and its module fixtures
# stay in one process, and part of the time a test waits for a subprocess, a kernel or the browser, which the
# extra process fills (2 cores: 575 s with two processes, 531 s with three, 2026-12-08). The files start in the
# order of tests/conftest.py (the longest first; xdist would otherwise start the files with the most tests first,
# and the one-test end-to-end sequence last). `make test PYTEST_JOBS=` runs them one after another.
# Expanded only when `make test` runs its recipe (a deferred `=`): every other make, the no-op one included, would
# otherwise start an interpreter to count the cores while reading this file.
TEST_PROCESSES = $(shell $(PY) -c "import os; print(min(4, (os.cpu_count() or 1) + 1))" 2>/dev/null || echo 2)
PYTEST_JOBS ?= -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

.PHONY: all venv results run paper pipeline book test lint format bench examples clean distclean

# Nothing changed: one process says so for all four steps (`uptodate`, workflow/fastpath.py), run by venv.sh
# beside its interpreter check when the .venv and the system packages need nothing, and the steps are not run.
# Anything else (venv.sh's exit 3) runs them: `make book`, as the child of an `uptodate` that dies with make.
all:
	@./scripts/venv.sh "$(PYTHON)" --uptodate; rc=$$?; [ $$rc -eq 3 ] || exit $$rc; \
	  exec $(PY) -m prophet_model uptodate --else $(MAKE) --no-print-directory book

venv:
	@./scripts/venv.sh "$(PYTHON)"

$(SYSDEPS): scripts/install-system-deps.sh | venv
	./scripts/install-system-deps.sh
	touch $(SYSDEPS)

results: venv $(SYSDEPS)
	$(PY) -m prophet_model run --if-stale

paper: results
	$(PY) -m prophet_model paper --if-stale

pipeline: paper
	$(PY) -m prophet_model pipeline

book: pipeline
	$(PY) -m prophet_model book --build

# A full rerun, whatever the manifest says.
run: venv $(SYSDEPS)
	$(PY) -m prophet_model run

test: venv $(SYSDEPS)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q $(PYTEST_JOBS)

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Speed figures, measured in a copy of the checkout: results/ and tracked files are not touched.
# They are written to benchmarks/output/results.json.
bench: venv
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_make.py

# The example sessions of README.md and book/getting_started.md, run again in a copy of the checkout
# and their outputs rewritten (scripts/cli_examples.py --check only compares).
examples: venv
	$(PY) scripts/cli_examples.py

# Removes only what the artifact made: the files listed in the results manifest, its logs and
# marker, what a killed command left (staging folders, journals, partial notebooks), the executed
# notebooks, generated pages and built site the book folder's list names, and its cache. Files you put in
# results/ or book/ stay. `clean` takes the folders' locks: a command still using them goes first.
clean:
	@if [ -x $(PY) ]; then $(PY) -m prophet_model clean; else echo "no $(VENV): nothing of results/ is removed (run make first)"; \
	  rm -rf book/_build book/_generated book/systems book/cross_system.ipynb book/validation.ipynb book/sensitivity.ipynb book/.pipeline-cache; fi
	rm -rf .pytest_cache .ruff_cache .hypothesis benchmarks/output

distclean: clean
	rm -rf $(VENV)

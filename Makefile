# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install the package (editable) with constraints.txt,
# which pins torch to the local CPU wheel; pyproject.toml itself only asks torch>=2.3.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-core: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/equivision demo --out runs/demo --overwrite

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# The quick set of benchmarks (a few minutes on 2 cores); rows are appended to
# benchmarks/results/<benchmark>.jsonl, then RESULTS.md's generated sections are rewritten.
# `benchmarks/report.py --compare` checks them against benchmarks/references/.
bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/training_overhead.py --quick
	$(BIN)/python benchmarks/metrics.py --quick
	$(BIN)/python benchmarks/reconstruction_frames.py --quick --threads 1
	$(BIN)/python benchmarks/gcnn.py --quick
	$(BIN)/python benchmarks/sphere.py --quick --threads 1
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/spherical_cnn.py --quick --threads 1
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/render.py --quick
	$(BIN)/python benchmarks/report.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

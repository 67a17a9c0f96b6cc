# The README's two commands: `make demo` (set up, then run the main job on a
# synthetic delivery) and `make test` (set up when needed, then run the tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.almaqa-installed
DEMO_DIR ?= demo
# mpi: casampi and Open MPI's mpirun, so the MPI tests run (tests/scale)
EXTRAS ?= data,test,manual,mpi

# Best interpreter available: Python 3.13 (pyenv or PATH), else python3.
BOOT_PYTHON := $(shell for p in "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 python3.13 python3; do \
	command -v "$$p" >/dev/null 2>&1 && { echo "$$p"; break; }; done)

.PHONY: setup demo test lint clean-demo

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV) with $(BOOT_PYTHON)"; $(BOOT_PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

setup: $(STAMP)

demo: setup
	$(PY) -m almaqa_casa.demo --out $(DEMO_DIR)

# Two pytest-xdist workers (the CI machine has 2 cores); files stay whole on one worker,
# synthetic deliveries are built once and shared. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

lint: setup
	$(VENV)/bin/ruff check .

clean-demo:
	rm -rf $(DEMO_DIR)

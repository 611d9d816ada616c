# The README's commands. Everything runs inside .venv, created on first use from pinned versions.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= quick
PYTHON ?= python3
export PIP_CACHE_DIR := $(CURDIR)/.pip-cache
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONWARNINGS := ignore::DeprecationWarning
# another active virtualenv must not leak into ours (IPython adds $VIRTUAL_ENV to sys.path)
unexport VIRTUAL_ENV

.PHONY: install course reference test check-sync docs lab clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

## make course [SCALE=smoke|quick|full]: run every stage notebook with papermill, write runs/course_<ts>/REPORT.md
course: install
	$(BIN)/wm-course --scale $(SCALE)

## make test: notebooks and library in sync, notebooks clean, pytest. Every notebook runs once at smoke scale: the stage
## notebooks (NN < 90) under papermill inside pytest (tests/test_course.py, as `make course` runs them), the tooling
## notebooks (90_course, 91_cli, 92_bench, index) with nbdev-test here. pytest runs on 2 processes (pytest-xdist): the
## course's smoke run takes one while the other runs the rest.
test: install check-sync
	$(BIN)/nbdev-test --n-workers 2 --timing --skip-file-re '^[0-8][0-9]_'
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

check-sync: install
	PATH=$(BIN):$$PATH $(BIN)/python tools/check_sync.py

## make reference: run the course at quick and store its outputs (figures, tables, numbers) in the committed stage
## notebooks, each naming the run (date, commit, scale) they come from. Stages that fail keep their old outputs.
reference: install
	$(BIN)/wm-course --scale $(SCALE) --out runs || echo "make reference: some stages failed; storing the outputs of those that ran"
	$(BIN)/python tools/reference.py "$$(ls -d runs/course_* | sort | tail -1)"
	$(BIN)/nbdev-clean
	$(BIN)/python tools/readme.py

## make docs: the Quarto site (nbdev-docs) where Quarto is installed; otherwise a static site of the notebooks with
## their stored outputs in _docs/ (tools/site.py, nbconvert): open _docs/index.html
docs: install
	@if command -v quarto >/dev/null 2>&1; then $(BIN)/nbdev-docs; \
	else echo "quarto is not installed here: building the nbconvert site instead"; $(BIN)/python tools/site.py --out _docs; fi

## make lab [PORT=8888]: JupyterLab on nbs/ with the course's environment (its python3 kernel; plots inline)
PORT ?= 8888
lab: install
	cd nbs && env -u MPLBACKEND PATH=$(CURDIR)/$(BIN):$$PATH PYTHONPATH=$(CURDIR) $(CURDIR)/$(BIN)/jupyter lab --port $(PORT) --notebook-dir . $$([ $$(id -u) -eq 0 ] && echo --allow-root)

clean-venv:
	rm -rf $(VENV)

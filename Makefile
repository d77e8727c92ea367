# Two-command quickstart: `make demo` runs the main job, `make test` runs the linter and the suite.
# Each target creates (or reuses) the virtual environment .venv in the repository root,
# installed from the pinned set in constraints.txt (libtpu included: the tests compile for TPU
# topologies on the CPU).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv

venv: $(STAMP)

$(STAMP): setup.py constraints.txt requirements-beam.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e ".[hf,test,tpu]"
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements-beam.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/t5x-cot demo $(ARGS)

test: $(STAMP)
	$(VENV)/bin/ruff check t5x_cot tasks launch bench tests
	$(VENV)/bin/python -m pytest $(ARGS)

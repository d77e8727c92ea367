# Two-command quickstart: `make demo` runs the main job, `make test` runs the suite.
# Each target creates (or reuses) the virtual environment .venv in the repository root,
# installed from the pinned set in constraints.txt.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test venv

venv: $(STAMP)

$(STAMP): setup.py constraints.txt requirements-beam.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e ".[hf,test]"
	$(VENV)/bin/python -m pip install -q --no-deps -r requirements-beam.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/t5x-cot demo $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)

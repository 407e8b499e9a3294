# Two commands do all set-up on a fresh machine:
#   make demo   virtualenv + install + the project `all` workflow on the embedded sample
#   make test   virtualenv + install + the whole test suite (CI runs this)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,project,transformers,bench]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m spacy project run all project

test: install
	$(PY) -m pytest -ra

test-fast: install
	$(PY) -m pytest -ra -m "not slow and not transformers"

clean:
	rm -rf $(VENV) project/corpus project/training project/metrics project/packages project/project.lock

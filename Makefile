# The README's two commands: `make run` and `make test`. Both install first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONCORD := $(VENV)/bin/concord
export CONCORD_HOME ?= $(CURDIR)/var

.PHONY: install run test bench lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

run: install
	$(CONCORD) demo

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/run.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy concord ingestion features models training policies serving simulator benchmarks

clean:
	rm -rf $(VENV) var

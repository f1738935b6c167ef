# Two commands on a fresh machine with Python >= 3.11 and make:
#   make demo   set up .venv and run the demo on the embedded default (SQLite + sandbox)
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo --once

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/mapping.py
	$(BIN)/python bench/journal.py

clean:
	rm -rf $(VENV) var/demo.db* .pytest_cache

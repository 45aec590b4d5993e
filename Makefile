# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

demo: install
	$(BIN)/dmeta demo --out dmeta-demo

test: install-test
	$(BIN)/ruff check dmeta tests benchmarks
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) dmeta-demo .pytest_cache

# ssl_gym: `make demo` runs the main job on the embedded defaults, `make test` the suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ssl-gym demo --out outputs/gallery

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ssl_gym tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy ssl_gym

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache

# Both targets set themselves up: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= runs/demo

.PHONY: demo test lint bench clean

$(BIN)/keras-initx: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/keras-initx
	$(BIN)/keras-initx demo --out $(OUT)

test: $(BIN)/keras-initx
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(BIN)/keras-initx
	$(BIN)/python benchmarks/initializers.py
	$(BIN)/python benchmarks/callback_overhead.py

clean:
	rm -rf $(VENV) runs build *.egg-info

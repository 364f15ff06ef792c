# The two commands of the README: `make demo` and `make test`. Both install what is missing.
# `make bench` runs the benchmark (README, "Benchmark"); `make fuzz` the hostile-input
# properties with the nightly number of examples (README, "Hostile input").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench fuzz chaos

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml deploy/kafka/pom.xml
	deploy/system-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	deploy/kafka/kafka.sh fetch
	touch $@

demo: install
	$(BIN)/backbone demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -r backbone cli connectors streams simulators bench
	$(BIN)/backbone schemas check

test: lint
	$(BIN)/python -m pytest

fuzz: install
	HYPOTHESIS_PROFILE=nightly $(BIN)/python -m pytest tests/test_hostile_input.py

chaos: install
	$(BIN)/python -m pytest -m chaos -s tests/test_chaos.py tests/test_broker_outage.py

bench: install
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/backbone bench

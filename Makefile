# agenthost: `make serve` sets up and runs the server; `make test` runs lint, types and the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint typecheck pytest bench constraints clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/agenthost serve $(ARGS)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py $(ARGS)

constraints:
	rm -rf /tmp/agenthost-freeze && $(PYTHON) -m venv /tmp/agenthost-freeze
	/tmp/agenthost-freeze/bin/pip install -q --upgrade pip && /tmp/agenthost-freeze/bin/pip install -q '.[dev]'
	{ head -n 2 constraints.txt; /tmp/agenthost-freeze/bin/pip freeze | grep -v '^agenthost'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache

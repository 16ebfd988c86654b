# Two commands on a fresh machine: `make run` (the gateway) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_TIKTOKEN := $(abspath ../shared/tiktoken-cache)
ifneq ($(wildcard $(SHARED_TIKTOKEN)),)
export TIKTOKEN_CACHE_DIR ?= $(SHARED_TIKTOKEN)
endif

.PHONY: run test bench bench-ledger bench-context bench-instructions lint format compat

# setup.py compiles these with mypyc (pyproject.toml, tool.xvckit.compiled): an edit to one of
# them needs a new build
COMPILED := $(shell python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['xvckit']['compiled'])")

$(BIN)/.installed: pyproject.toml setup.py $(COMPILED)
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

run: $(BIN)/.installed
	$(BIN)/xvckit up

# Two workers: CI's machine has 2 cores (~7 minutes, against ~12 in one process); more are untried.
test: $(BIN)/.installed
	$(BIN)/pytest -q -n 2

lint: $(BIN)/.installed
	$(BIN)/ruff check setup.py src tests bench compat
	$(BIN)/ruff format --check setup.py src tests bench compat

format: $(BIN)/.installed
	$(BIN)/ruff format setup.py src tests bench compat
	$(BIN)/ruff check --fix setup.py src tests bench compat

bench: $(BIN)/.installed
	$(BIN)/python bench/gateway_overhead.py --json bench/.work/gateway_overhead.json $(BENCH_ARGS)
	$(BIN)/python bench/gateway_keys.py
	$(BIN)/python bench/reliability.py --json bench/.work/reliability.json

bench-ledger: $(BIN)/.installed  # builds a 10-million-row ledger once (minutes, 2.6 GB in bench/.work)
	$(BIN)/python bench/ledger_query.py

bench-context: $(BIN)/.installed  # issue 6's context recall; installs aider-chat into bench/.work once
	$(BIN)/python bench/context_recall.py --json bench/.work/context_recall.json $(BENCH_ARGS)

bench-instructions: $(BIN)/.installed  # the gateway's instructions per request under callgrind (repeatable to ~0.1%)
	$(BIN)/python bench/gateway_instructions.py $(BENCH_ARGS)

compat: $(BIN)/.installed  # real clients through `xvckit up` (README); installs them into compat/.clients once
	$(BIN)/python compat/run.py $(COMPAT_ARGS)

# One command starts the service, one runs the tests; both build .venv first when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 0.0.0.0
PORT ?= 8000

.PHONY: install serve test bench lint format

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, at the versions constraints.txt pins: pip takes them from the local disk
	# where they lie there.
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,torch]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m app.serve --host $(HOST) --port $(PORT)

test: $(STAMP) lint
	$(BIN)/python -m pytest

# The serving load benchmark with TorchServe and LitServe beside the service (about 15 minutes;
# the first run also builds .venv-peers); the table goes to stdout, all figures to JSON.
bench: $(STAMP)
	$(BIN)/python benchmarks/serve_load.py --peers --json runs/serve_load.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# One command starts the service, one runs the tests; both build .venv first when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

DEPLOY_VENV := .venv-deploy
CHECKOV := $(DEPLOY_VENV)/bin/checkov

.PHONY: install serve test test-fast bench lint format manifests train-quick screenshot

# Serving on a CPU needs no torch: ONNX Runtime runs the INT8 graph shipped beside the
# checkpoint (ready 13 s after a fresh clone here, 390 MB). With an NVIDIA GPU, serving takes the
# full environment.
SERVE_STAMP := $(VENV)/.installed-serve
GPU := $(shell test -e /proc/driver/nvidia/version && echo yes)

$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(SERVE_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, at the versions constraints.txt pins: pip takes them from the local disk
	# where they lie there.
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,torch,teacher]'
	touch $(STAMP)

install: $(STAMP)

serve: $(if $(GPU),$(STAMP),$(SERVE_STAMP))
	$(BIN)/python -m app.serve --host $(HOST) --port $(PORT)

# "Train your own in a minute" (README): 28x28, a 10,000-image subset, two epochs, into runs/quick.
QUICK := --resize 28 --epochs 2 --train-subset 10000 --batch-size 128 --lr 0.1 --momentum 0.9 \
	--nesterov --schedule onecycle --label-smoothing 0.1 --no-progress --out runs/quick

train-quick: $(STAMP)
	$(BIN)/python -m model.train $(QUICK)

test: $(STAMP) lint manifests
	$(BIN)/python -m pytest

# The tier to rerun after every change: no browser, wrk flood, restart, training run or whole
# test set (the tests marked slow; pytest's summary names them).
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" --durations=5

# README's picture of the page, taken by its browser test in headless Chromium.
screenshot: $(STAMP)
	PAGE_SCREENSHOT=docs/page.png $(BIN)/python -m pytest -q tests/app/http/test_page.py -k screenshot

# The Kubernetes and KServe manifests: rendered, schema-checked and scanned by checkov (pinned in
# deploy/requirements.txt, in its own virtual environment: its dependencies clash with ours).
$(CHECKOV): deploy/requirements.txt
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install -q -r deploy/requirements.txt
	touch $(CHECKOV)

manifests: $(STAMP) $(CHECKOV)
	$(BIN)/python -m deploy.check_manifests --checkov $(CHECKOV)

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

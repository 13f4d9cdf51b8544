# Two commands do everything: `make run` (serve on the embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint format install install-dev bench-retrieval bench-finetune bench-generate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python backend/requirements.txt backend/pyproject.toml
	$(BIN)/pip install --quiet -r backend/requirements.txt
	$(BIN)/pip install --quiet --no-deps -e backend
	touch $@

$(DEV_STAMP): $(STAMP) backend/requirements-ml.txt backend/requirements-dev.txt
	$(BIN)/pip install --quiet -r backend/requirements.txt -r backend/requirements-ml.txt -r backend/requirements-dev.txt
	touch $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/rag serve

test: $(DEV_STAMP)
	$(BIN)/ruff check backend benchmarks
	cd backend && ../$(BIN)/pytest -q

lint: $(DEV_STAMP)
	$(BIN)/ruff check backend
	$(BIN)/ruff format --check backend

format: $(DEV_STAMP)
	$(BIN)/ruff format backend
	$(BIN)/ruff check --fix backend

bench-retrieval: $(DEV_STAMP)
	$(BIN)/python benchmarks/retrieval.py

bench-finetune: $(DEV_STAMP)
	$(BIN)/python benchmarks/finetune.py

bench-generate: $(DEV_STAMP)
	$(BIN)/python benchmarks/generate.py

clean:
	rm -rf $(VENV) backend/*.egg-info

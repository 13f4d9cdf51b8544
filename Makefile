# Two commands do everything: `make run` (serve on the embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
NPM_STAMP := frontend/node_modules/.installed
FRONTEND_SOURCES := $(shell find frontend/src frontend/public -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts

.PHONY: run test test-backend test-frontend frontend screenshots lint format install install-dev bench-retrieval bench-fusion bench-extractive bench-finetune bench-generate bench-reviews bench-ingest clean

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

$(NPM_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend/dist/index.html: $(NPM_STAMP) $(FRONTEND_SOURCES)
	cd frontend && npm run build

# The web UI is optional for the API: without Node the server still runs, on /api and /docs.
frontend:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory frontend/dist/index.html; \
	else echo "npm not found: serving the API without the web UI (install Node 20 for it)"; fi

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: $(STAMP) frontend
	$(BIN)/rag serve

test: test-backend test-frontend

test-backend: $(DEV_STAMP)
	scripts/ensure-system-packages.sh
	$(BIN)/ruff check backend benchmarks
	cd backend && ../$(BIN)/lint-imports
	cd backend && ../$(BIN)/pytest -q

test-frontend: $(NPM_STAMP) $(STAMP)
	cd frontend && npm test
	scripts/ensure-system-packages.sh
	cd frontend && npm run e2e

screenshots: $(NPM_STAMP) $(STAMP)
	scripts/ensure-system-packages.sh
	cd frontend && SCREENSHOT_DIR=../docs/screenshots npm run e2e

lint: $(DEV_STAMP) $(NPM_STAMP)
	$(BIN)/ruff check backend benchmarks
	$(BIN)/ruff format --check backend benchmarks
	cd backend && ../$(BIN)/lint-imports
	cd frontend && npm run lint

format: $(DEV_STAMP)
	$(BIN)/ruff format backend
	$(BIN)/ruff check --fix backend

bench-retrieval: $(DEV_STAMP)
	$(BIN)/python benchmarks/retrieval.py

bench-fusion: $(DEV_STAMP)
	$(BIN)/python benchmarks/fusion_weight.py

bench-extractive: $(DEV_STAMP)
	$(BIN)/python benchmarks/extractive.py

bench-finetune: $(DEV_STAMP)
	$(BIN)/python benchmarks/finetune.py

bench-generate: $(DEV_STAMP)
	$(BIN)/python benchmarks/generate.py

# Pre-trains a small Llama on NSMC, trains a LoRA adapter as a job through the API and judges its
# reviews' ratings (15-20 minutes on 2 shared cores); writes its table to docs/benchmarks.md.
bench-reviews: $(DEV_STAMP)
	$(BIN)/python benchmarks/reviews.py

# Installs langchain-postgres into a temporary virtualenv of its own (never into .venv); writes
# its table to docs/benchmarks.md. Other sizes: make bench-ingest BENCH_INGEST_ARGS="--sizes 2000".
bench-ingest: $(DEV_STAMP)
	$(BIN)/python benchmarks/ingest_compare.py --write $(BENCH_INGEST_ARGS)

clean:
	rm -rf $(VENV) backend/*.egg-info frontend/node_modules frontend/dist

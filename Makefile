# Wardgate: `make run` starts the gateway on embedded defaults; `make test` lints and tests.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3
OPA_BINDINGS := opa-golib-python-bindings==0.4.4

.PHONY: install run test lint services browser-deps vendor policy-test bench demo clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# The OPA Go engine bindings are a ctypes py3-none wheel that declares Requires-Python >=3.14
	@# but works on 3.11: fetch the wheel for 3.14 and install it ignoring that marker.
	@d=$$(mktemp -d) && $(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.14 \
	    -d $$d $(OPA_BINDINGS) && $(PY) -m pip install -q --no-deps --ignore-requires-python $$d/*.whl \
	    && rm -rf $$d
	@touch $(STAMP)

install: $(STAMP)

run: install
	@echo ""
	@echo "  Wardgate on http://127.0.0.1:8080/v1"
	@echo "  demo key:  wg-demo-2bff5e0a6f233aa648e17d0ea0e8db87   (admin: wg-admin-610b16c1e53e120636d9738679f735fa)"
	@echo "  try:       curl http://127.0.0.1:8080/v1/chat/completions -H 'Authorization: Bearer wg-demo-2bff5e0a6f233aa648e17d0ea0e8db87' \\"
	@echo "               -H 'Content-Type: application/json' -d '{\"model\":\"mock-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	@echo ""
	$(VENV)/bin/wardgate serve

services:
	@bash .ci/services

# The console's browser tests: Debian's Chromium (apt-get, never a downloaded browser) and
# axe-core (npm registry) in .venv/axe. Fails, saying what to install, when it cannot.
browser-deps: install
	@bash .ci/browser

# Refresh the console's vendored htmx from the npm registry (version + integrity in
# gateway/console/VENDORED).
vendor:
	@bash scripts/vendor_console.sh

lint: install
	$(VENV)/bin/ruff check gateway orchestrator tests bench wardgate_mock
	$(VENV)/bin/ruff format --check gateway orchestrator tests bench wardgate_mock
	@# Type check (settings in pyproject.toml [tool.mypy]); incremental: ~2 s warm, ~35 s cold.
	$(VENV)/bin/mypy

policy-test: install
	$(VENV)/bin/wardgate policy test rego

# pytest-xdist: one worker more than cores (PYTEST_WORKERS=0 runs serially): much of the suite
# waits on processes it starts (gateways, browsers), so a third worker on 2 cores overlaps that
# waiting (pytest 792 -> 614 s on a clean clone). Each test file stays on one worker (--dist
# loadfile): module-scoped gateways start once. Workers share nothing: Redis keys take a
# per-test prefix, PostgreSQL a per-test schema, servers a free port.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: install services browser-deps lint policy-test
	$(VENV)/bin/pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

bench: install
	$(PY) bench/overhead.py

# The reference orchestrator's customer-support scenario, offline (ARGS=--interactive to approve by hand).
demo: install
	$(PY) -m orchestrator demo $(ARGS)

clean:
	rm -rf $(VENV) .wardgate .pytest_cache .ruff_cache .mypy_cache

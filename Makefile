# The front door: run, test, bench, proto, lint.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install run test test-browser bench bench-ci proto lint clean

# setup.py builds tracecore/_speedups/*.pyx: a changed .pyx or .pxd is built again by `make install`.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard tracecore/_speedups/*.pyx tracecore/_speedups/*.pxd)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	@echo "make run: development mode: plaintext (--insecure), no authentication, public dev key passphrase"
	@echo "           check page: http://127.0.0.1:8080/check"
	$(VENV)/bin/pharmatrace serve --dev --insecure --data ./data

# The tests run in parallel, one process per core (TEST_WORKERS=0: in this process, one by one).
TEST_WORKERS ?= auto
test: install
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist worksteal

test-browser: install
	$(PY) -m pytest tests/browser -v

bench: install
	$(PY) -m bench all

bench-ci: install
	$(PY) -m bench ci

proto: install
	PATH=$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=proto \
		--grpc_python_out=proto --mypy_out=proto --mypy_grpc_out=proto proto/pharmatrace/v1/*.proto

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/mypy tracecore tracerpc codegen_svc verify_svc pharmatrace_cli bench frontdoor replica_svc

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .hypothesis

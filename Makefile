# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sportpose-installed

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The pinned CPU torch first: a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sportpose demo

# The layer contract first (pyproject.toml [tool.importlinter]): an upward import or a circle fails, named.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -x --timeout=900 tests

test-fast: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not integration" tests

bench: $(STAMP)
	for f in bench/*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf runs reports

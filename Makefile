# The two commands of the README: `make demo` and `make test`.
PY := .venv/bin/python

.PHONY: setup setup-dev demo test test-fast lint bench table

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

demo: setup
	$(PY) -m fusepose.cli.main demo --out runs/demo

test: setup-dev
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup-dev
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: setup-dev
	.venv/bin/ruff check src tests

table: setup
	$(PY) -m fusepose.cli.main models --table

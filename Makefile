# The two commands of the README: `make demo` and `make test`.
#   make test       the fast tier: everything but the `slow` tests (tiny registered models
#                   `test_*`: training, export, serving and every verb run and compose);
#                   at most 4 minutes on 2 cores
#   make test-all   every test: the fast tier and the learning proofs (overfit AP, two-stage
#                   AP, the README as written, the wheel, the browser, pretraining,
#                   torch.compile); at most 12 minutes on 2 cores (CI: .ci/run)
# Both print the 25 slowest tests. --no-loadscope-reorder keeps tests/conftest.py's order:
# the files that train the shared checkpoints start first, the files that wait on them last.
PY := .venv/bin/python
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25

.PHONY: setup setup-dev demo test test-all test-fast lint bench table

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

demo: setup
	$(PY) -m fusepose.cli.main demo --out runs/demo

test: setup-dev
	$(PYTEST) -m "not slow"

test-all: setup-dev
	$(PYTEST)

test-fast: test

lint: setup-dev
	.venv/bin/ruff check src tests

table: setup
	$(PY) -m fusepose.cli.main models --table

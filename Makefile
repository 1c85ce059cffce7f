# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite, what CI runs).
# `make check` is the edit loop's quick lane: the unit tests without end-to-end training (`slow`) or real data.
.PHONY: setup demo test check

setup:
	bash scripts/bootstrap.sh

demo: setup
	.venv/bin/ssinfnet demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# Two workers (one torch thread each, tests/conftest.py) on the two halves of the collection, the full
# demo first (tests/conftest.py); a worker that runs out takes tests queued on the other (worksteal), so
# the long demo test runs beside the rest instead of after it.
test: setup
	.venv/bin/python -m pytest -q -n 2 --dist worksteal

# The quick lane (under 3 minutes on 2 cores): no end-to-end training, no real data.
check: setup
	.venv/bin/python -m pytest -q -n 2 -m "not slow and not realdata"

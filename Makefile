# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
.PHONY: setup demo test

setup:
	bash scripts/bootstrap.sh

demo: setup
	.venv/bin/ssinfnet demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# Two workers (one torch thread each, tests/conftest.py); a module's tests stay on one worker. Files go
# out in collection order, which puts the slow end-to-end tests first (tests/conftest.py), so the long
# demo test starts at once beside the rest (xdist's default would send the files with most tests first).
test: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

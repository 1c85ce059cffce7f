# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
.PHONY: setup demo test

setup:
	bash scripts/bootstrap.sh

demo: setup
	.venv/bin/ssinfnet demo --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: setup
	.venv/bin/python -m pytest -q

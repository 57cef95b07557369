# Benchmarks (see bench/README.md). Other targets: scripts/build.sh.
PYTHON ?= python3
BENCH_ARGS ?=

.PHONY: bench bench-quick bench-test

# The whole servers x scenarios matrix (installs the pinned peers itself; 27 minutes from a fresh clone on 2 cores, 23 with the peers installed).
bench:
	$(PYTHON) -m bench $(BENCH_ARGS)

# One short round of the main scenarios (4 minutes with the peers installed).
bench-quick:
	$(PYTHON) -m bench --quick $(BENCH_ARGS)

# The harness tests (no servers, no load).
bench-test:
	$(PYTHON) -m pytest bench/tests -q

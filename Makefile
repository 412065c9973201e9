# The commands of README.md, by name. Each is a script under scripts/.
.PHONY: demo test bench reliability fuzz

demo:
	scripts/demo

test:
	scripts/test

# Benchmarks with their targets; writes docs/performance.md.
bench:
	scripts/bench

# Fault, duplicate, race scenarios (large) and libFuzzer runs; writes docs/reliability.md.
reliability:
	scripts/reliability

# Each fuzz target under libFuzzer for FUZZ_SECONDS (default 60).
fuzz:
	scripts/fuzz $(or $(FUZZ_SECONDS),60)

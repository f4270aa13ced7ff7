# memserver — the entry point for every tier. CI calls the same targets (.ci/run → make test).
CARGO ?= cargo
SYSTEM ?= system.toml

.PHONY: run test test-unit test-props lint bench fmt clean help hostile

help:
	@echo "make run    - build in release, start memserver with $(SYSTEM), run a client workload, print slabinfo"
	@echo "make test   - every host test tier (unit, property, conformance, host runner)"
	@echo "make bench  - criterion micro-benchmarks and load-generator ratios"
	@echo "make lint   - rustfmt check and clippy"
	@echo "make hostile - the hostile-client suite against the real server (ends with a hostile: line)"

run:
	$(CARGO) run --release -p memserver --example demo

test:
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# The hostile-client suite alone; it also runs in `make test`. Its last line is the summary.
hostile:
	$(CARGO) test -p memserver --test hostile

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench -p memserver --bench engine

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

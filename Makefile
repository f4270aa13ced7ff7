# memserver — the entry point for every tier. CI calls the same targets (.ci/run → make test).
CARGO ?= cargo
SYSTEM ?= system.toml

.PHONY: run test test-unit test-props lint bench fmt docs clean help qemu sel4-env hostile fuzz soak

help:
	@echo "make run    - build in release, start memserver with $(SYSTEM), run a client workload, print slabinfo"
	@echo "make test   - every host test tier (unit, property, conformance, host runner)"
	@echo "make bench  - criterion micro-benchmarks and load-generator ratios"
	@echo "make lint   - rustfmt check and clippy"
	@echo "make sel4-env SEL4_SRC=dir RUST_SEL4_SRC=dir - prepare sel4-env/ for make qemu (README)"
	@echo "make qemu   - boot the system on seL4 under QEMU (after make sel4-env)"
	@echo "make hostile - the hostile-client suite against the real server (ends with a hostile: line)"
	@echo "make fuzz SECONDS=n - both cargo-fuzz targets (nightly) for n seconds each, side by side"
	@echo "make soak SECONDS=n - random client traffic with SIGKILLs and restarts for n seconds"

# Builds release once, then scripts/run.sh starts memserver (socket under target/run/), runs
# loadgen (mixed, 2 clients), prints the summary and slabinfo, stops the server with SIGTERM.
run:
	$(CARGO) build --release -p memserver-host --bin memserver -p loadgen --bin loadgen
	bash scripts/run.sh $(SYSTEM)

test:
	CARGO=$(CARGO) bash scripts/test.sh

# The hostile-client suite alone; it also runs in `make test`. Its last line is the summary.
hostile:
	$(CARGO) test -p memserver-integration --test hostile

# Fuzzing (fuzz/, its own workspace, nightly): installs cargo-fuzz from crates.io if missing,
# runs the dispatch and magazine-validator targets side by side, prints executions and coverage.
SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	fuzz/run.sh $(SECONDS)

# The soak: four SIGKILLed-and-restarted clients against one server for SECONDS; ends with a
# computed `soak:` line (pool back to its start, nothing a surviving client wrote lost).
soak:
	SOAK_SECONDS=$(SECONDS) $(CARGO) test -p memserver-integration --test soak

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The engine benchmarks, then memserver vs glibc/mimalloc/bare socket and loadgen runs: prints
# the ratio table and writes target/bench/summary.json (bounded: a few minutes on 2 cores).
bench:
	$(CARGO) build --release -p memserver-host --bin memserver -p loadgen --bin loadgen
	$(CARGO) bench -p memserver-engine --bench engine
	$(CARGO) bench -p memserver-integration --bench memserver

fmt:
	$(CARGO) fmt --all

# Regenerates the package graph in docs/architecture.md (checked by `make test`).
docs:
	UPDATE_PACKAGE_GRAPH=1 $(CARGO) test -p memserver-integration --test layers

# seL4 under QEMU (README "Running on seL4", docs/sel4.md); never part of `make test` or CI.
# `make sel4-env` prepares sel4-env/ (git-ignored) from two checkouts the user provides:
# Debian packages, the sel4-deps venv, the kernel, rust-sel4's loader, the qemu/rust-sel4 link,
# and the Rust toolchain it chose (sel4-env/env.mk). A rerun without the two variables reuses
# the recorded checkouts and skips what is up to date.
sel4-env:
	SEL4_SRC=$(SEL4_SRC) RUST_SEL4_SRC=$(RUST_SEL4_SRC) bash scripts/sel4-env.sh

# `make qemu` then needs no variables. Knobs: QEMU_TIMEOUT (seconds), SYSTEM, SEL4_PREFIX, and
# CARGO=/RUSTC= to build qemu/ with another toolchain than the recorded one (given on the
# command line they reach qemu/Makefile through MAKEFLAGS; QEMU_CARGO/QEMU_RUSTC are older
# spellings of the same). Exit 0 on TEST_PASS; make reports any failure as status 2 and names
# the script's own status in its error line (3: environment missing, 1: TEST_FAIL, 124: timeout).
qemu:
	$(MAKE) -C qemu run SYSTEM=$(abspath $(SYSTEM)) \
		$(if $(QEMU_CARGO),CARGO=$(QEMU_CARGO)) $(if $(QEMU_RUSTC),RUSTC=$(QEMU_RUSTC))

clean:
	$(CARGO) clean

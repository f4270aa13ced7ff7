# memserver — the entry point for every tier. CI calls the same targets (.ci/run → make test).
CARGO ?= cargo
SYSTEM ?= system.toml

.PHONY: run test test-unit test-props lint bench scale fmt docs clean help qemu sel4-env hostile fuzz soak c-api c-header examples

help:
	@echo "make run    - build in release, start memserver with $(SYSTEM), run a client workload, print slabinfo"
	@echo "make test   - every host test tier (unit, property, conformance, host runner)"
	@echo "make bench  - criterion micro-benchmarks, load-generator ratios, server instructions and memory: every figure with its goal"
	@echo "make scale  - 64 clients x 1 M live objects (in process) and 16 client processes: cost flat in clients, caches, objects"
	@echo "make lint   - rustfmt check and clippy"
	@echo "make sel4-env SEL4_SRC=dir RUST_SEL4_SRC=dir - prepare sel4-env/ for make qemu (README)"
	@echo "make qemu   - boot the system on seL4 under QEMU (after make sel4-env)"
	@echo "make hostile - the hostile-client suite against the real server (ends with a hostile: line)"
	@echo "make fuzz SECONDS=n - both cargo-fuzz targets (nightly) for n seconds each, side by side"
	@echo "make soak SECONDS=n - random client traffic with SIGKILLs and restarts for n seconds"
	@echo "make c-api  - target/c/libmemclient.a, target/c/include/memclient.h (generated), target/c/pkgconfig/memclient.pc"
	@echo "make c-header - regenerate the committed clients/c/include/memclient.h (make test checks it)"
	@echo "make examples - the C hash table (debug flags off and on) and the Rust global allocator example, each against a server"

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
	# the seL4 tasks' workspace (qemu/) without resolving it: rust-sel4 is not needed to check its format
	rustfmt --edition 2024 --check $$(git ls-files 'qemu/*.rs')
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# memclient-c as seL4 C tasks link it (no_std + alloc; built for real only by make qemu)
	$(CARGO) clippy -p memclient-c --no-default-features --lib -- -D warnings

# The engine benchmarks, then memserver vs glibc/mimalloc/bare socket, the server's instructions
# (valgrind's callgrind; the rows are skipped, saying so, without valgrind) and memory, and
# loadgen runs: prints every figure with its goal and writes target/bench/summary.json and
# ops-per-sec.svg (bounded: about ten minutes on 2 cores). The last `make scale`'s table is
# included.
bench:
	$(CARGO) build --release -p memserver-host --bin memserver -p loadgen --bin loadgen
	$(CARGO) bench -p memserver-engine --bench engine
	$(CARGO) bench -p memserver-integration --bench memserver

# 64 clients x 1,000,000 live objects in process and 16 client processes: the exchange, shrink
# and memory per object against the number of clients, caches and objects; writes
# target/bench/scale.json (and into summary.json). A few minutes.
scale:
	$(CARGO) bench -p memserver-integration --bench scale

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

# The C API (docs/client.md "The C API"): the static library, its header generated by cbindgen
# (clients/c/header), and a pkg-config file. Link: cc … -Itarget/c/include -Ltarget/c -lmemclient $(C_LIBS).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
C_DIR := $(TARGET_DIR)/c
C_LIBS := -lpthread -ldl -lm
CC ?= cc
c-api:
	$(CARGO) build --release -p memclient-c-staticlib
	mkdir -p $(C_DIR)/include $(C_DIR)/pkgconfig
	cp $(TARGET_DIR)/release/libmemclient_c_staticlib.a $(C_DIR)/libmemclient.a
	$(CARGO) run -q -p memclient-header -- $(C_DIR)/include/memclient.h
	sed -e 's|@PREFIX@|$(abspath $(C_DIR))|' clients/c/memclient.pc.in >$(C_DIR)/pkgconfig/memclient.pc

c-header:
	$(CARGO) run -q -p memclient-header -- clients/c/include/memclient.h

# The examples against a server started for each (scripts/with-server.sh, client `app`).
examples: c-api
	$(CARGO) build --release -p memserver-host --bin memserver -p memserver-examples --bin global-alloc
	$(CC) -std=c11 -Wall -Wextra -O2 -I$(C_DIR)/include examples/c/hash_table.c -L$(C_DIR) -lmemclient $(C_LIBS) -o $(C_DIR)/hash_table
	$(CC) -std=c11 -Wall -Wextra -O2 -DDEBUG -I$(C_DIR)/include examples/c/hash_table.c -L$(C_DIR) -lmemclient $(C_LIBS) -o $(C_DIR)/hash_table_debug
	bash scripts/with-server.sh $(SYSTEM) -- $(C_DIR)/hash_table
	bash scripts/with-server.sh $(SYSTEM) -- $(C_DIR)/hash_table_debug
	bash scripts/with-server.sh $(SYSTEM) -- $(TARGET_DIR)/release/global-alloc

clean:
	$(CARGO) clean

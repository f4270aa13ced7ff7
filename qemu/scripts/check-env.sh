#!/usr/bin/env bash
# Checks that the seL4 environment `make qemu` needs is present: what
# `make sel4-env` (scripts/sel4-env.sh) produces, or the same provided by hand.
# Prints every missing piece and how to provide it; exits 3 if anything is
# missing, 0 otherwise. Never builds or downloads anything.
#
# Inputs (environment): SEL4_PREFIX, CARGO, RUSTC, QEMU, C_CC (see qemu/Makefile).
set -u
cd "$(dirname "$0")/.."   # qemu/
# shellcheck source=sel4-pins.sh
. scripts/sel4-pins.sh

missing=0
miss() {
    missing=1
    printf 'missing: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '    %s\n' "$line" >&2; done
}

# The one command that provides everything below (it reuses recorded checkouts).
if [ -f ../sel4-env/env.mk ]; then
    fix='make sel4-env'
else
    fix='make sel4-env SEL4_SRC=/path/to/seL4 RUST_SEL4_SRC=/path/to/rust-sel4'
fi
see_readme='README.md, "Running on seL4"'

# 1. The kernel install plus rust-sel4's loader and add-payload tool.
if [ -z "${SEL4_PREFIX:-}" ]; then
    miss "the seL4 environment: sel4-env/ at the repo root holds no kernel (and SEL4_PREFIX is not set)" \
        "run: $fix   (at the repo root; $see_readme)"
else
    for f in bin/kernel.elf libsel4/include/sel4/sel4.h support/platform_gen.yaml \
             bin/sel4-kernel-loader bin/sel4-kernel-loader-add-payload; do
        [ -e "$SEL4_PREFIX/$f" ] || miss "\$SEL4_PREFIX/$f (SEL4_PREFIX=$SEL4_PREFIX)" "run: $fix"
    done
fi

# 2. The rust-sel4 checkout, reached through the git-ignored link qemu/rust-sel4.
if [ ! -f rust-sel4/crates/sel4-root-task/Cargo.toml ] || [ ! -d rust-sel4/support/targets ]; then
    miss "qemu/rust-sel4 (a link to a rust-sel4 $RUST_SEL4_TAG checkout, commit $RUST_SEL4_COMMIT)" \
        "run: $fix"
elif head=$(git -C rust-sel4/ rev-parse --verify -q 'HEAD^{commit}' 2>/dev/null) &&
    [ "$head" != "$RUST_SEL4_COMMIT" ]; then
    miss "qemu/rust-sel4 -> $(readlink rust-sel4) is at $head, not $RUST_SEL4_TAG ($RUST_SEL4_COMMIT)" \
        "git -C $(readlink -f rust-sel4) checkout $RUST_SEL4_TAG, then: make sel4-env"
fi

# 3. Toolchain: cargo/rustc with rust-src (for -Zbuild-std), rust-lld, libclang.
cargo_bin=${CARGO:-cargo}
rustc_bin=${RUSTC:-rustc}
if ! command -v "$cargo_bin" >/dev/null 2>&1; then
    miss "cargo ($cargo_bin)" "run: $fix   (it records its toolchain), or pass CARGO=/path/to/cargo"
fi
if ! command -v "$rustc_bin" >/dev/null 2>&1; then
    miss "rustc ($rustc_bin)" "run: $fix   (it records its toolchain), or pass RUSTC=/path/to/rustc"
else
    sysroot=$("$rustc_bin" --print sysroot 2>/dev/null)
    host=$("$rustc_bin" -vV 2>/dev/null | sed -n 's/^host: //p')
    release=$("$rustc_bin" -vV 2>/dev/null | sed -n 's/^release: //p')
    # rust-sel4's target specs name the kernel-hwaddress sanitizer: rustc 1.95 and older reject them.
    case "$release" in
        1.[0-9].* | 1.[0-8][0-9].* | 1.9[0-5].*)
            miss "rustc $SEL4_RUST_VERSION or newer ($rustc_bin is $release): rust-sel4 $RUST_SEL4_TAG's target specs" \
                "run: $fix   (Debian's rustc-web $SEL4_RUST_VERSION from bookworm-security), or pass CARGO=/RUSTC=" ;;
    esac
    if [ ! -f "$sysroot/lib/rustlib/src/rust/library/core/Cargo.toml" ]; then
        miss "rust-src for $rustc_bin (sysroot $sysroot), needed by -Zbuild-std" \
            "run: $fix   (Debian: rust-web-src; rustup: rustup component add rust-src)"
    fi
    # The seL4 target specs link with "rust-lld": rustc looks in its own sysroot first
    # (rustup ships it there), then on PATH (Debian's rustc-web: /usr/bin/rust-lld from
    # rust-web-llvm, a link to lld-22, which is a separate package).
    if [ ! -x "$sysroot/lib/rustlib/$host/bin/rust-lld" ] && ! command -v rust-lld >/dev/null 2>&1; then
        miss "rust-lld (not in $sysroot/lib/rustlib/$host/bin, not on PATH, or a dangling link)" \
            "run: $fix   (Debian: rust-web-llvm lld-22)"
    fi
fi
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && [ -z "${LIBCLANG_PATH:-}" ]; then
    miss "libclang (sel4-sys generates its bindings with bindgen)" \
        "run: $fix   (Debian: libclang-dev), or set LIBCLANG_PATH"
fi

# 4. The C tasks' cross compiler (qemu/c-task: examples/c/hash_table.c, freestanding).
if ! command -v "${C_CC:-aarch64-linux-gnu-gcc}" >/dev/null 2>&1; then
    miss "${C_CC:-aarch64-linux-gnu-gcc} (the C tasks are compiled with it)" \
        "run: $fix   (Debian: gcc-aarch64-linux-gnu), or pass C_CC=/path/to/an-aarch64-gcc"
fi

# 5. QEMU.
if ! command -v "${QEMU:-qemu-system-aarch64}" >/dev/null 2>&1; then
    miss "${QEMU:-qemu-system-aarch64}" "run: $fix   (Debian: qemu-system-arm)"
fi

if [ "$missing" -ne 0 ]; then
    echo "qemu: the seL4 environment is not prepared; nothing was built (exit 3)" >&2
    exit 3
fi
exit 0

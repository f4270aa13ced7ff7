#!/usr/bin/env bash
# Checks that the prepared seL4 environment `make qemu` needs is present.
# Prints every missing piece and how to provide it; exits 3 if anything is
# missing, 0 otherwise. Never builds or downloads anything.
#
# Inputs (environment): SEL4_PREFIX, CARGO, RUSTC, QEMU (see qemu/Makefile).
set -u
cd "$(dirname "$0")/.."   # qemu/

missing=0
miss() {
    missing=1
    printf 'missing: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '    %s\n' "$line" >&2; done
}

see_readme='see README.md, "Running on seL4", for the preparation steps'

# 1. The kernel install plus rust-sel4's loader and add-payload tool.
if [ -z "${SEL4_PREFIX:-}" ]; then
    miss "SEL4_PREFIX is not set (and sel4-env/ at the repo root holds no kernel)" \
        "build and install seL4 16.0.0 for qemu-arm-virt/AArch64 into a prefix, add rust-sel4's" \
        "sel4-kernel-loader and sel4-kernel-loader-add-payload under \$SEL4_PREFIX/bin," \
        "then: make qemu SEL4_PREFIX=/path/to/prefix   ($see_readme)"
else
    for f in bin/kernel.elf libsel4/include/sel4/sel4.h support/platform_gen.yaml \
             bin/sel4-kernel-loader bin/sel4-kernel-loader-add-payload; do
        if [ ! -e "$SEL4_PREFIX/$f" ]; then
            case "$f" in
                bin/sel4-kernel-loader*)
                    miss "\$SEL4_PREFIX/$f" \
                        "build it from rust-sel4 5.0.0 (crates/sel4-kernel-loader, its README) and install it there" ;;
                *)
                    miss "\$SEL4_PREFIX/$f" \
                        "install the seL4 16.0.0 kernel build (ninja install) into \$SEL4_PREFIX" ;;
            esac
        fi
    done
fi

# 2. The rust-sel4 checkout, reached through the git-ignored link qemu/rust-sel4.
if [ ! -f rust-sel4/crates/sel4-root-task/Cargo.toml ] || [ ! -d rust-sel4/support/targets ]; then
    miss "qemu/rust-sel4 (a link to a rust-sel4 5.0.0 checkout, commit d441a88)" \
        "ln -s /path/to/rust-sel4 qemu/rust-sel4   ($see_readme)"
fi

# 3. Toolchain: cargo/rustc with rust-src (for -Zbuild-std), rust-lld, libclang.
cargo_bin=${CARGO:-cargo}
rustc_bin=${RUSTC:-rustc}
if ! command -v "$cargo_bin" >/dev/null 2>&1; then
    miss "cargo ($cargo_bin)" "install a Rust toolchain, or pass CARGO=/path/to/cargo"
fi
if ! command -v "$rustc_bin" >/dev/null 2>&1; then
    miss "rustc ($rustc_bin)" "install a Rust toolchain, or pass RUSTC=/path/to/rustc"
else
    sysroot=$("$rustc_bin" --print sysroot 2>/dev/null)
    if [ ! -f "$sysroot/lib/rustlib/src/rust/library/core/Cargo.toml" ]; then
        miss "rust-src for $rustc_bin (sysroot $sysroot), needed by -Zbuild-std" \
            "rustup component add rust-src, or Debian's rust-web-src with RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo"
    fi
fi
if ! command -v rust-lld >/dev/null 2>&1; then
    miss "rust-lld on PATH (the seL4 target specs link with it)" \
        "Debian: apt-get install lld-22 (provides /usr/bin/rust-lld via rust-web-llvm), or rustup's llvm-tools"
fi
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && [ -z "${LIBCLANG_PATH:-}" ]; then
    miss "libclang (sel4-sys generates its bindings with bindgen)" \
        "Debian: apt-get install libclang-dev, or set LIBCLANG_PATH"
fi

# 4. QEMU.
if ! command -v "${QEMU:-qemu-system-aarch64}" >/dev/null 2>&1; then
    miss "${QEMU:-qemu-system-aarch64}" "Debian: apt-get install qemu-system-arm"
fi

if [ "$missing" -ne 0 ]; then
    echo "qemu: the seL4 environment is not prepared; nothing was built (exit 3)" >&2
    exit 3
fi
exit 0

#!/usr/bin/env bash
# make sel4-env: prepares, in sel4-env/ at the repo root (git-ignored), everything `make qemu`
# needs, from two checkouts the user provides. README.md, "Running on seL4", and docs/sel4.md.
#
#   scripts/sel4-env.sh                       (the Makefile passes SEL4_SRC, RUST_SEL4_SRC)
#   SEL4_SRC=/path/to/seL4 RUST_SEL4_SRC=/path/to/rust-sel4 scripts/sel4-env.sh
#
# Steps (each prints its wall time; a step whose inputs have not changed is skipped):
#   1 sources    both checkouts are at the pinned commits (qemu/scripts/sel4-pins.sh)
#   2 packages   the Debian packages below, only those missing (apt-get, sudo when not root)
#   3 rust       the Rust toolchain (Debian's rustc-web, cargo-web, rust-web-src) can do the job
#   4 python     PyPI's sel4-deps in a venv, sel4-env/python/
#   5 kernel     seL4 configured (KERNEL_SETTINGS), built, installed into sel4-env/
#   6 loader     rust-sel4's sel4-kernel-loader and sel4-kernel-loader-add-payload -> sel4-env/bin/
#   7 record     qemu/rust-sel4 -> the rust-sel4 checkout; sel4-env/env.mk for qemu/Makefile
#
# Never downloads seL4 or rust-sel4 (only Debian packages, PyPI's sel4-deps and crates from
# crates.io), never writes into the checkouts.
# Knobs (environment): SEL4_ENV_SKIP_APT=1 (do not run apt-get; only report what is missing),
# JOBS (parallel build jobs, default: nproc). Exit status 0 when the environment is ready,
# 1 with a message naming the failed step otherwise.
set -eEuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../qemu/scripts/sel4-pins.sh
. "$ROOT/qemu/scripts/sel4-pins.sh"

ENV_DIR=$ROOT/sel4-env
BUILD=$ENV_DIR/build
STAMPS=$ENV_DIR/.stamps
LOGS=$ENV_DIR/logs
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
CROSS_COMPILER_PREFIX=aarch64-linux-gnu-

# ---------------------------------------------------------------------------------------------
# The seL4 kernel configuration: every cmake setting in this one list (NAME:TYPE=VALUE, passed
# as -D). Changing a line here rebuilds the kernel and the loader on the next `make sel4-env`.
KERNEL_SETTINGS=(
    KernelPlatform:STRING=qemu-arm-virt
    KernelSel4Arch:STRING=aarch64
    ARM_CPU:STRING=cortex-a57             # = qemu/scripts/boot.sh -cpu
    QEMU_MEMORY:STRING=1024               # MiB, = boot.sh -m; the kernel's DTB is dumped with it
    KernelArmHypervisorSupport:BOOL=ON    # kernel at EL2; boot.sh runs QEMU with virtualization=on
    KernelVerificationBuild:BOOL=OFF
    KernelDebugBuild:BOOL=ON
    KernelPrinting:BOOL=ON                # seL4_DebugPutChar: the serial log
    KernelIsMCS:BOOL=OFF
    KernelMaxNumNodes:STRING=1
    KernelRootCNodeSizeBits:STRING=16     # root CNode slots = 2^16; raise for more tasks/frames
    KernelArmExportVCNTUser:BOOL=ON       # user-mode CNTVCT_EL0: loadgen's ticks/op figures
    # KernelArmExportPCNTUser:BOOL=ON     # user-mode CNTPCT_EL0, if a task ever needs it
)

# The Debian packages (bookworm names). qemu-system-arm is needed before the kernel's configure
# step: seL4's cmake runs qemu-system-aarch64 to dump the virt board's device tree.
# The Rust toolchain is Debian's rustc-web 1.96 (bookworm-security): rustup's 1.95.0 cannot load
# rust-sel4 5.0.0's target specs (they name the kernel-hwaddress sanitizer, new in 1.96). The
# specs link with "rust-lld"; for rustc-web that is /usr/bin/rust-lld from rust-web-llvm, a link
# to lld-22, which rust-web-llvm does not depend on: lld-22 must be named.
APT_PACKAGES=(
    ca-certificates git python3 python3-venv          # the venv, PyPI and crates.io over https
    cmake ninja-build device-tree-compiler libxml2-utils  # the kernel build (dtc, xmllint)
    qemu-system-arm                                   # kernel configure (DTB dump) and make qemu
    gcc-aarch64-linux-gnu                             # the kernel, the loader's assembly
    gcc libc6-dev                                     # host linker for Rust build scripts
    libclang-dev                                      # bindgen in sel4-sys (qemu/ build)
    rustc-web cargo-web rust-web-src                  # rustc/cargo 1.96 in /usr/bin, rust-src
    rust-web-llvm lld-22                              # /usr/bin/rust-lld -> lld-22
)
PYPI_PACKAGES=(sel4-deps==0.9.0)
# ---------------------------------------------------------------------------------------------

STEP_TOTAL=7
STEP_N=0
STEP_NAME=setup
STEP_LOG=
T_START=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '    %s\n' "$*"; }
die() {
    trap - ERR
    printf 'sel4-env: step %s (%s) failed: %s\n' "$STEP_N/$STEP_TOTAL" "$STEP_NAME" "$1" >&2
    shift
    for line in "$@"; do printf '    %s\n' "$line" >&2; done
    exit 1
}
on_err() {
    local status=$1 line=$2 cmd=$3
    die "exit status $status at scripts/sel4-env.sh:$line: $cmd"
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

# run CMD... : output to the step's log file; on failure its last lines and the log's path.
run() {
    printf '$ %s\n' "$*" >>"$STEP_LOG"
    local status=0
    "$@" >>"$STEP_LOG" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        trap - ERR
        echo "---- last lines of $STEP_LOG ----" >&2
        tail -n 40 "$STEP_LOG" >&2
        echo "----" >&2
        die "exit status $status: $*" "full log: $STEP_LOG"
    fi
}

step() {
    STEP_N=$((STEP_N + 1))
    STEP_NAME=$1
    shift
    STEP_LOG=$LOGS/$STEP_N-$STEP_NAME.log
    : >"$STEP_LOG"
    printf '==> [%d/%d] %s: %s\n' "$STEP_N" "$STEP_TOTAL" "$STEP_NAME" "$*"
    local t0
    t0=$(date +%s.%N)
    "step_$STEP_NAME"
    printf '    %s: %ss\n' "$STEP_NAME" "$(elapsed "$t0")"
}

# A step's stamp records the inputs it was last completed with; same inputs = nothing to do.
stamp_matches() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_write() { printf '%s\n' "$2" >"$STAMPS/$1.tmp" && mv "$STAMPS/$1.tmp" "$STAMPS/$1"; }

# ---- inputs ---------------------------------------------------------------------------------

# Without SEL4_SRC / RUST_SEL4_SRC, a rerun uses the checkouts the last run recorded.
recorded() { sed -n "s/^$1 := //p" "$ENV_DIR/env.mk" 2>/dev/null || true; }
SEL4_SRC=${SEL4_SRC:-$(recorded SEL4_ENV_SEL4_SRC)}
RUST_SEL4_SRC=${RUST_SEL4_SRC:-$(recorded SEL4_ENV_RUST_SEL4_SRC)}
if [ -z "$SEL4_SRC" ] || [ -z "$RUST_SEL4_SRC" ]; then
    cat >&2 <<EOF
usage: make sel4-env SEL4_SRC=/path/to/seL4 RUST_SEL4_SRC=/path/to/rust-sel4

Both are checkouts you provide (this never downloads them):
  git clone $SEL4_UPSTREAM && git -C seL4 checkout $SEL4_TAG
  git clone $RUST_SEL4_UPSTREAM && git -C rust-sel4 checkout $RUST_SEL4_TAG
EOF
    exit 1
fi
case "$ROOT$SEL4_SRC$RUST_SEL4_SRC" in
    *' '*) echo "sel4-env: paths with spaces are not supported (make cannot quote them)" >&2; exit 1 ;;
esac
for v in SEL4_SRC RUST_SEL4_SRC; do
    [ -d "${!v}" ] || { echo "sel4-env: $v=${!v} is not a directory" >&2; exit 1; }
    printf -v "$v" '%s' "$(cd "${!v}" && pwd -P)"
done

mkdir -p "$ENV_DIR" "$BUILD" "$STAMPS" "$LOGS"
echo "sel4-env: preparing $ENV_DIR"
echo "    seL4:      $SEL4_SRC"
echo "    rust-sel4: $RUST_SEL4_SRC"

# ---- 1. sources -----------------------------------------------------------------------------

# check_checkout NAME DIR TAG COMMIT UPSTREAM MARKER
check_checkout() {
    local name=$1 dir=$2 tag=$3 commit=$4 upstream=$5 marker=$6 head
    [ -e "$dir/$marker" ] || die "$dir does not look like a $name checkout (no $marker)" \
        "expected a checkout of $upstream at tag $tag (commit $commit)"
    if ! head=$(git -C "$dir" rev-parse --verify -q 'HEAD^{commit}' 2>/dev/null); then
        die "$dir is not a git checkout, so its commit cannot be checked" \
            "expected $name $tag, commit $commit: git clone $upstream && git checkout $tag"
    fi
    if [ "$head" != "$commit" ]; then
        local desc
        desc=$(git -C "$dir" describe --tags --always HEAD 2>/dev/null || echo "$head")
        die "$name checkout $dir is at $head ($desc)" \
            "expected tag $tag, commit $commit:  git -C $dir checkout $tag"
    fi
    if [ -n "$(git -C "$dir" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        say "warning: $dir has local changes to tracked files (building them as they are)"
    fi
    say "$name: $tag ($commit)"
}
step_sources() {
    check_checkout seL4 "$SEL4_SRC" "$SEL4_TAG" "$SEL4_COMMIT" "$SEL4_UPSTREAM" configs/seL4Config.cmake
    check_checkout rust-sel4 "$RUST_SEL4_SRC" "$RUST_SEL4_TAG" "$RUST_SEL4_COMMIT" \
        "$RUST_SEL4_UPSTREAM" crates/sel4-kernel-loader/Cargo.toml
}

# ---- 2. packages ----------------------------------------------------------------------------

step_packages() {
    local missing=() p
    command -v dpkg-query >/dev/null 2>&1 ||
        die "dpkg-query not found: this step knows Debian 12 only" \
            "install the equivalents of: ${APT_PACKAGES[*]}; then rerun with SEL4_ENV_SKIP_APT=1"
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        say "all ${#APT_PACKAGES[@]} installed: ${APT_PACKAGES[*]}"
        return
    fi
    say "missing: ${missing[*]}"
    if [ "${SEL4_ENV_SKIP_APT:-0}" = 1 ]; then
        die "Debian packages missing and SEL4_ENV_SKIP_APT=1" "apt-get install ${missing[*]}"
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo" "as root: apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    # --no-remove: rustc-web conflicts with Debian's rustc, cargo and rustup packages; rather
    # than let apt remove them, stop and say so (apt's message is in the log tail).
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y
        --no-install-recommends --no-remove "${missing[@]}")
    say "${apt[*]:${#sudo[@]}+2}"
    # A fresh machine may have no package lists yet: on failure update once, then retry.
    if ! "${apt[@]}" >>"$STEP_LOG" 2>&1; then
        run "${sudo[@]}" apt-get update
        run "${apt[@]}"
    fi
}

# ---- 3. rust --------------------------------------------------------------------------------

# Debian's rustc-web: /usr/bin/cargo and /usr/bin/rustc, recorded by absolute path so that a
# rustup earlier on PATH does not get in the way (qemu/Makefile also passes RUSTC to cargo).
SEL4_ENV_CARGO=/usr/bin/cargo
SEL4_ENV_RUSTC=/usr/bin/rustc
step_rust() {
    local v sysroot
    [ -x "$SEL4_ENV_RUSTC" ] && [ -x "$SEL4_ENV_CARGO" ] ||
        die "$SEL4_ENV_RUSTC or $SEL4_ENV_CARGO missing" "apt-get install rustc-web cargo-web rust-web-src"
    v=$("$SEL4_ENV_RUSTC" -vV | sed -n 's/^release: //p')
    case "$v" in
        "$SEL4_RUST_VERSION".*) ;;
        1.[0-9].* | 1.[0-8][0-9].* | 1.9[0-5].*)
            die "$SEL4_ENV_RUSTC is $v; rust-sel4 $RUST_SEL4_TAG needs $SEL4_RUST_VERSION" \
                "bookworm's own rustc-web is 1.85; $SEL4_RUST_VERSION comes from bookworm-security:" \
                "add 'deb http://deb.debian.org/debian-security bookworm-security main' to apt's" \
                "sources, apt-get update, apt-get install rustc-web cargo-web rust-web-src" ;;
        *) say "warning: $SEL4_ENV_RUSTC is $v; tested with $SEL4_RUST_VERSION (it may not load rust-sel4's target specs)" ;;
    esac
    sysroot=$("$SEL4_ENV_RUSTC" --print sysroot)
    [ -f "$sysroot/lib/rustlib/src/rust/library/core/Cargo.toml" ] ||
        die "no rust-src in $sysroot/lib/rustlib/src (needed by -Zbuild-std)" "apt-get install rust-web-src"
    # rustc looks for rust-lld in its sysroot's lib/rustlib/<host>/bin, then on PATH.
    command -v rust-lld >/dev/null 2>&1 || [ -x "$sysroot/lib/rustlib/$(host_triple "$SEL4_ENV_RUSTC")/bin/rust-lld" ] ||
        die "rust-lld not found (or /usr/bin/rust-lld is a dangling link)" "apt-get install rust-web-llvm lld-22"
    say "$("$SEL4_ENV_RUSTC" -V)"
    say "$("$SEL4_ENV_CARGO" -V)"
    say "rust-src in $sysroot/lib/rustlib/src; rust-lld: $(command -v rust-lld) -> $(readlink -f "$(command -v rust-lld)")"
}

# ---- 4. python ------------------------------------------------------------------------------

PY=$ENV_DIR/python
step_python() {
    local key
    key="$(python3 -V 2>&1) ${PYPI_PACKAGES[*]}"
    if stamp_matches python "$key" && [ -x "$PY/bin/python3" ]; then
        say "up to date: $PY (${PYPI_PACKAGES[*]})"
        return
    fi
    rm -rf "$PY"
    run python3 -m venv "$PY"
    run "$PY/bin/pip" install --disable-pip-version-check -q "${PYPI_PACKAGES[@]}"
    stamp_write python "$key"
    say "installed ${PYPI_PACKAGES[*]} into $PY"
}

# ---- 5. kernel ------------------------------------------------------------------------------

kernel_key() {
    printf 'seL4 %s; %s; %s' "$SEL4_COMMIT" "${CROSS_COMPILER_PREFIX}" "${KERNEL_SETTINGS[*]}"
}
step_kernel() {
    local key kb=$BUILD/kernel s
    key=$(kernel_key)
    if stamp_matches kernel "$key" && [ -f "$ENV_DIR/bin/kernel.elf" ] &&
        [ -f "$ENV_DIR/libsel4/include/sel4/sel4.h" ] && [ -f "$ENV_DIR/support/platform_gen.yaml" ]; then
        say "up to date: $ENV_DIR/bin/kernel.elf"
        return
    fi
    rm -f "$STAMPS/kernel" "$STAMPS/loader"
    rm -rf "$kb" "$ENV_DIR/libsel4" "$ENV_DIR/support" "$ENV_DIR/bin/kernel.elf"
    local defs=()
    for s in "${KERNEL_SETTINGS[@]}"; do defs+=("-D$s"); done
    # seL4's build calls `python3` from PATH: the venv's, with sel4-deps.
    export PATH=$PY/bin:$PATH
    say "cmake ${KERNEL_SETTINGS[*]}"
    run cmake -G Ninja -S "$SEL4_SRC" -B "$kb" \
        -DCROSS_COMPILER_PREFIX=$CROSS_COMPILER_PREFIX -DCMAKE_INSTALL_PREFIX="$ENV_DIR" "${defs[@]}"
    run ninja -C "$kb" -j "$JOBS" all
    run ninja -C "$kb" install
    stamp_write kernel "$key"
    say "installed $ENV_DIR/bin/kernel.elf, libsel4/, support/"
}

# ---- 6. loader ------------------------------------------------------------------------------

# rust-sel4's own workspace cannot be used offline (its [patch] entries are git repositories),
# so the two crates are built in a throwaway workspace, sel4-env/build/loader/: one member per
# crate, whose Cargo.toml is the crate's own with every `path = "..."` made absolute (into the
# checkout) and whose other entries (src/, build.rs, asm/, ...) are links into the checkout.
# Nothing of rust-sel4 is copied; its Cargo.lock seeds the versions of the crates.io deps.
wrap_crate() {
    local src=$1 dst=$2 e
    rm -rf "$dst"
    mkdir -p "$dst"
    for e in "$src"/* "$src"/.[!.]*; do
        [ -e "$e" ] || continue
        case "${e##*/}" in Cargo.toml | Cargo.nix | target) continue ;; esac
        [ -f "$e/Cargo.toml" ] && continue    # a crate of its own (add-payload, payload-types)
        ln -s "$e" "$dst/${e##*/}"
    done
    sed -E "s|path = \"([^/\"][^\"]*)\"|path = \"$src/\\1\"|g" "$src/Cargo.toml" >"$dst/Cargo.toml"
}
step_loader() {
    local key ws=$BUILD/loader
    key="rust-sel4 $RUST_SEL4_COMMIT; kernel $(kernel_key); $("$SEL4_ENV_RUSTC" -V)"
    if stamp_matches loader "$key" && [ -x "$ENV_DIR/bin/sel4-kernel-loader" ] &&
        [ -x "$ENV_DIR/bin/sel4-kernel-loader-add-payload" ]; then
        say "up to date: $ENV_DIR/bin/sel4-kernel-loader{,-add-payload}"
        return
    fi
    rm -f "$STAMPS/loader"
    mkdir -p "$ws"
    local kl=$RUST_SEL4_SRC/crates/sel4-kernel-loader
    wrap_crate "$kl" "$ws/sel4-kernel-loader"
    wrap_crate "$kl/add-payload" "$ws/sel4-kernel-loader-add-payload"
    cat >"$ws/Cargo.toml" <<EOF
# Generated by scripts/sel4-env.sh; rebuilt on every run that needs it. See step_loader there.
[workspace]
resolver = "2"
members = ["sel4-kernel-loader", "sel4-kernel-loader-add-payload"]

[profile.release.package.sel4-kernel-loader]
codegen-units = 1
EOF
    [ -f "$ws/Cargo.lock" ] || cp "$RUST_SEL4_SRC/Cargo.lock" "$ws/Cargo.lock"
    local cargo_env=(env RUSTC="$SEL4_ENV_RUSTC" RUSTC_BOOTSTRAP=1 SEL4_PREFIX="$ENV_DIR"
        CC_aarch64_unknown_none="${CROSS_COMPILER_PREFIX}gcc" CARGO_TARGET_DIR="$ws/target")
    say "cargo build -p sel4-kernel-loader --target aarch64-unknown-none -Zbuild-std (SEL4_PREFIX=sel4-env)"
    cd "$ws"
    run "${cargo_env[@]}" "$SEL4_ENV_CARGO" build --release -j "$JOBS" \
        -p sel4-kernel-loader --target aarch64-unknown-none \
        -Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem
    say "cargo build -p sel4-kernel-loader-add-payload (host)"
    run "${cargo_env[@]}" "$SEL4_ENV_CARGO" build --release -j "$JOBS" \
        -p sel4-kernel-loader-add-payload
    cd "$ROOT"
    install -m 755 "$ws/target/aarch64-unknown-none/release/sel4-kernel-loader" "$ENV_DIR/bin/"
    install -m 755 "$ws/target/release/sel4-kernel-loader-add-payload" "$ENV_DIR/bin/"
    stamp_write loader "$key"
    say "installed $ENV_DIR/bin/sel4-kernel-loader, sel4-kernel-loader-add-payload"
}

# ---- 7. record ------------------------------------------------------------------------------

step_record() {
    # qemu/Cargo.toml's path dependencies go through the git-ignored link qemu/rust-sel4.
    local link=$ROOT/qemu/rust-sel4
    if [ -L "$link" ] || [ ! -e "$link" ]; then
        if [ "$(readlink "$link" 2>/dev/null)" != "$RUST_SEL4_SRC" ]; then
            ln -sfn "$RUST_SEL4_SRC" "$link"
        fi
    else
        die "$link exists and is not a symbolic link" "move it away; make sel4-env links it to $RUST_SEL4_SRC"
    fi
    say "qemu/rust-sel4 -> $RUST_SEL4_SRC"
    cat >"$ENV_DIR/env.mk.tmp" <<EOF
# Written by scripts/sel4-env.sh (make sel4-env); read by qemu/Makefile. Rerun make sel4-env
# instead of editing. CARGO=/RUSTC= on the make command line override the toolchain.
SEL4_ENV_SEL4_SRC := $SEL4_SRC
SEL4_ENV_RUST_SEL4_SRC := $RUST_SEL4_SRC
SEL4_ENV_CARGO := $SEL4_ENV_CARGO
SEL4_ENV_RUSTC := $SEL4_ENV_RUSTC
EOF
    mv "$ENV_DIR/env.mk.tmp" "$ENV_DIR/env.mk"
    say "sel4-env/env.mk: CARGO=$SEL4_ENV_CARGO"
    say "                 RUSTC=$SEL4_ENV_RUSTC"
}

step sources "checkouts at $SEL4_TAG / $RUST_SEL4_TAG"
step packages "Debian packages"
step rust "Rust toolchain (rustc-web $SEL4_RUST_VERSION)"
step python "sel4-deps venv"
step kernel "seL4 kernel for qemu-arm-virt/aarch64"
step loader "sel4-kernel-loader, sel4-kernel-loader-add-payload"
step record "qemu/rust-sel4 link, toolchain record"
echo "sel4-env: ready in $(elapsed "$T_START")s; now: make qemu"

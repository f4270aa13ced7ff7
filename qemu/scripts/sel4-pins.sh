# The seL4 and rust-sel4 versions memserver's seL4 side is built and tested with.
# Sourced (not run) by scripts/sel4-env.sh and qemu/scripts/check-env.sh, so both
# agree. The *_COMMIT values are the commits the tags point at (what
# `git rev-parse HEAD` prints in a checkout of the tag); seL4's 16.0.0 is an
# annotated tag, whose own object id (bae64409...) is not a commit.
# shellcheck shell=bash disable=SC2034

SEL4_UPSTREAM=https://github.com/seL4/seL4
SEL4_TAG=16.0.0
SEL4_COMMIT=6e7c3b733d296cfd88d5fbf635c96e447a882374

RUST_SEL4_UPSTREAM=https://github.com/seL4/rust-sel4
RUST_SEL4_TAG=v5.0.0
RUST_SEL4_COMMIT=d441a880938209f661201704dfbee7b91c5aa905

# The Rust toolchain: Debian's rustc-web/cargo-web/rust-web-src, this release (from
# bookworm-security; bookworm's own 1.85 is too old). rust-sel4 5.0.0 pins nightly-2026-04-04,
# a 1.96 nightly: its target specs name the kernel-hwaddress sanitizer, which rustc 1.95 rejects.
SEL4_RUST_VERSION=1.96

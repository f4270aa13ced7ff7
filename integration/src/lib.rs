//! memserver-integration: system tests that start real processes — the `memserver` host
//! runner, client library users, `loadgen` and `memctl` — and the hostile-client suite, the
//! soak and `make bench`'s process-level benchmarks. Everything lives in `tests/` and
//! `benches/`; the binaries in `src/bin/` are the shipped ones' `main`s, rebuilt here so the
//! tests always run the current code.

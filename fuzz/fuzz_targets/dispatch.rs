//! Fuzz target: the dispatch (decode, validate, engine) with three clients, forged handles,
//! raw bytes and control-region writes. The body is `memserver_dispatch::testing::fuzz::dispatch_target`,
//! the same one the stable smoke test (`memserver/tests/fuzz_smoke.rs`) runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memserver_dispatch::testing::fuzz::dispatch_target(data));

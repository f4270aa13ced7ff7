//! Fuzz target: the magazine validator (`MagazineExchange` over tampered control regions),
//! checked against an exact model of what the client holds. The body is
//! `memserver_dispatch::testing::fuzz::magazine_target`, shared with the stable smoke test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| memserver_dispatch::testing::fuzz::magazine_target(data));

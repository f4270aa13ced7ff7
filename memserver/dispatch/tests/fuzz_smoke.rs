//! The fuzz targets on stable: the same bodies `cargo fuzz` runs (`memserver_dispatch::testing::fuzz`),
//! fed random bytes by proptest — 5,000 inputs per target, `check_invariants()`, frame
//! accounting, the holdings model and every client's object patterns checked after every step.
//! `make fuzz` runs the real thing for longer.

use memserver_dispatch::testing::fuzz::{dispatch_target, magazine_target};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dispatch_survives_random_programs(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        dispatch_target(&data);
    }

    #[test]
    fn magazine_validator_survives_random_programs(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        magazine_target(&data);
    }
}

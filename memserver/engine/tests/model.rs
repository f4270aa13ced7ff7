//! Model-based property test: random programs of the one op enum (`testing::ops::Op`, which
//! the dispatch fuzz targets run too) over 3 clients with small quotas and a small pool,
//! checked against a reference model and the invariant checker after every step.

use memserver_engine::testing::OwnedStorage;
use memserver_engine::testing::model::{Harness, MODEL_FLAGS, Op, model_config};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn size() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1u32..=256,
        2 => 257u32..=4096,
        1 => 4097u32..=20000,
        1 => Just(0u32),
        1 => Just(65537u32),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0u8..3;
    prop_oneof![
        2 => (c.clone(), any::<u8>(), size(), prop_oneof![Just(0u32), Just(16), Just(64), Just(3)],
              0usize..MODEL_FLAGS.len(), any::<bool>(), any::<bool>())
            .prop_map(|(client, name, size, align, f, ctor, dtor)| Op::Create { client, name, size, align, flags: MODEL_FLAGS[f], ctor, dtor }),
        8 => (c.clone(), any::<u8>(), any::<bool>()).prop_map(|(client, cache, zero)| Op::Alloc { client, cache, zero }),
        6 => (c.clone(), any::<u16>()).prop_map(|(client, pick)| Op::Free { client, pick }),
        1 => (c.clone(), any::<u16>(), any::<u8>()).prop_map(|(client, pick, cache)| Op::FreeWrongCache { client, pick, cache }),
        1 => (c.clone(), any::<u8>(), any::<u16>(), prop_oneof![1u64..64, 0u64..300_000, any::<u64>()], any::<bool>(), any::<bool>())
            .prop_map(|(client, cache, pick, delta, foreign, kfree)| Op::FreeBogus { client, cache, pick, delta, foreign, kfree }),
        1 => (c.clone(), any::<u16>()).prop_map(|(client, pick)| Op::FreeAgain { client, pick }),
        1 => (c.clone(), any::<u8>()).prop_map(|(client, cache)| Op::Destroy { client, cache }),
        1 => (c.clone(), any::<u8>()).prop_map(|(client, cache)| Op::Shrink { client, cache }),
        3 => (c.clone(), prop_oneof![4 => 0u32..=8192, 1 => 8193u32..40000]).prop_map(|(client, size)| Op::Kmalloc { client, size }),
        2 => (c.clone(), any::<u16>()).prop_map(|(client, pick)| Op::Kfree { client, pick }),
        1 => (c.clone(), any::<u8>(), any::<u8>()).prop_map(|(client, cache, n)| Op::AllocBulk { client, cache, n }),
        1 => (c.clone(), any::<u8>(), any::<bool>()).prop_map(|(client, n, dup)| Op::FreeBulk { client, n, dup }),
        1 => c.clone().prop_map(|client| Op::Reclaim { client }),
        2 => (c.clone(), any::<u16>(), prop_oneof![4 => 1u32..=8192, 1 => 8193u32..30000, 1 => Just(0u32)], any::<bool>())
            .prop_map(|(client, pick, size, zero)| Op::Krealloc { client, pick, size, zero }),
        1 => (c.clone(), any::<u8>()).prop_map(|(client, cache)| Op::Validate { client, cache }),
        1 => (c.clone(), any::<u8>()).prop_map(|(client, cache)| Op::ShrinkBegin { client, cache }),
        1 => (c, any::<u8>(), any::<bool>()).prop_map(|(client, cache, forged)| Op::ShrinkCommit { client, cache, forged }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn engine_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let (config, _) = model_config();
        let mut storage = OwnedStorage::new(&config);
        let mut h = Harness::new(&mut storage);
        for op in &ops {
            h.apply(op);
        }
        h.verify_all();
    }
}

/// The same programs reach every failure path the model knows: quota, pool, busy destroy,
/// wrong cache, invalid object, double free, a refused two-phase commit.
#[test]
fn model_programs_reach_failure_paths() {
    use proptest::test_runner::{Config, TestRunner};
    use protocol::ErrorCode;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = proptest::collection::vec(op(), 40..80);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let (config, _) = model_config();
        let mut storage = OwnedStorage::new(&config);
        let mut h = Harness::new(&mut storage);
        for op in &ops {
            h.apply(op);
        }
        seen.extend(h.seen);
    }
    for code in [
        ErrorCode::QuotaExceeded,
        ErrorCode::OutOfMemory,
        ErrorCode::CacheBusy,
        ErrorCode::WrongCache,
        ErrorCode::InvalidObject,
        ErrorCode::DoubleFree,
        ErrorCode::InvalidArgument,
    ] {
        assert!(seen.contains(&(code as u16)), "{code:?} never reached; seen {seen:?}");
    }
}

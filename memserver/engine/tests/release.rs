//! Destructors and memory that stays: the two-phase shrink, the rules for caches with a dtor,
//! and which caches memory pressure may reap.

mod common;
use common::*;
use memserver_engine::ReleasePlan;
use protocol::flags::{SLAB_NO_REAP, SLAB_RECLAIM_ACCOUNT, SLAB_TYPESAFE_BY_RCU};
use protocol::{Error, Handle, PAGE_SIZE};

/// A cache with a dtor holding `slabs` empty slabs (1 KiB objects, 4 to a one-page slab).
fn dtor_cache_with_empty_slabs(e: &mut TestEngine, slabs: usize) -> protocol::CacheId {
    let id = e.cache_create_with_dtor(0, "dtor", 1024, 0, 0, true, true).unwrap();
    let objects: Vec<_> = (0..4 * slabs).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    for h in objects {
        e.cache_free(0, id, h).unwrap();
    }
    id
}

#[test]
fn a_dtor_cache_releases_slabs_only_in_two_phases() {
    let mut e = engine();
    let id = dtor_cache_with_empty_slabs(&mut e, 3);
    assert!(e.cache_info(0, id).unwrap().has_dtor);
    assert_eq!(e.cache_shrink(0, id), Err(Error::InvalidArgument), "a plain shrink would skip the dtor");
    assert_eq!(e.cache_destroy(0, id), Err(Error::InvalidArgument), "slabs left: the dtor has not run");
    let mut out = [Handle(0); 2];
    let ReleasePlan { token, slabs, more } = e.shrink_begin(0, id, &mut out).unwrap();
    assert_eq!((slabs, more), (2, true));
    assert!(out.iter().all(|h| h.0 % PAGE_SIZE as u64 == 0), "slab starts: {out:?}");
    e.check_invariants().unwrap();
    // Named again: the same slabs, the same token.
    let mut again = [Handle(0); 2];
    assert_eq!(e.shrink_begin(0, id, &mut again).unwrap(), ReleasePlan { token, slabs: 2, more: true });
    assert_eq!(again, out);
    // Parked slabs are out of use: the next allocation comes from the third slab.
    let h = e.cache_alloc(0, id).unwrap().handle;
    assert!(out.iter().all(|s| h.0 / PAGE_SIZE as u64 != s.0 / PAGE_SIZE as u64));
    e.cache_free(0, id, h).unwrap();
    // Another token changes nothing; the right one releases exactly the two slabs.
    let before = snapshot(&e);
    assert_eq!(e.shrink_commit(0, id, token.wrapping_add(1)), Err(Error::InvalidArgument));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.shrink_commit(0, id, token).unwrap(), 2);
    assert_eq!(e.shrink_commit(0, id, token), Err(Error::InvalidArgument), "no plan pending any more");
    let plan = e.shrink_begin(0, id, &mut out).unwrap();
    assert_eq!((plan.slabs, plan.more), (1, false));
    assert_eq!(e.shrink_commit(0, id, plan.token).unwrap(), 1);
    e.cache_destroy(0, id).unwrap();
    e.check_invariants().unwrap();
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
}

#[test]
fn a_plan_of_a_non_dtor_cache_and_its_destroy_release_everything() {
    let mut e = engine();
    let id = e.cache_create(0, "plain", 1024, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, h).unwrap();
    let mut out = [Handle(0); 4];
    assert_eq!(e.shrink_begin(0, id, &mut out).unwrap().slabs, 1);
    // Destroy without the commit: the parked slab goes too.
    e.cache_destroy(0, id).unwrap();
    e.check_invariants().unwrap();
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
}

#[test]
fn pressure_may_not_reap_dtor_no_reap_or_rcu_caches() {
    let mut e = engine();
    let dtor = e.cache_create_with_dtor(0, "d", 64, 0, 0, false, true).unwrap();
    let no_reap = e.cache_create(0, "n", 64, 0, SLAB_NO_REAP, false).unwrap();
    let rcu = e.cache_create(0, "r", 64, 0, SLAB_TYPESAFE_BY_RCU, false).unwrap();
    let plain = e.cache_create(0, "p", 64, 0, 0, false).unwrap();
    assert_eq!(e.cache_reapable(0, dtor), Ok(false));
    assert_eq!(e.cache_reapable(0, no_reap), Ok(false));
    assert_eq!(e.cache_reapable(0, rcu), Ok(false));
    assert_eq!(e.cache_reapable(0, plain), Ok(true));
    // An explicit shrink still works on the last two.
    for id in [no_reap, rcu] {
        let h = e.cache_alloc(0, id).unwrap().handle;
        e.cache_free(0, id, h).unwrap();
        assert_eq!(e.cache_shrink(0, id).unwrap(), 1);
    }
}

#[test]
fn reclaim_account_pages_are_counted_as_reclaimable() {
    let mut e = engine();
    let r = e.cache_create(0, "r", 2048, 0, SLAB_RECLAIM_ACCOUNT, false).unwrap();
    let p = e.cache_create(0, "p", 2048, 0, 0, false).unwrap();
    for _ in 0..3 {
        e.cache_alloc(0, r).unwrap();
        e.cache_alloc(0, p).unwrap();
    }
    let pages = e.cache_info(0, r).unwrap();
    assert_eq!(e.reclaimable_pages(0), pages.num_slabs * pages.pages_per_slab);
    assert!(e.reclaimable_pages(0) > 0 && e.reclaimable_pages(0) < e.client_stats(0).unwrap().frames_used);
}

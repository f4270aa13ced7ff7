//! Rules 4–9: alloc, zalloc, ctor freshness, free validation, destroy, shrink.

mod common;
use common::*;
use memserver_engine::testing::Failure;
use protocol::{Error, Handle, PAGE_SIZE};

#[test]
fn alloc_prefers_partial_slab_then_empty_then_new() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 1024, 0, 0, false).unwrap(); // 4 per slab
    let h: Vec<_> = (0..8).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    assert_eq!(e.cache_info(0, id).unwrap().num_slabs, 2);
    // Empty slab 1 entirely, make slab 0 partial.
    for &x in &h[4..8] {
        e.cache_free(0, id, x).unwrap();
    }
    e.cache_free(0, id, h[1]).unwrap();
    // Partial slab first: the hole in slab 0.
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, h[1]);
    // Slab 0 full now: the empty slab, not a new one.
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, h[4]);
    assert_eq!(e.cache_info(0, id).unwrap().num_slabs, 2);
    e.check_invariants().unwrap();
}

#[test]
fn alloc_takes_new_slab_when_all_full() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 2048, 0, 0, false).unwrap(); // 2 per slab
    for n in 1..=6u32 {
        e.cache_alloc(0, id).unwrap();
        assert_eq!(e.cache_info(0, id).unwrap().num_slabs, n.div_ceil(2));
    }
    assert_eq!(e.client_stats(0).unwrap().frames_used, 3);
}

#[test]
fn alloc_failure_on_quota_changes_nothing() {
    let mut e = engine_with(64, &[(64, 2), (64, 64)]);
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    e.cache_alloc(0, id).unwrap();
    e.cache_alloc(0, id).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.cache_alloc(0, id), Err(Error::QuotaExceeded));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
}

#[test]
fn alloc_failure_on_pool_exhaustion_changes_nothing() {
    let mut e = engine_with(4, &[(64, 64), (64, 64)]);
    let a = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    let b = e.cache_create(1, "x", 4096, 0, 0, false).unwrap();
    e.cache_alloc(0, a).unwrap();
    e.cache_alloc(0, a).unwrap();
    e.cache_alloc(1, b).unwrap();
    e.cache_alloc(1, b).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.cache_alloc(0, a), Err(Error::OutOfMemory));
    assert_eq!(e.kmalloc(1, 8), Err(Error::OutOfMemory));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
}

#[test]
fn quota_is_checked_before_the_pool() {
    let mut e = engine_with(1, &[(64, 1)]);
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    e.cache_alloc(0, id).unwrap();
    assert_eq!(e.cache_alloc(0, id), Err(Error::QuotaExceeded));
}

#[test]
fn alloc_failure_when_platform_map_fails_changes_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let before = snapshot(&e);
    e.platform_mut().fail_map = Failure::next(Error::OutOfMemory);
    assert_eq!(e.cache_alloc(0, id), Err(Error::OutOfMemory));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
    assert!(e.cache_alloc(0, id).is_ok());
}

#[test]
fn window_exhaustion_is_out_of_memory() {
    let mut e = engine_with(64, &[(2, 64)]);
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    e.cache_alloc(0, id).unwrap();
    e.cache_alloc(0, id).unwrap();
    assert_eq!(e.cache_alloc(0, id), Err(Error::OutOfMemory));
}

#[test]
fn zalloc_returns_zeroed_memory() {
    let mut e = engine();
    let id = e.cache_create(0, "z", 100, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.platform_mut().fill_bytes(0, h.0, 100, 0x5a);
    e.cache_free(0, id, h).unwrap();
    let z = e.cache_zalloc(0, id).unwrap();
    assert_eq!(z.handle, h);
    assert_eq!(e.platform().bytes(0, h.0, 100), vec![0; 100]);
}

#[test]
fn zalloc_on_cache_with_ctor_rejected() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 100, 0, 0, true).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.cache_zalloc(0, id), Err(Error::InvalidArgument));
    assert_eq!(snapshot(&e), before);
}

/// Linux runs the ctor over every object of a new slab when it allocates the slab: the
/// allocation that creates a slab is `fresh` (the client constructs the whole slab), no other
/// allocation of that slab is, and reused objects never are.
#[test]
fn ctor_fresh_exactly_once_per_slab() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 1024, 0, 0, true).unwrap();
    let per_slab = e.cache_info(0, id).unwrap().objects_per_slab as usize;
    let first: Vec<_> = (0..per_slab).map(|_| e.cache_alloc(0, id).unwrap()).collect();
    assert!(first[0].fresh, "the allocation that created the slab");
    assert!(first[1..].iter().all(|a| !a.fresh), "the rest of the slab was constructed with it");
    for a in &first {
        e.cache_free(0, id, a.handle).unwrap();
    }
    for _ in 0..per_slab {
        assert!(!e.cache_alloc(0, id).unwrap().fresh, "reused objects are never reconstructed");
    }
    // A new slab: fresh again.
    assert!(e.cache_alloc(0, id).unwrap().fresh);
}

#[test]
fn ctor_fresh_only_for_the_allocation_that_creates_a_slab() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 512, 0, 0, true).unwrap();
    let a = e.cache_alloc(0, id).unwrap();
    let b = e.cache_alloc(0, id).unwrap();
    assert!(a.fresh && !b.fresh);
    e.cache_free(0, id, a.handle).unwrap();
    let again = e.cache_alloc(0, id).unwrap();
    assert_eq!((again.handle, again.fresh), (a.handle, false));
    let c = e.cache_alloc(0, id).unwrap();
    assert!(!c.fresh && c.handle != b.handle);
}

#[test]
fn ctor_fresh_again_after_shrink() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 64, 0, 0, true).unwrap();
    let a = e.cache_alloc(0, id).unwrap();
    e.cache_free(0, id, a.handle).unwrap();
    assert_eq!(e.cache_shrink(0, id).unwrap(), 1);
    assert!(e.cache_alloc(0, id).unwrap().fresh);
}

#[test]
fn free_rejects_handle_outside_window() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    e.cache_alloc(0, id).unwrap();
    for h in [512 * PAGE_SIZE as u64, !7u64, 1 << 40] {
        assert_eq!(e.cache_free(0, id, Handle(h)), Err(Error::InvalidObject));
    }
}

#[test]
fn free_rejects_handle_in_unmapped_page() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    e.cache_alloc(0, id).unwrap();
    assert_eq!(e.cache_free(0, id, Handle(100 * PAGE_SIZE as u64)), Err(Error::InvalidObject));
}

#[test]
fn free_rejects_handle_not_on_object_boundary() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 96, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    let before = snapshot(&e);
    assert_eq!(e.cache_free(0, id, Handle(h.0 + 8)), Err(Error::InvalidObject));
    assert_eq!(e.cache_free(0, id, Handle(h.0 + 88)), Err(Error::InvalidObject));
    assert_eq!(snapshot(&e), before);
}

#[test]
fn free_rejects_handle_with_low_flag_bits() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 96, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    for bit in 1..8 {
        assert_eq!(e.cache_free(0, id, Handle(h.0 | bit)), Err(Error::InvalidObject));
    }
    e.cache_free(0, id, h).unwrap();
}

#[test]
fn free_rejects_handle_beyond_last_object() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 1000, 0, 0, false).unwrap(); // 4 objects, 96 bytes left over
    let h = e.cache_alloc(0, id).unwrap().handle;
    assert_eq!(e.cache_free(0, id, Handle(h.0 + 4 * 1000)), Err(Error::InvalidObject));
}

#[test]
fn free_to_wrong_cache_reports_wrong_cache() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 64, 0, 0, false).unwrap();
    let b = e.cache_create(0, "b", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, a).unwrap().handle;
    let before = snapshot(&e);
    assert_eq!(e.cache_free(0, b, h), Err(Error::WrongCache));
    assert_eq!(snapshot(&e), before);
    e.cache_free(0, a, h).unwrap();
}

#[test]
fn double_free_reported() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    let _keep = e.cache_alloc(0, id).unwrap();
    e.cache_free(0, id, h).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.cache_free(0, id, h), Err(Error::DoubleFree));
    assert_eq!(snapshot(&e), before);
    // Never allocated but on a boundary: also not currently allocated.
    assert_eq!(e.cache_free(0, id, Handle(h.0 + 64 * 5)), Err(Error::DoubleFree));
}

#[test]
fn free_with_stale_or_foreign_cache_id_is_no_such_cache() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, a).unwrap().handle;
    assert_eq!(e.cache_free(1, a, h), Err(Error::NoSuchCache), "client 1 has no cache with that id");
    assert_eq!(e.cache_free(0, protocol::CacheId(0xdead_beef), h), Err(Error::NoSuchCache));
}

#[test]
fn free_by_other_client_never_touches_owner_memory() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 64, 0, 0, false).unwrap();
    let b = e.cache_create(1, "a", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, a).unwrap().handle;
    // Same offset in client 1's window: nothing there.
    assert_eq!(e.cache_free(1, b, h), Err(Error::InvalidObject));
    assert_eq!(e.cache_info(0, a).unwrap().active_objs, 1);
}

#[test]
fn destroy_busy_cache_reports_live_and_stays_usable() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let h: Vec<_> = (0..3).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    assert_eq!(e.cache_destroy(0, id), Err(Error::CacheBusy { live: 3 }));
    let more = e.cache_alloc(0, id).unwrap().handle;
    for x in h.into_iter().chain([more]) {
        e.cache_free(0, id, x).unwrap();
    }
    e.cache_destroy(0, id).unwrap();
    e.check_invariants().unwrap();
}

#[test]
fn destroy_returns_slabs_and_name_is_reusable() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    let h: Vec<_> = (0..5).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    for x in h {
        e.cache_free(0, id, x).unwrap();
    }
    let released = e.platform().pages_released;
    e.cache_destroy(0, id).unwrap();
    assert_eq!(e.platform().pages_released - released, 5);
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
    assert_eq!(e.pool_stats().free_frames, 256);
    assert!(e.cache_create(0, "x", 64, 0, 0, false).is_ok());
}

#[test]
fn destroyed_cache_id_is_stale() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    e.cache_destroy(0, id).unwrap();
    let again = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    assert_ne!(id, again, "same slot, new generation");
    assert_eq!(e.cache_alloc(0, id), Err(Error::NoSuchCache));
    assert_eq!(e.cache_destroy(0, id), Err(Error::NoSuchCache));
    assert_eq!(e.cache_info(0, id).map(|_| ()), Err(Error::NoSuchCache));
}

#[test]
fn kmalloc_cache_cannot_be_destroyed() {
    let mut e = engine();
    let km = e.cache_ids(0).next().unwrap();
    assert!(e.cache_info(0, km).unwrap().is_kmalloc);
    assert_eq!(e.cache_destroy(0, km), Err(Error::InvalidArgument));
}

#[test]
fn shrink_releases_empty_slabs_and_counts_pages() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 2048, 0, 0, false).unwrap(); // 2 per order-0 slab
    let h: Vec<_> = (0..6).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    for &x in &h[2..] {
        e.cache_free(0, id, x).unwrap();
    }
    let released = e.platform().pages_released;
    assert_eq!(e.cache_shrink(0, id).unwrap(), 2);
    assert_eq!(e.platform().pages_released - released, 2, "Platform::release hook called");
    let i = e.cache_info(0, id).unwrap();
    assert_eq!((i.num_slabs, i.active_objs), (1, 2));
    assert_eq!(e.client_stats(0).unwrap().frames_used, 1);
    assert_eq!(e.cache_shrink(0, id).unwrap(), 0);
    e.check_invariants().unwrap();
}

#[test]
fn shrink_keeps_partial_and_full_slabs() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 1024, 0, 0, false).unwrap();
    let h: Vec<_> = (0..6).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    assert_eq!(e.cache_shrink(0, id).unwrap(), 0);
    for x in h {
        e.cache_free(0, id, x).unwrap();
    }
    assert_eq!(e.cache_shrink(0, id).unwrap(), 2);
}

#[test]
fn shrink_of_multi_page_slabs_counts_pages() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 8192, 0, 0, false).unwrap(); // order 1
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, h).unwrap();
    assert_eq!(e.cache_shrink(0, id).unwrap(), 2);
}

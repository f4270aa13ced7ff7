//! Bulk alloc/free for magazines.

mod common;
use common::*;
use protocol::{Error, Handle};

/// The fresh mask marks each handle whose allocation created a slab: 1024-byte objects are 4
/// to a slab; the first slab (created by an earlier allocation) serves the first 4 of the 6,
/// the 5th creates the second slab, the 6th comes from it.
#[test]
fn alloc_bulk_returns_handles_and_fresh_mask() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 1024, 0, 0, true).unwrap();
    let per_slab = e.cache_info(0, id).unwrap().objects_per_slab as usize;
    assert_eq!(per_slab, 4);
    let first = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, first).unwrap();
    let mut out = [Handle(0); 6];
    let (n, fresh) = e.cache_alloc_bulk(0, id, &mut out).unwrap();
    assert_eq!(n, 6);
    assert_eq!(out[0], first);
    assert_eq!(fresh, 0b01_0000, "only the 5th object's slab is new");
    e.check_invariants().unwrap();
}

#[test]
fn alloc_bulk_stops_early_at_quota() {
    let mut e = engine_with(64, &[(64, 1)]);
    let id = e.cache_create(0, "c", 1024, 0, 0, false).unwrap();
    let mut out = [Handle(0); 10];
    assert_eq!(e.cache_alloc_bulk(0, id, &mut out).unwrap(), (4, 0b0001));
    assert_eq!(e.cache_alloc_bulk(0, id, &mut out), Err(Error::QuotaExceeded));
    let mut too_many = [Handle(0); 65];
    assert_eq!(e.cache_alloc_bulk(0, id, &mut too_many), Err(Error::InvalidArgument));
}

#[test]
fn free_bulk_frees_all() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 64, 0, 0, false).unwrap();
    let mut out = [Handle(0); 64];
    e.cache_alloc_bulk(0, id, &mut out).unwrap();
    e.cache_free_bulk(0, id, &out).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().active_objs, 0);
    e.check_invariants().unwrap();
}

#[test]
fn free_bulk_rejects_duplicates_and_changes_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "c", 64, 0, 0, false).unwrap();
    let mut out = [Handle(0); 4];
    e.cache_alloc_bulk(0, id, &mut out).unwrap();
    let before = snapshot(&e);
    let dup = [out[0], out[1], out[2], out[1]];
    assert_eq!(e.cache_free_bulk(0, id, &dup), Err((3, Error::DoubleFree)));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
    e.cache_free_bulk(0, id, &out).unwrap();
}

#[test]
fn free_bulk_is_all_or_nothing() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 64, 0, 0, false).unwrap();
    let b = e.cache_create(0, "b", 64, 0, 0, false).unwrap();
    let mut out = [Handle(0); 3];
    e.cache_alloc_bulk(0, a, &mut out).unwrap();
    let other = e.cache_alloc(0, b).unwrap().handle;
    let before = snapshot(&e);
    assert_eq!(e.cache_free_bulk(0, a, &[out[0], out[1], other]), Err((2, Error::WrongCache)));
    assert_eq!(e.cache_free_bulk(0, a, &[out[0], Handle(out[1].0 + 1)]), Err((1, Error::InvalidObject)));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
}

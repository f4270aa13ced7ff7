//! Rules 12–14: private metadata and isolation, reclaim, slabinfo.

mod common;
use common::*;
use protocol::{Error, Handle};

#[test]
fn metadata_is_not_in_object_memory() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let h: Vec<_> = (0..64).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    // The client scribbles over its whole slab: allocated and free objects alike.
    e.platform_mut().fill_bytes(0, 0, 4096, 0xff);
    for &x in &h[..32] {
        e.cache_free(0, id, x).unwrap();
    }
    assert_eq!(e.cache_free(0, id, h[0]), Err(Error::DoubleFree));
    let again: Vec<_> = (0..32).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    assert_eq!(again, h[..32].to_vec());
    e.check_invariants().unwrap();
}

#[test]
fn handle_lookup_is_per_client_window() {
    let mut e = engine();
    let a = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let b = e.cache_create(1, "x", 64, 0, 0, false).unwrap();
    let ha = e.cache_alloc(0, a).unwrap().handle;
    let hb = e.cache_alloc(1, b).unwrap().handle;
    assert_eq!(ha, hb, "same offset, different windows");
    e.cache_free(1, b, hb).unwrap();
    assert_eq!(e.cache_info(0, a).unwrap().active_objs, 1);
    assert_eq!(e.cache_free(1, b, ha), Err(Error::DoubleFree), "client 1 only reaches its own object");
    e.cache_free(0, a, ha).unwrap();
}

#[test]
fn cache_ids_are_per_client() {
    let mut e = engine();
    let a = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    e.cache_alloc(0, a).unwrap();
    assert_eq!(e.cache_destroy(1, a), Err(Error::NoSuchCache));
    assert_eq!(e.cache_shrink(2, a), Err(Error::NoSuchCache));
}

#[test]
fn reclaim_returns_everything_and_accounting_is_exact() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 100, 0, protocol::flags::SLAB_STORE_USER, false).unwrap();
    let b =
        e.cache_create(0, "b", 3000, 0, protocol::flags::SLAB_POISON | protocol::flags::SLAB_RED_ZONE, false).unwrap();
    for _ in 0..100 {
        e.cache_alloc(0, a).unwrap();
    }
    for _ in 0..7 {
        e.cache_alloc(0, b).unwrap();
    }
    e.kmalloc(0, 50).unwrap();
    e.kmalloc(0, 100_000).unwrap();
    let other = e.cache_create(1, "a", 64, 0, 0, false).unwrap();
    e.cache_alloc(1, other).unwrap();
    let used = e.client_stats(0).unwrap().frames_used;
    let free_before = e.pool_stats().free_frames;
    let freed = e.reclaim(0).unwrap();
    assert_eq!(freed, used);
    assert_eq!(e.pool_stats().free_frames, free_before + used);
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.caches), (0, 13), "fresh kmalloc caches only");
    assert_eq!(e.cache_alloc(0, a), Err(Error::NoSuchCache));
    assert_eq!(e.cache_info(1, other).unwrap().active_objs, 1, "other clients untouched");
    e.check_invariants().unwrap();
    // Still attached and usable.
    let a2 = e.cache_create(0, "a", 100, 0, 0, false).unwrap();
    e.cache_alloc(0, a2).unwrap();
    e.kmalloc(0, 10).unwrap();
    e.check_invariants().unwrap();
}

#[test]
fn detach_forgets_client_and_allows_reattach() {
    let mut e = engine();
    let a = e.cache_create(2, "a", 100, 0, 0, false).unwrap();
    e.cache_alloc(2, a).unwrap();
    assert_eq!(e.client_detach(2).unwrap(), 1);
    assert_eq!(e.client_stats(2), Err(Error::InvalidArgument));
    assert_eq!(e.kmalloc(2, 8), Err(Error::InvalidArgument));
    e.check_invariants().unwrap();
    e.client_attach(2, 64, 8).unwrap();
    assert_eq!(e.client_attach(2, 64, 8), Err(Error::InvalidArgument));
    assert_eq!(e.cache_ids(2).count(), 13);
    e.check_invariants().unwrap();
}

#[test]
fn attach_rejects_bad_arguments() {
    let mut e = engine_with(16, &[(16, 16)]);
    assert_eq!(e.client_attach(1, 16, 16), Err(Error::InvalidArgument), "beyond max_clients");
    e.client_detach(0).unwrap();
    assert_eq!(e.client_attach(0, 0, 16), Err(Error::InvalidArgument));
    assert_eq!(e.client_attach(0, 1025, 16), Err(Error::InvalidArgument));
}

#[test]
fn slabinfo_has_kernel_header_and_rows() {
    let mut e = engine();
    let id = e.cache_create(0, "dentry", 192, 0, 0, false).unwrap();
    for _ in 0..30 {
        e.cache_alloc(0, id).unwrap();
    }
    let mut s = String::new();
    e.write_slabinfo(Some(0), &mut s).unwrap();
    let lines: Vec<_> = s.lines().collect();
    assert_eq!(lines[0], "slabinfo - version: 2.1");
    assert!(lines[1].starts_with("# name            <active_objs> <num_objs> <objsize>"));
    assert_eq!(lines.len(), 2 + 14);
    let row = lines.iter().find(|l| l.starts_with("dentry ")).unwrap();
    assert_eq!(
        *row,
        "dentry                30     42    192   21    1 : tunables    0    0    0 : slabdata      2      2      0"
    );
    assert!(lines[2].starts_with("kmalloc-8 "));
}

#[test]
fn slabinfo_all_clients_in_client_order() {
    let mut e = engine();
    e.cache_create(1, "one", 8, 0, 0, false).unwrap();
    e.cache_create(0, "zero", 8, 0, 0, false).unwrap();
    let mut rows = vec![];
    e.slabinfo_rows(None, |r| rows.push((r.client, r.name.to_string())));
    assert_eq!(rows.len(), 3 * 13 + 2);
    assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
    let zero = rows.iter().position(|r| r.1 == "zero").unwrap();
    let one = rows.iter().position(|r| r.1 == "one").unwrap();
    assert!(zero < one);
}

#[test]
fn slabinfo_counts_active_and_total() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 1024, 0, 0, false).unwrap();
    let h: Vec<_> = (0..9).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    for &x in &h[4..8] {
        e.cache_free(0, id, x).unwrap();
    }
    let i = e.cache_info(0, id).unwrap();
    assert_eq!((i.active_objs, i.num_objs, i.active_slabs, i.num_slabs), (5, 12, 2, 3));
    let _ = Handle(0);
}

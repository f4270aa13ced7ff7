//! Rule 11: kmalloc / kfree.

mod common;
use common::*;
use protocol::{Error, Handle, PAGE_SIZE};

/// The kmalloc class a `size` request is served from (the cache whose count went up).
fn class_of(size: u32) -> String {
    let mut e = engine();
    e.kmalloc(0, size).unwrap();
    let mut hit = e.cache_ids(0).map(|id| e.cache_info(0, id).unwrap()).filter(|i| i.active_objs == 1);
    hit.next().unwrap().name.to_string()
}

#[test]
fn kmalloc_54_bytes_served_from_kmalloc_64() {
    assert_eq!(class_of(54), "kmalloc-64");
}

#[test]
fn kmalloc_picks_smallest_class_that_fits() {
    for (size, name) in [
        (1, "kmalloc-8"),
        (8, "kmalloc-8"),
        (9, "kmalloc-16"),
        (65, "kmalloc-96"),
        (96, "kmalloc-96"),
        (97, "kmalloc-128"),
        (129, "kmalloc-192"),
        (193, "kmalloc-256"),
        (1000, "kmalloc-1k"),
        (2048, "kmalloc-2k"),
        (4000, "kmalloc-4k"),
        (8192, "kmalloc-8k"),
    ] {
        assert_eq!(class_of(size), name, "size {size}");
    }
}

#[test]
fn kmalloc_caches_have_linux_names_and_sizes() {
    let e = engine();
    let names: Vec<_> = e.cache_ids(0).map(|id| e.cache_info(0, id).unwrap()).collect();
    let got: Vec<_> = names.iter().map(|i| (i.name.to_string(), i.stride, i.is_kmalloc)).collect();
    let want = [
        ("kmalloc-8", 8),
        ("kmalloc-16", 16),
        ("kmalloc-32", 32),
        ("kmalloc-64", 64),
        ("kmalloc-96", 96),
        ("kmalloc-128", 128),
        ("kmalloc-192", 192),
        ("kmalloc-256", 256),
        ("kmalloc-512", 512),
        ("kmalloc-1k", 1024),
        ("kmalloc-2k", 2048),
        ("kmalloc-4k", 4096),
        ("kmalloc-8k", 8192),
    ];
    assert_eq!(got, want.map(|(n, s)| (n.to_string(), s, true)).to_vec());
}

#[test]
fn kmalloc_zero_size_rejected() {
    let mut e = engine();
    assert_eq!(e.kmalloc(0, 0), Err(Error::InvalidArgument));
}

#[test]
fn kmalloc_above_4mib_rejected() {
    let mut e = engine_with(2048, &[(1024, 2048)]);
    assert_eq!(e.kmalloc(0, (4 << 20) + 1), Err(Error::InvalidArgument));
    assert!(e.kmalloc(0, 4 << 20).is_ok());
}

#[test]
fn kmalloc_large_takes_whole_contiguous_pages_counted_against_quota() {
    let mut e = engine_with(64, &[(64, 10)]);
    let h = e.kmalloc(0, 8193).unwrap();
    assert_eq!(h.0 % PAGE_SIZE as u64, 0);
    assert_eq!(e.client_stats(0).unwrap().frames_used, 3);
    let h2 = e.kmalloc(0, 5 * 4096).unwrap();
    assert_eq!(h2.0, h.0 + 3 * 4096, "contiguous in the window");
    assert_eq!(e.client_stats(0).unwrap().frames_used, 8);
    let before = snapshot(&e);
    assert_eq!(e.kmalloc(0, 3 * 4096), Err(Error::QuotaExceeded));
    assert_eq!(snapshot(&e), before);
    e.check_invariants().unwrap();
}

#[test]
fn kfree_large_returns_pages_and_second_kfree_is_double_free() {
    let mut e = engine_with(64, &[(64, 64)]);
    let h = e.kmalloc(0, 20000).unwrap();
    let released = e.platform().pages_released;
    e.kfree(0, h).unwrap();
    assert_eq!(e.platform().pages_released - released, 5);
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
    assert_eq!(e.pool_stats().free_frames, 64);
    assert_eq!(e.kfree(0, h), Err(Error::DoubleFree));
    e.check_invariants().unwrap();
}

#[test]
fn kfree_inside_large_allocation_is_invalid_object() {
    let mut e = engine_with(64, &[(64, 64)]);
    let h = e.kmalloc(0, 20000).unwrap();
    assert_eq!(e.kfree(0, Handle(h.0 + 4096)), Err(Error::InvalidObject));
    assert_eq!(e.kfree(0, Handle(h.0 + 64)), Err(Error::InvalidObject));
    e.kfree(0, h).unwrap();
}

/// Linux's `kfree()` frees an object of any cache to the cache its slab belongs to.
#[test]
fn kfree_of_a_cache_object_frees_it_to_its_cache() {
    let mut e = engine();
    let id = e.cache_create(0, "mine", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.kfree(0, h).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().active_objs, 0);
    assert_eq!(e.cache_free(0, id, h), Err(Error::DoubleFree));
    e.check_invariants().unwrap();
}

#[test]
fn kfree_of_non_object_is_invalid_and_twice_is_double_free() {
    let mut e = engine();
    let h = e.kmalloc(0, 100).unwrap();
    assert_eq!(e.kfree(0, Handle(h.0 + 8)), Err(Error::InvalidObject));
    assert_eq!(e.kfree(0, Handle(300 * 4096)), Err(Error::InvalidObject));
    let _keep = e.kmalloc(0, 100).unwrap();
    e.kfree(0, h).unwrap();
    assert_eq!(e.kfree(0, h), Err(Error::DoubleFree));
}

#[test]
fn kmalloc_caches_can_be_shrunk_and_listed() {
    let mut e = engine();
    let h = e.kmalloc(0, 100).unwrap();
    e.kfree(0, h).unwrap();
    let km128 = e.cache_ids(0).find(|&id| e.cache_info(0, id).unwrap().name.as_str() == "kmalloc-128").unwrap();
    assert_eq!(e.cache_shrink(0, km128).unwrap(), 1);
    let mut n = 0;
    e.slabinfo_rows(Some(0), |_| n += 1);
    assert_eq!(n, 13);
}

#[test]
fn kmalloc_object_freed_with_cache_free_of_its_cache() {
    let mut e = engine();
    let h = e.kmalloc(0, 64).unwrap();
    let km64 = e.cache_ids(0).nth(3).unwrap();
    e.cache_free(0, km64, h).unwrap();
}

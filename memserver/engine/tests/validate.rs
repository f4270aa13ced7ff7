//! `validate_slab_cache()`: the cases of Linux's `lib/slub_kunit.c`, at the engine. Linux
//! counts a report and a fix per corrupted region (`slab_errors` 2); the engine counts the
//! region once (`errors` 1), and repairs it.

mod common;
use common::*;
use protocol::flags::{
    POISON_FREE, RED_ACTIVE, RED_INACTIVE, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SLAB_TYPESAFE_BY_RCU,
};
use protocol::{Corruption, Error, Finding, Handle};

fn corruption(cache: protocol::CacheId, object: Handle, offset: i32, found: u8, expected: u8) -> Corruption {
    Corruption { cache, object, offset, found, expected }
}

/// `test_clobber_zone`: a byte past an allocated object.
#[test]
fn clobbered_right_red_zone_of_an_allocated_object_is_one_error() {
    let mut e = engine();
    let s = e.cache_create(0, "TestSlub_RZ_alloc", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let p = e.cache_alloc(0, s).unwrap().handle;
    e.platform_mut().fill_bytes(0, p.0 + 64, 1, 0x12);
    let report = e.cache_validate(0, s).unwrap();
    assert_eq!(report.errors, 1);
    assert_eq!(report.first, Some(Finding::RedZone(corruption(s, p, 64, 0x12, RED_ACTIVE))));
    assert_eq!(e.cache_validate(0, s).unwrap().errors, 0, "repaired");
    e.cache_free(0, s, p).unwrap();
    e.cache_destroy(0, s).unwrap();
}

/// `test_first_word`: the first byte of a freed poisoned object.
#[test]
fn written_first_word_of_a_free_object_is_one_error() {
    let mut e = engine();
    let s = e.cache_create(0, "TestSlub_1th_word_free", 64, 0, SLAB_POISON, false).unwrap();
    let p = e.cache_alloc(0, s).unwrap().handle;
    e.cache_free(0, s, p).unwrap();
    e.platform_mut().fill_bytes(0, p.0, 1, 0x78);
    let report = e.cache_validate(0, s).unwrap();
    assert_eq!(report.errors, 1);
    assert_eq!(report.first, Some(Finding::Poison(corruption(s, p, 0, 0x78, POISON_FREE))));
    assert_eq!(e.cache_validate(0, s).unwrap().errors, 0, "repaired");
    e.cache_destroy(0, s).unwrap();
}

/// `test_clobber_50th_byte`.
#[test]
fn written_50th_byte_of_a_free_object_is_one_error() {
    let mut e = engine();
    let s = e.cache_create(0, "TestSlub_50th_word_free", 64, 0, SLAB_POISON, false).unwrap();
    let p = e.cache_alloc(0, s).unwrap().handle;
    e.cache_free(0, s, p).unwrap();
    e.platform_mut().fill_bytes(0, p.0 + 50, 1, 0x9a);
    let report = e.cache_validate(0, s).unwrap();
    assert_eq!(report.errors, 1);
    assert_eq!(report.first, Some(Finding::Poison(corruption(s, p, 50, 0x9a, POISON_FREE))));
}

/// `test_clobber_redzone_free`: a byte past a freed object.
#[test]
fn clobbered_red_zone_of_a_free_object_is_one_error() {
    let mut e = engine();
    let s = e.cache_create(0, "TestSlub_RZ_free", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let p = e.cache_alloc(0, s).unwrap().handle;
    e.cache_free(0, s, p).unwrap();
    e.platform_mut().fill_bytes(0, p.0 + 64, 1, 0xab);
    let report = e.cache_validate(0, s).unwrap();
    assert_eq!(report.errors, 1);
    assert_eq!(report.first, Some(Finding::RedZone(corruption(s, p, 64, 0xab, RED_INACTIVE))));
}

/// `test_kmalloc_redzone_access`: two bytes of the slack of `kmalloc(18)` in a 32-byte object
/// are one corrupted region.
#[test]
fn written_kmalloc_slack_is_one_error() {
    let mut e = engine_with(256, &[]);
    e.client_attach_with(0, 512, 128, [SLAB_RED_ZONE | SLAB_STORE_USER; 13]).unwrap();
    let p = e.kmalloc(0, 18).unwrap();
    e.platform_mut().fill_bytes(0, p.0 + 18, 2, 0xab);
    let kmalloc_32 = e.cache_ids(0).nth(2).unwrap();
    let report = e.cache_validate(0, kmalloc_32).unwrap();
    assert_eq!(report.errors, 1);
    assert_eq!(report.first, Some(Finding::RedZone(corruption(kmalloc_32, p, 18, 0xab, RED_ACTIVE))));
    assert_eq!(e.cache_validate(0, kmalloc_32).unwrap().errors, 0, "repaired");
    e.kfree(0, p).unwrap();
}

/// Each region of each object counts once: an object with both red zones written and a free
/// object with its poison written are three errors.
#[test]
fn each_corrupted_region_counts_once() {
    let mut e = engine();
    let s = e.cache_create(0, "regions", 64, 0, SLAB_RED_ZONE | SLAB_POISON, false).unwrap();
    let a = e.cache_alloc(0, s).unwrap().handle;
    let b = e.cache_alloc(0, s).unwrap().handle;
    e.cache_free(0, s, b).unwrap();
    e.platform_mut().fill_bytes(0, a.0 - 1, 1, 0);
    e.platform_mut().fill_bytes(0, a.0 + 64, 3, 0);
    e.platform_mut().fill_bytes(0, b.0 + 10, 20, 0);
    let report = e.cache_validate(0, s).unwrap();
    assert_eq!((report.errors, report.objects), (3, e.cache_info(0, s).unwrap().objects_per_slab));
    assert_eq!(report.slabs, 1);
    assert_eq!(report.first, Some(Finding::RedZone(corruption(s, a, -1, 0, RED_ACTIVE))));
    assert_eq!(e.cache_validate(0, s).unwrap().errors, 0);
    e.check_invariants().unwrap();
}

/// `test_leak_destroy`: Linux reports the leaked object and destroys anyway; here the destroy
/// is refused with the live count and the cache stays intact and valid.
#[test]
fn destroy_with_a_leaked_object_is_busy_and_the_cache_stays_valid() {
    let mut e = engine();
    let s = e.cache_create(0, "TestSlub_leak_destroy", 64, 0, 0, false).unwrap();
    e.cache_alloc(0, s).unwrap();
    assert_eq!(e.cache_destroy(0, s), Err(Error::CacheBusy { live: 1 }));
    assert_eq!(e.cache_validate(0, s).unwrap().errors, 0);
    e.cache_alloc(0, s).unwrap();
}

#[test]
fn typesafe_by_rcu_objects_are_not_poisoned() {
    let mut e = engine();
    let s = e.cache_create(0, "rcu", 64, 0, SLAB_POISON | SLAB_TYPESAFE_BY_RCU, false).unwrap();
    let p = e.cache_alloc(0, s).unwrap().handle;
    e.platform_mut().fill_bytes(0, p.0, 64, 0x42);
    e.cache_free(0, s, p).unwrap();
    assert_eq!(e.platform().bytes(0, p.0, 64), vec![0x42; 64], "a reader may still look at it");
    e.platform_mut().fill_bytes(0, p.0, 1, 0x43);
    assert_eq!(e.cache_validate(0, s).unwrap().errors, 0);
    assert_eq!(e.cache_alloc(0, s).unwrap().handle, p);
}

#[test]
fn validate_of_an_unknown_cache_name_is_no_such_cache() {
    let e = engine();
    assert_eq!(e.cache_by_name(0, "nothing"), Err(Error::NoSuchCache));
    assert!(e.cache_by_name(0, "kmalloc-64").is_ok());
    assert_eq!(e.cache_by_name(9, "kmalloc-64"), Err(Error::NoSuchCache));
}

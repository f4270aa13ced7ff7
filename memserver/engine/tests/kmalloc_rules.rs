//! Linux's kmalloc rules in the engine: natural alignment, `slub_debug` kmalloc classes, the
//! red-zoned kmalloc slack (`orig_size`), `krealloc`, and the tables the client reads.

mod common;
use common::*;
use memserver_engine::KMALLOC_SIZES;
use protocol::control::{NOT_KMALLOC, PageOwnerKind};
use protocol::flags::{RED_ACTIVE, SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER};
use protocol::{Error, Handle, PAGE_SIZE};

/// An engine whose client 0 has `flags` on every kmalloc class.
fn debug_engine(flags: u32) -> TestEngine {
    let mut e = engine_with(256, &[]);
    e.client_attach_with(0, 512, 128, [flags; 13]).unwrap();
    e
}

fn bytes(e: &TestEngine, h: Handle, from: u32, to: u32) -> Vec<u8> {
    e.platform().bytes(0, h.0 + u64::from(from), (to - from) as usize)
}

/// Since Linux 5.4 a power-of-two `kmalloc` is aligned to its size; any other size to the
/// largest power of two dividing it. With red zones too, and for whole pages.
#[test]
fn kmalloc_power_of_two_sizes_are_naturally_aligned() {
    for flags in [0, SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER] {
        let mut e = engine_config(memserver_engine::EngineConfig::new(8192, 1, 8192), &[]);
        e.client_attach_with(0, 8192, 8192, [flags; 13]).unwrap();
        for size in (3..=22).map(|k| 1u32 << k).chain([24, 48, 80, 96, 160, 192, 3 * 4096, 6 * 4096]) {
            for _ in 0..3 {
                let h = e.kmalloc(0, size).unwrap();
                let natural = 1u64 << size.trailing_zeros();
                assert_eq!(h.0 % natural, 0, "kmalloc({size}) at {:#x} with flags {flags:#x}", h.0);
            }
        }
        e.check_invariants().unwrap();
    }
}

#[test]
fn slub_debug_flags_make_kmalloc_classes_debug_caches() {
    let flags = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE;
    let mut classes = [0u32; 13];
    classes[2] = flags;
    let mut e = engine_with(256, &[]);
    e.client_attach_with(0, 512, 128, classes).unwrap();
    let infos: Vec<_> = e.cache_ids(0).map(|id| e.cache_info(0, id).unwrap()).collect();
    assert_eq!(infos[2].name.as_str(), "kmalloc-32");
    assert_eq!(infos[2].flags, flags);
    assert!(infos.iter().enumerate().all(|(i, c)| i == 2 || c.flags == 0));
    // A reclaim (what a disconnect does before forgetting the client) keeps the setting.
    e.reclaim(0).unwrap();
    let again: Vec<_> = e.cache_ids(0).map(|id| e.cache_info(0, id).unwrap().flags).collect();
    assert_eq!(again[2], flags);
    // Only debug flags may be given.
    let mut e = engine_with(256, &[]);
    assert_eq!(e.client_attach_with(0, 512, 128, [protocol::flags::SLAB_PANIC; 13]), Err(Error::InvalidArgument));
}

/// Linux tracks `orig_size` on red-zoned kmalloc caches: the slack between the requested size
/// and the class size is red zone, and writing into it is caught on free (and repaired).
#[test]
fn kmalloc_slack_is_red_zone_and_caught_on_free() {
    let mut e = debug_engine(SLAB_RED_ZONE);
    let h = e.kmalloc(0, 18).unwrap();
    assert_eq!(bytes(&e, h, 18, 32), vec![RED_ACTIVE; 14], "kmalloc(18) from kmalloc-32: 14 bytes of slack");
    e.platform_mut().fill_bytes(0, h.0, 18, 0x5a);
    e.platform_mut().fill_bytes(0, h.0 + 19, 1, 0xab);
    let Err(Error::RedZoneCorrupted(c)) = e.kfree(0, h) else { panic!("slack overwrite not caught") };
    assert_eq!((c.offset, c.found, c.expected), (19, 0xab, RED_ACTIVE));
    assert_eq!(bytes(&e, h, 18, 32), vec![RED_ACTIVE; 14], "repaired");
    e.kfree(0, h).unwrap();
    e.check_invariants().unwrap();
}

/// `kmem_cache_alloc` on a kmalloc cache (no size asked): the whole object is the caller's.
#[test]
fn a_kmalloc_cache_object_allocated_by_cache_has_no_slack() {
    let mut e = debug_engine(SLAB_RED_ZONE);
    let kmalloc_32 = e.cache_ids(0).nth(2).unwrap();
    let h = e.cache_alloc(0, kmalloc_32).unwrap().handle;
    e.platform_mut().fill_bytes(0, h.0, 32, 0x11);
    e.kfree(0, h).unwrap();
}

/// `test_krealloc_redzone_zeroing` of `lib/slub_kunit.c`, at the engine.
#[test]
fn krealloc_redzone_zeroing() {
    let mut e = debug_engine(SLAB_RED_ZONE | SLAB_STORE_USER);
    let p = e.kmalloc(0, 48).unwrap();
    e.platform_mut().fill_bytes(0, p.0, 48, 0xff);
    // Shrink: the tail becomes red zone.
    let p = e.krealloc(0, p, 40, true).unwrap();
    assert_eq!(bytes(&e, p, 40, 64), vec![RED_ACTIVE; 24]);
    // Grow within the 64-byte object: the new bytes are zero, the rest red zone.
    let p = e.krealloc(0, p, 56, true).unwrap();
    assert_eq!(bytes(&e, p, 40, 56), vec![0; 16]);
    assert_eq!(bytes(&e, p, 56, 64), vec![RED_ACTIVE; 8]);
    let kmalloc_64 = e.cache_ids(0).nth(3).unwrap();
    assert_eq!(e.cache_validate(0, kmalloc_64).unwrap().errors, 0);
    // Grow past the object: a new 128-byte object, the old bytes copied, the rest zero.
    e.platform_mut().fill_bytes(0, p.0, 56, 0xff);
    let q = e.krealloc(0, p, 112, true).unwrap();
    assert_ne!(q, p);
    assert_eq!(bytes(&e, q, 0, 56), vec![0xff; 56]);
    assert_eq!(bytes(&e, q, 56, 112), vec![0; 56]);
    assert_eq!(bytes(&e, q, 112, 128), vec![RED_ACTIVE; 16]);
    assert_eq!(e.kfree(0, p), Err(Error::DoubleFree), "the old object was freed");
    e.kfree(0, q).unwrap();
    e.check_invariants().unwrap();
}

#[test]
fn krealloc_without_zero_keeps_the_bytes_and_large_objects_resize_in_their_pages() {
    let mut e = engine_with(64, &[(64, 64)]);
    let p = e.kmalloc(0, 100).unwrap();
    e.platform_mut().fill_bytes(0, p.0, 128, 0x33);
    assert_eq!(e.krealloc(0, p, 120, false).unwrap(), p, "fits kmalloc-128");
    assert_eq!(bytes(&e, p, 0, 128), vec![0x33; 128]);
    let q = e.krealloc(0, p, 200, false).unwrap();
    assert_eq!(bytes(&e, q, 0, 128), vec![0x33; 128], "the whole old object is copied");
    let big = e.kmalloc(0, 10_000).unwrap();
    assert_eq!(e.krealloc(0, big, 12_288, false).unwrap(), big, "three pages hold 12 KiB");
    let bigger = e.krealloc(0, big, 12_289, true).unwrap();
    assert_ne!(bigger, big);
    assert_eq!(e.krealloc(0, bigger, 0, false), Err(Error::InvalidArgument));
    assert_eq!(e.krealloc(0, Handle(bigger.0 + 8), 8, false), Err(Error::InvalidObject));
    e.check_invariants().unwrap();
}

#[test]
fn failed_krealloc_changes_nothing() {
    let mut e = engine_with(64, &[(64, 2)]);
    let p = e.kmalloc(0, 4096).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.krealloc(0, p, 20_000, false), Err(Error::QuotaExceeded));
    assert_eq!(snapshot(&e), before);
    e.kfree(0, p).unwrap();
}

/// The page-owner table and the cache table, from the engine's truth.
#[test]
fn page_owners_and_cache_entries_describe_the_window() {
    let mut e = engine();
    let h = e.kmalloc(0, 64).unwrap();
    let page = (h.0 / PAGE_SIZE as u64) as u32;
    let owner = e.page_owner(0, page);
    assert_eq!(owner.kind(), PageOwnerKind::Slab);
    let kmalloc_64 = e.cache_ids(0).nth(3).unwrap();
    let (index, entry) = e.cache_entry(0, kmalloc_64).unwrap();
    assert_eq!((owner.cache, owner.value), (index, 0));
    assert_eq!(owner.kmalloc_class, 3, "kfree finds the class in the entry");
    assert_eq!((entry.cache, entry.object_size, entry.kmalloc_class), (kmalloc_64.0, 64, 3));
    let big = e.kmalloc(0, 3 * 4096).unwrap();
    let first = (big.0 / PAGE_SIZE as u64) as u32;
    assert_eq!(e.page_owner(0, first).kind(), PageOwnerKind::Large);
    assert_eq!(e.page_owner(0, first).value, 3);
    assert_eq!(e.page_owner(0, first + 2).kind(), PageOwnerKind::LargeTail);
    assert_eq!(e.page_owner(0, first + 2).value, 2);
    let mine = e.cache_create(0, "mine", 40, 0, 0, false).unwrap();
    assert_eq!(e.cache_entry(0, mine).unwrap().1.kmalloc_class, NOT_KMALLOC);
    let object = e.cache_alloc(0, mine).unwrap().handle;
    let slab_page = e.page_owner(0, (object.0 / PAGE_SIZE as u64) as u32);
    assert_eq!((slab_page.kind(), slab_page.kmalloc_class), (PageOwnerKind::Slab, NOT_KMALLOC));
    // Every change of owner is logged for the dispatch to publish.
    let mut changed = Vec::new();
    e.take_page_changes(|c, first, count| changed.push((c, first, count)));
    assert!(changed.contains(&(0, page, 1)) && changed.contains(&(0, first, 3)), "{changed:?}");
    e.kfree(0, big).unwrap();
    assert_eq!(e.page_owner(0, first).kind(), PageOwnerKind::None);
    let mut changed = Vec::new();
    e.take_page_changes(|c, first, count| changed.push((c, first, count)));
    assert_eq!(changed, [(0, first, 3)]);
}

#[test]
fn every_kmalloc_class_is_listed_with_its_class_index() {
    let e = engine();
    for (class, (id, &size)) in e.cache_ids(0).zip(KMALLOC_SIZES.iter()).enumerate() {
        let (_, entry) = e.cache_entry(0, id).unwrap();
        assert_eq!((usize::from(entry.kmalloc_class), entry.object_size), (class, size));
        assert_eq!(e.kmalloc_cache(0, class), Some(id));
    }
}

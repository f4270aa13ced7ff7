//! Rules 1–3: cache_create arguments, alignment, slab order.

mod common;
use common::*;
use protocol::flags::*;
use protocol::{CacheId, Error, PAGE_SIZE};

#[test]
fn create_rejects_empty_name() {
    let mut e = engine();
    assert_eq!(e.cache_create(0, "", 8, 0, 0, false), Err(Error::InvalidArgument));
}

#[test]
fn create_rejects_name_longer_than_31_bytes() {
    let mut e = engine();
    let ok = "a".repeat(31);
    let long = "a".repeat(32);
    assert!(e.cache_create(0, &ok, 8, 0, 0, false).is_ok());
    assert_eq!(e.cache_create(0, &long, 8, 0, 0, false), Err(Error::InvalidArgument));
    // 31 bytes but multi-byte characters count in bytes.
    assert_eq!(e.cache_create(0, &"é".repeat(16), 8, 0, 0, false), Err(Error::InvalidArgument));
}

#[test]
fn create_rejects_whitespace_in_name() {
    let mut e = engine();
    assert_eq!(e.cache_create(0, "my cache", 8, 0, 0, false), Err(Error::InvalidArgument));
    assert_eq!(e.cache_create(0, "tab\t", 8, 0, 0, false), Err(Error::InvalidArgument));
}

#[test]
fn create_rejects_duplicate_name_per_client() {
    let mut e = engine();
    e.cache_create(0, "dentry", 192, 0, 0, false).unwrap();
    assert_eq!(e.cache_create(0, "dentry", 64, 0, 0, false), Err(Error::NameTaken));
    // Names are per client.
    assert!(e.cache_create(1, "dentry", 192, 0, 0, false).is_ok());
}

#[test]
fn create_rejects_kmalloc_names() {
    let mut e = engine();
    assert_eq!(e.cache_create(0, "kmalloc-64", 64, 0, 0, false), Err(Error::NameTaken));
    assert_eq!(e.cache_create(0, "kmalloc-8k", 64, 0, 0, false), Err(Error::NameTaken));
}

#[test]
fn create_rejects_size_zero_and_above_64k() {
    let mut e = engine();
    assert_eq!(e.cache_create(0, "a", 0, 0, 0, false), Err(Error::InvalidArgument));
    assert_eq!(e.cache_create(0, "b", 65537, 0, 0, false), Err(Error::InvalidArgument));
    assert!(e.cache_create(0, "c", 1, 0, 0, false).is_ok());
    assert!(e.cache_create(0, "d", 65536, 0, 0, false).is_ok());
}

#[test]
fn create_rejects_align_not_power_of_two_or_above_4096() {
    let mut e = engine();
    for bad in [3, 12, 100, 8192, u32::MAX] {
        assert_eq!(e.cache_create(0, "x", 8, bad, 0, false), Err(Error::InvalidArgument), "{bad}");
    }
    for good in [0, 1, 2, 8, 64, 4096] {
        let id = e.cache_create(0, "x", 8, good, 0, false).unwrap();
        e.cache_destroy(0, id).unwrap();
    }
}

#[test]
fn create_rejects_unknown_flag_bits() {
    let mut e = engine();
    assert_eq!(e.cache_create(0, "x", 8, 0, 0x1, false), Err(Error::InvalidArgument));
    assert_eq!(e.cache_create(0, "x", 8, 0, 0x8000_0000, false), Err(Error::InvalidArgument));
    assert!(e.cache_create(0, "x", 8, 0, SLAB_ALL, false).is_ok());
}

#[test]
fn create_stores_panic_and_cache_dma_flags() {
    let mut e = engine();
    let id = e.cache_create(0, "dma", 100, 0, SLAB_PANIC | SLAB_CACHE_DMA, true).unwrap();
    let i = e.cache_info(0, id).unwrap();
    assert_eq!(i.flags, SLAB_PANIC | SLAB_CACHE_DMA);
    assert!(i.has_ctor);
    assert_eq!(i.name.as_str(), "dma");
}

#[test]
fn create_fails_when_cache_table_full() {
    let mut e = engine();
    let free = e.config().max_caches_per_client as usize - 13;
    for i in 0..free {
        e.cache_create(0, &format!("c{i}"), 8, 0, 0, false).unwrap();
    }
    assert_eq!(e.cache_create(0, "one-more", 8, 0, 0, false), Err(Error::OutOfMemory));
}

#[test]
fn create_by_unattached_client_rejected() {
    let mut e = engine_with(64, &[(64, 16)]);
    assert_eq!(e.cache_create(5, "x", 8, 0, 0, false), Err(Error::InvalidArgument));
}

#[test]
fn hwcache_align_halves_while_object_fits() {
    let mut e = engine();
    for (size, align) in [(100, 64), (33, 64), (32, 32), (17, 32), (16, 16), (9, 16), (8, 8), (1, 8)] {
        let id = e.cache_create(0, "hw", size, 0, SLAB_HWCACHE_ALIGN, false).unwrap();
        assert_eq!(e.cache_info(0, id).unwrap().align, align, "size {size}");
        e.cache_destroy(0, id).unwrap();
    }
}

#[test]
fn alignment_is_max_of_caller_align_and_word_size() {
    let mut e = engine();
    let id = e.cache_create(0, "a", 10, 2, 0, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().align, 8);
    let id = e.cache_create(0, "b", 10, 128, SLAB_HWCACHE_ALIGN, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().align, 128);
}

#[test]
fn stride_is_size_rounded_up_to_alignment() {
    let mut e = engine();
    let id = e.cache_create(0, "a", 54, 0, 0, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().stride, 56);
    let id = e.cache_create(0, "b", 100, 0, SLAB_HWCACHE_ALIGN, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().stride, 128);
    let id = e.cache_create(0, "c", 64, 0, SLAB_RED_ZONE, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().stride, 80, "8-byte red zone each side");
}

#[test]
fn object_addresses_honour_alignment() {
    let mut e = engine();
    for (size, align, flags) in [(10, 256, 0), (100, 0, SLAB_HWCACHE_ALIGN), (40, 64, SLAB_RED_ZONE), (3000, 4096, 0)] {
        let id = e.cache_create(0, "al", size, align, flags, false).unwrap();
        let a = e.cache_info(0, id).unwrap().align as u64;
        let mut live = vec![];
        for _ in 0..40 {
            let h = e.cache_alloc(0, id).unwrap().handle;
            assert_eq!(h.0 % a, 0, "size {size} align {a} handle {:#x}", h.0);
            live.push(h);
        }
        for h in live {
            e.cache_free(0, id, h).unwrap();
        }
        e.cache_destroy(0, id).unwrap();
        e.check_invariants().unwrap();
    }
}

#[test]
fn slab_order_leftover_at_most_a_sixteenth() {
    let mut e = engine();
    for size in [8, 24, 56, 96, 200, 700, 1000, 1500, 2048, 4000, 8192] {
        let id = e.cache_create(0, "o", size, 0, 0, false).unwrap();
        let i = e.cache_info(0, id).unwrap();
        let slab = (PAGE_SIZE as u32) << i.order;
        let leftover = slab - i.objects_per_slab * i.stride;
        assert!(leftover * 16 <= slab, "size {size}: order {} leftover {leftover}", i.order);
        // And no smaller order would do.
        for o in 0..i.order {
            let s = (PAGE_SIZE as u32) << o;
            assert!(s / i.stride == 0 || (s % i.stride) * 16 > s, "size {size}: order {o} also fits");
        }
        e.cache_destroy(0, id).unwrap();
    }
}

#[test]
fn slab_order_for_64k_object_is_4() {
    let mut e = engine();
    let id = e.cache_create(0, "big", 65536, 0, 0, false).unwrap();
    let i = e.cache_info(0, id).unwrap();
    assert_eq!((i.order, i.objects_per_slab, i.pages_per_slab), (4, 1, 16));
}

#[test]
fn cache_info_reports_objects_and_pages_per_slab() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 700, 0, 0, false).unwrap();
    let i = e.cache_info(0, id).unwrap();
    assert_eq!((i.objects_per_slab, i.pages_per_slab, i.order), (11, 2, 1));
    assert_eq!((i.num_slabs, i.num_objs, i.active_objs), (0, 0, 0));
    e.cache_alloc(0, id).unwrap();
    let i = e.cache_info(0, id).unwrap();
    assert_eq!((i.num_slabs, i.active_slabs, i.num_objs, i.active_objs), (1, 1, 11, 1));
}

/// A slot that reaches its last generation retires: no `CacheId` ever names a second cache,
/// however many create/destroy cycles (the 16-bit generation used to wrap after 65,535).
#[test]
fn a_cache_slot_retires_after_its_last_generation_so_ids_never_come_back() {
    let mut e = engine();
    let last = e.cache_generation_max();
    assert_eq!(last, u32::MAX >> 6, "64 cache slots: 6 bits of slot, 26 of generation");
    // Slot 13 is the first after the kmalloc caches.
    e.cache_slot_set_generation(0, 13, last - 1).unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let id = e.cache_create(0, "cycle", 64, 0, 0, false).unwrap();
        assert!(!seen.contains(&id));
        seen.push(id);
        e.cache_destroy(0, id).unwrap();
    }
    assert_eq!(e.client_stats(0).unwrap().retired_cache_slots, 1);
    // The next cache takes the next slot; the retired one's ids stay dead.
    let next = e.cache_create(0, "cycle", 64, 0, 0, false).unwrap();
    assert!(!seen.contains(&next));
    for &old in &seen {
        assert_eq!(e.cache_alloc(0, old), Err(Error::NoSuchCache));
        assert_eq!(e.cache_info(0, old).map(|_| ()), Err(Error::NoSuchCache));
    }
    // A wrapped generation (0, or 1 again) names nothing either.
    for wrapped in [0u32, 1] {
        assert_eq!(e.cache_destroy(0, CacheId(wrapped << 6 | 13)), Err(Error::NoSuchCache));
    }
    e.check_invariants().unwrap();
    // A reclaim (every cache released) does not bring the retired slot back.
    e.reclaim(0).unwrap();
    assert_eq!(e.client_stats(0).unwrap().retired_cache_slots, 1);
    e.check_invariants().unwrap();
}

#[test]
fn a_client_whose_slots_all_retired_cannot_create_but_others_can() {
    let mut e = engine();
    let last = e.cache_generation_max();
    for slot in 13..64 {
        e.cache_slot_set_generation(0, slot, last).unwrap();
        let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
        e.cache_destroy(0, id).unwrap();
    }
    assert_eq!(e.client_stats(0).unwrap().retired_cache_slots, 51);
    assert_eq!(e.cache_create(0, "x", 64, 0, 0, false), Err(Error::OutOfMemory));
    assert!(e.cache_create(1, "x", 64, 0, 0, false).is_ok());
    assert!(e.kmalloc(0, 64).is_ok(), "its kmalloc caches still work");
    e.check_invariants().unwrap();
}

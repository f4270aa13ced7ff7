//! Rule 10: POISON, RED_ZONE, STORE_USER, CONSISTENCY_CHECKS, PANIC, CACHE_DMA.

mod common;
use common::*;
use memserver_engine::{Platform, Track};
use protocol::flags::*;
use protocol::{Corruption, Error};

#[test]
fn poison_fills_free_objects_with_6b_ending_a5() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 40, 0, SLAB_POISON, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    // The neighbour was poisoned when the slab was created.
    let mut want = vec![POISON_FREE; 40];
    want[39] = POISON_END;
    assert_eq!(e.platform().bytes(0, h.0 + 40, 40), want);
    e.platform_mut().fill_bytes(0, h.0, 40, 0x11);
    e.cache_free(0, id, h).unwrap();
    assert_eq!(e.platform().bytes(0, h.0, 40), want);
}

#[test]
fn poison_write_after_free_reported_with_offset() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 64, 0, SLAB_POISON, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, h).unwrap();
    e.platform_mut().write(0, h.0 + 17, &[0x42]).unwrap();
    let before = snapshot(&e);
    let err = e.cache_alloc(0, id).unwrap_err();
    assert_eq!(
        err,
        Error::PoisonCorrupted(Corruption { cache: id, object: h, offset: 17, found: 0x42, expected: POISON_FREE })
    );
    assert_eq!(snapshot(&e), before, "the object stays free");
    // Repaired: the next alloc hands the same object out.
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, h);
    e.check_invariants().unwrap();
}

#[test]
fn poison_last_byte_overwrite_reported() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 32, 0, SLAB_POISON, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, h).unwrap();
    e.platform_mut().write(0, h.0 + 31, &[POISON_FREE]).unwrap();
    match e.cache_alloc(0, id) {
        Err(Error::PoisonCorrupted(c)) => assert_eq!((c.offset, c.expected), (31, POISON_END)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn poison_skipped_for_ctor_caches() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 32, 0, SLAB_POISON, true).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.platform_mut().fill_bytes(0, h.0, 32, 0x77); // "constructed" state
    e.cache_free(0, id, h).unwrap();
    assert_eq!(e.platform().bytes(0, h.0, 32), vec![0x77; 32], "constructed state survives free");
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, h);
}

#[test]
fn red_zone_bytes_inactive_bb_active_cc() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    assert_eq!(e.platform().bytes(0, h.0 - 8, 8), vec![RED_ACTIVE; 8]);
    assert_eq!(e.platform().bytes(0, h.0 + 64, 8), vec![RED_ACTIVE; 8]);
    // The next object (stride 80) is free.
    assert_eq!(e.platform().bytes(0, h.0 + 80 - 8, 8), vec![RED_INACTIVE; 8]);
    e.cache_free(0, id, h).unwrap();
    assert_eq!(e.platform().bytes(0, h.0 - 8, 8), vec![RED_INACTIVE; 8]);
    assert_eq!(e.platform().bytes(0, h.0 + 64, 8), vec![RED_INACTIVE; 8]);
}

#[test]
fn red_zone_overrun_reported_on_free() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.platform_mut().fill_bytes(0, h.0, 66, 0); // two bytes past the end
    let before = snapshot(&e);
    assert_eq!(
        e.cache_free(0, id, h),
        Err(Error::RedZoneCorrupted(Corruption { cache: id, object: h, offset: 64, found: 0, expected: RED_ACTIVE }))
    );
    assert_eq!(snapshot(&e), before, "the free is refused: the object stays allocated");
    // The zone was repaired: the retry succeeds.
    e.cache_free(0, id, h).unwrap();
    e.check_invariants().unwrap();
}

#[test]
fn red_zone_underrun_reported_with_negative_offset() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.platform_mut().write(0, h.0 - 3, &[9]).unwrap();
    match e.cache_free(0, id, h) {
        Err(Error::RedZoneCorrupted(c)) => assert_eq!((c.offset, c.found), (-3, 9)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn red_zone_damage_while_free_reported_on_alloc() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE | SLAB_POISON, false).unwrap();
    let a = e.cache_alloc(0, id).unwrap().handle;
    // Object b (next) is free; overrun from a into b's left red zone.
    e.platform_mut().fill_bytes(0, a.0 + 64, 16, 0);
    let b = a.0 + 80;
    match e.cache_alloc(0, id) {
        Err(Error::RedZoneCorrupted(c)) => assert_eq!((c.object.0, c.offset), (b, -8)),
        other => panic!("{other:?}"),
    }
    // a's own right zone is reported on its free.
    assert!(matches!(e.cache_free(0, id, a), Err(Error::RedZoneCorrupted(_))));
    assert_eq!(e.cache_alloc(0, id).unwrap().handle.0, b);
}

#[test]
fn red_zone_with_alignment_keeps_objects_aligned() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 100, 128, SLAB_RED_ZONE, false).unwrap();
    let i = e.cache_info(0, id).unwrap();
    assert_eq!(i.stride, 256, "128 left + 100 + 8 right = 236, rounded to 128");
    for _ in 0..20 {
        assert_eq!(e.cache_alloc(0, id).unwrap().handle.0 % 128, 0);
    }
}

#[test]
fn store_user_records_last_alloc_and_free() {
    let mut e = engine();
    let id = e.cache_create(0, "u", 64, 0, SLAB_STORE_USER, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    let o = e.object_owner(0, h).unwrap();
    let alloc = o.alloc.unwrap();
    assert_eq!(alloc.client, 0);
    assert_eq!(o.free, None);
    e.cache_free(0, id, h).unwrap();
    let o = e.object_owner(0, h).unwrap();
    assert_eq!(o.alloc, Some(alloc));
    let free = o.free.unwrap();
    assert!(free.seq > alloc.seq);
    e.cache_alloc(0, id).unwrap();
    let o = e.object_owner(0, h).unwrap();
    assert!(o.alloc.unwrap().seq > free.seq);
    assert_eq!(o.free, Some(Track { client: 0, seq: free.seq }));
    // A never-used object of the slab: no records.
    let o = e.object_owner(0, protocol::Handle(h.0 + 64 * 3)).unwrap();
    assert_eq!((o.alloc, o.free), (None, None));
}

#[test]
fn object_owner_without_store_user_not_supported() {
    let mut e = engine();
    let id = e.cache_create(0, "n", 64, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    assert_eq!(e.object_owner(0, h), Err(Error::NotSupported));
    assert_eq!(e.object_owner(0, protocol::Handle(h.0 + 4)), Err(Error::InvalidObject));
}

#[test]
fn consistency_checks_run_on_every_operation() {
    let mut e = engine();
    let flags = SLAB_CONSISTENCY_CHECKS | SLAB_POISON | SLAB_RED_ZONE | SLAB_STORE_USER;
    let id = e.cache_create(0, "cc", 200, 0, flags, false).unwrap();
    let h: Vec<_> = (0..50).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    for x in h.iter().step_by(2) {
        e.cache_free(0, id, *x).unwrap();
    }
    assert_eq!(e.cache_free(0, id, h[0]), Err(Error::DoubleFree));
    e.check_invariants().unwrap();
}

#[test]
fn debug_metadata_grows_objsize_in_slabinfo() {
    let mut e = engine();
    let id = e.cache_create(0, "d", 64, 0, SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER, false).unwrap();
    let mut rows = vec![];
    e.slabinfo_rows(Some(0), |r| rows.push(r.clone()));
    let row = rows.iter().find(|r| r.name.as_str() == "d").unwrap();
    assert_eq!(row.objsize, e.cache_info(0, id).unwrap().stride);
    assert_eq!(row.objsize, 80);
}

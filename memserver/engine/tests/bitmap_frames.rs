//! Object bitmaps live in private pool frames charged to the client whose slabs they describe
//! (so the server's own tables do not grow with the pool for them), shared by all its caches
//! of one bitmap length; and the parked state of objects the depot holds.

mod common;

use common::*;
use memserver_engine::testing::Failure;
use memserver_engine::{Hook, ShortageKind};
use protocol::flags::SLAB_RED_ZONE;
use protocol::{Error, Handle};

#[test]
fn the_first_slab_of_a_bitmap_length_takes_a_bitmap_frame_charged_to_its_client() {
    let mut e = engine();
    let a = e.cache_create(0, "a", 64, 0, 0, false).unwrap(); // 64 objects: one-word bitmaps
    e.cache_alloc(0, a).unwrap();
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.bitmap_frames), (2, 1));
    assert_eq!(e.platform().private_frames(), 1);
    // Another cache with one-word bitmaps shares the frame; one of 512 objects (eight words)
    // takes another.
    let b = e.cache_create(0, "b", 128, 0, 0, false).unwrap();
    e.cache_alloc(0, b).unwrap();
    assert_eq!(e.client_stats(0).unwrap().frames_used, 3);
    let c = e.cache_create(0, "c", 8, 0, 0, false).unwrap();
    e.cache_alloc(0, c).unwrap();
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.bitmap_frames), (5, 2));
    // Another client's are its own.
    let d = e.cache_create(1, "a", 64, 0, 0, false).unwrap();
    e.cache_alloc(1, d).unwrap();
    assert_eq!(e.client_stats(1).unwrap().bitmap_frames, 1);
    check(&e);
}

#[test]
fn a_bitmap_frame_goes_back_with_its_last_record() {
    let mut e = engine();
    let (a, _) = freed_object(&mut e, "a", 64, 0);
    let (b, _) = freed_object(&mut e, "b", 256, 0);
    assert_eq!(e.client_stats(0).unwrap().bitmap_frames, 1);
    assert_eq!(e.cache_shrink(0, a), Ok(1));
    assert_eq!(e.client_stats(0).unwrap().bitmap_frames, 1, "cache b's slab still has its record");
    assert_eq!(e.cache_shrink(0, b), Ok(1));
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.bitmap_frames), (0, 0));
    assert_eq!(e.platform().private_frames(), 0);
    assert_eq!(e.pool_stats().free_frames, 256);
    check(&e);
}

#[test]
fn a_thousand_small_caches_share_a_few_bitmap_frames() {
    let mut config = memserver_engine::EngineConfig::new(2048, 1, 2048);
    config.max_caches_per_client = 1040;
    let mut e = engine_config(config, &[(2048, 2048)]);
    for i in 0..1000 {
        let id = e.cache_create(0, &format!("k{i}"), 64, 0, 0, false).unwrap();
        e.cache_alloc(0, id).unwrap();
    }
    // 1,000 records of 24 bytes, 170 to a frame.
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.bitmap_frames), (1006, 6));
    check(&e);
}

#[test]
fn a_quota_short_only_of_the_bitmap_frame_is_a_tracking_shortage() {
    let mut e = engine_with(64, &[(64, 1)]);
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    let before = snapshot(&e);
    assert_eq!(e.cache_alloc(0, id), Err(Error::QuotaExceeded));
    let s = e.take_shortage().unwrap();
    assert_eq!((s.kind, s.client, s.needed), (ShortageKind::Tracking, 0, 1));
    assert_eq!(snapshot(&e), before);
}

#[test]
fn a_failed_private_frame_for_the_bitmap_frame_changes_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let before = snapshot(&e);
    e.platform_mut().fail_private_frame = Failure::next(Error::Internal);
    assert_eq!(e.cache_alloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.last_fault().map(|f| f.hook), Some(Hook::PrivateFrame));
    check(&e);
    e.cache_alloc(0, id).unwrap();
    check(&e);
}

#[test]
fn a_parked_object_is_held_by_the_server_until_unparked() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 64, 0, 0, false).unwrap();
    let mut out = [Handle(0); 4];
    e.cache_alloc_bulk(0, id, &mut out).unwrap();
    e.cache_park_bulk(0, id, &out[..2]).unwrap();
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_objs, info.parked_objs), (4, 2), "parked objects are still allocated");
    // Given back again by the client: a double free, in any form.
    assert_eq!(e.cache_free(0, id, out[0]), Err(Error::DoubleFree));
    assert_eq!(e.cache_free_bulk(0, id, &[out[2], out[1]]), Err((1, Error::DoubleFree)));
    assert_eq!(e.cache_park_bulk(0, id, &[out[3], out[0]]), Err((1, Error::DoubleFree)));
    assert_eq!(e.cache_destroy(0, id), Err(Error::CacheBusy { live: 4 }));
    check(&e);
    // Back to the client, or freed from the depot.
    e.cache_unpark_bulk(0, id, &out[..1]).unwrap();
    e.cache_free(0, id, out[0]).unwrap();
    e.cache_free_parked_bulk(0, id, &out[1..2]).unwrap();
    assert_eq!(e.cache_free_parked_bulk(0, id, &out[2..3]), Err(Error::Internal), "not parked: the server's fault");
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_objs, info.parked_objs), (2, 0));
    check(&e);
}

#[test]
fn a_debug_cache_has_no_depot_to_park_in() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    assert_eq!(e.cache_park_bulk(0, id, &[h]), Err((0, Error::InvalidArgument)));
    e.cache_free(0, id, h).unwrap();
    check(&e);
}

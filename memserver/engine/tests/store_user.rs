//! STORE_USER records live in server-private pool frames taken with each slab and charged to
//! the slab's client (quota, `frames_used`, its stats): exhausting them hurts only the client
//! doing it.

mod common;

use common::*;
use memserver_engine::testing::Failure;
use memserver_engine::{Hook, ShortageKind};
use protocol::flags::SLAB_STORE_USER;
use protocol::{Error, Handle};

#[test]
fn a_store_user_slab_takes_record_frames_charged_to_its_client() {
    let mut e = engine();
    let id = e.cache_create(0, "u", 64, 0, SLAB_STORE_USER, false).unwrap(); // 64 objects a slab
    assert_eq!(e.cache_info(0, id).unwrap().tracking_frames_per_slab, 1);
    let h = e.cache_alloc(0, id).unwrap().handle;
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.tracking_frames), (2, 1));
    assert_eq!(e.pool_stats().free_frames, 254);
    assert_eq!(e.platform().private_frames(), 1);
    e.cache_free(0, id, h).unwrap();
    assert_eq!(e.cache_shrink(0, id), Ok(1));
    let s = e.client_stats(0).unwrap();
    assert_eq!((s.frames_used, s.tracking_frames), (0, 0));
    assert_eq!(e.platform().private_frames(), 0, "the record frame went back");
    assert_eq!(e.pool_stats().free_frames, 256);
    check(&e);
}

#[test]
fn records_of_a_512_object_slab_span_three_frames() {
    let mut e = engine();
    let id = e.cache_create(0, "u8", 8, 0, SLAB_STORE_USER, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().tracking_frames_per_slab, 3);
    let handles: Vec<Handle> = (0..512).map(|_| e.cache_alloc(0, id).unwrap().handle).collect();
    assert_eq!(e.client_stats(0).unwrap().tracking_frames, 3);
    for i in [0usize, 203, 204, 407, 408, 511] {
        e.cache_free(0, id, handles[i]).unwrap();
    }
    let mut seqs = Vec::new();
    for (i, &h) in handles.iter().enumerate() {
        let o = e.object_owner(0, h).unwrap();
        let alloc = o.alloc.expect("allocated once").seq;
        assert_eq!(o.free.is_some(), [0, 203, 204, 407, 408, 511].contains(&i), "object {i}");
        seqs.push(alloc);
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "each record is its own object's");
    check(&e);
}

#[test]
fn exhausting_its_tracking_budget_hurts_only_the_client_doing_it() {
    // A shared table of 16 records per pool frame (the old design) is 16 blocks of 64 here:
    // client 0's 16 slabs of 64 objects filled it, and client 1's STORE_USER allocations then
    // failed with OutOfMemory.
    let mut e = engine_with(64, &[(128, 48), (128, 16)]);
    let greedy = e.cache_create(0, "u", 64, 0, SLAB_STORE_USER, false).unwrap();
    let mut slabs = 0;
    loop {
        let before = e.cache_info(0, greedy).unwrap().num_slabs;
        match e.cache_alloc(0, greedy) {
            Ok(_) => slabs += e.cache_info(0, greedy).unwrap().num_slabs - before,
            Err(err) => {
                assert_eq!(err, Error::QuotaExceeded);
                break;
            }
        }
    }
    assert_eq!(slabs, 24, "48 frames of quota: 24 slabs of one page and one record frame");
    let other = e.cache_create(1, "u", 64, 0, SLAB_STORE_USER, false).unwrap();
    for _ in 0..64 * 8 {
        let h = e.cache_alloc(1, other).unwrap().handle;
        assert!(e.object_owner(1, h).unwrap().alloc.is_some());
    }
    assert_eq!(e.client_stats(1).unwrap().tracking_frames, 8);
    check(&e);
}

#[test]
fn a_quota_short_only_of_the_record_frames_is_told_apart() {
    let mut e = engine_with(64, &[(64, 2)]);
    let id = e.cache_create(0, "u8", 8, 0, SLAB_STORE_USER, false).unwrap(); // 1 page + 3 records
    let before = snapshot(&e);
    assert_eq!(e.cache_alloc(0, id), Err(Error::QuotaExceeded));
    let s = e.take_shortage().unwrap();
    assert_eq!((s.kind, s.client, s.needed), (ShortageKind::Tracking, 0, 2));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.take_shortage(), None);
}

#[test]
fn a_failed_private_frame_fails_the_new_slab_and_changes_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "u8", 8, 0, SLAB_STORE_USER, false).unwrap();
    let before = snapshot(&e);
    // The second of the three record frames fails.
    e.platform_mut().fail_private_frame = Failure::after(1, Error::Internal);
    assert_eq!(e.cache_alloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.platform().private_frames(), 0, "the first record frame went back");
    assert_eq!(e.last_fault().map(|f| f.hook), Some(Hook::PrivateFrame));
    check(&e);
    e.cache_alloc(0, id).unwrap();
}

#[test]
fn a_failed_private_release_quarantines_the_record_frame() {
    let mut e = engine();
    let (id, _) = freed_object(&mut e, "u", 64, SLAB_STORE_USER);
    e.platform_mut().fail_private_release = Failure::next(Error::Internal);
    assert_eq!(e.cache_shrink(0, id), Ok(1));
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
    assert_eq!(e.pool_stats().quarantined_frames, 1);
    assert_eq!(e.last_fault().map(|f| f.hook), Some(Hook::PrivateRelease));
    check(&e);
}

#[test]
fn a_failed_private_frame_while_stamping_fails_the_alloc_and_changes_nothing() {
    let mut e = engine();
    let (id, h) = freed_object(&mut e, "u", 64, SLAB_STORE_USER);
    let owner = e.object_owner(0, h).unwrap();
    let before = snapshot(&e);
    e.platform_mut().fail_private_frame = Failure::next(Error::Internal);
    assert_eq!(e.cache_alloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.object_owner(0, h), Ok(owner));
    check(&e);
}

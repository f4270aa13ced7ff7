//! Every platform hook can fail: each failure leaves the engine consistent (the invariant
//! checker), is reported (the operation's error, or a recorded fault when the operation
//! completes), and never lets a frame the platform could not release be handed out again.

mod common;

use common::*;
use memserver_engine::Hook;
use memserver_engine::testing::Failure;
use protocol::flags::{SLAB_POISON, SLAB_RED_ZONE};
use protocol::{Error, Handle};

#[test]
fn a_failed_map_of_a_later_chunk_releases_the_chunks_already_mapped() {
    let mut e = engine_with(512, &[(1024, 512)]);
    let before = snapshot(&e);
    // 200 pages: chunks of 64, 64, 64, 8; the third fails.
    e.platform_mut().fail_map = Failure::after(2, Error::OutOfMemory);
    assert_eq!(e.kmalloc(0, 200 * 4096), Err(Error::OutOfMemory));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.platform().pages_released, 128, "the two mapped chunks went back through the platform");
    assert!(e.platform().frames.is_empty());
    check(&e);
    assert!(e.kmalloc(0, 200 * 4096).is_ok());
}

#[test]
fn a_failed_release_quarantines_the_frames_and_records_a_fault() {
    let mut e = engine();
    let (id, _) = freed_object(&mut e, "x", 64, 0);
    let free = e.pool_stats().free_frames;
    e.platform_mut().fail_release = Failure::next(Error::Internal);
    // The shrink completes: the slab is gone from the client, its frame out of use.
    assert_eq!(e.cache_shrink(0, id), Ok(1));
    let pool = e.pool_stats();
    assert_eq!((pool.free_frames, pool.quarantined_frames), (free, 1));
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
    assert_eq!(e.faults(), 1);
    let fault = e.last_fault().unwrap();
    assert_eq!((fault.hook, fault.client, fault.error), (Hook::Release, 0, Error::Internal));
    check(&e);
}

#[test]
fn a_quarantined_frame_is_never_handed_out_again() {
    // Every frame of the pool gets used after the quarantine: the test platform panics if a
    // frame still mapped (as the failed release left it) is mapped again.
    let mut e = engine_with(8, &[(64, 8)]);
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.platform_mut().fail_release = Failure::next(Error::Internal);
    e.cache_free(0, id, h).unwrap();
    e.cache_shrink(0, id).unwrap();
    for _ in 0..7 {
        e.cache_alloc(0, id).unwrap();
    }
    assert_eq!(e.cache_alloc(0, id), Err(Error::OutOfMemory));
    assert_eq!(e.pool_stats().quarantined_frames, 1);
    check(&e);
}

#[test]
fn a_failed_release_during_reclaim_still_reclaims_everything_else() {
    let mut e = engine();
    let id = e.cache_create(0, "x", 4096, 0, 0, false).unwrap();
    for _ in 0..3 {
        e.cache_alloc(0, id).unwrap();
    }
    e.kmalloc(0, 5 * 4096).unwrap();
    e.platform_mut().fail_release = Failure::after(1, Error::Internal);
    assert_eq!(e.reclaim(0), Ok(8));
    assert_eq!(e.client_stats(0).unwrap().frames_used, 0);
    assert_eq!(e.pool_stats().quarantined_frames, 1);
    assert_eq!(e.faults(), 1);
    check(&e);
    assert_eq!(e.client_detach(0), Ok(0));
    check(&e);
}

#[test]
fn a_failed_read_of_a_poison_check_fails_the_alloc_and_changes_nothing() {
    let mut e = engine();
    let (id, h) = freed_object(&mut e, "p", 64, SLAB_POISON);
    let before = snapshot(&e);
    e.platform().fail_read.set(Failure::next(Error::Internal));
    assert_eq!(e.cache_alloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.last_fault().map(|f| f.hook), Some(Hook::Read));
    check(&e);
    assert_eq!(e.cache_alloc(0, id).map(|a| a.handle), Ok(h));
}

#[test]
fn a_failed_read_of_a_red_zone_check_fails_the_free_and_changes_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    let before = snapshot(&e);
    e.platform().fail_read.set(Failure::next(Error::InvalidArgument));
    // Whatever the platform said, the client is told it was the server's fault.
    assert_eq!(e.cache_free(0, id, h), Err(Error::Internal));
    assert_eq!(e.last_fault().map(|f| f.error), Some(Error::InvalidArgument));
    assert_eq!(snapshot(&e), before);
    check(&e);
    e.cache_free(0, id, h).unwrap();
}

#[test]
fn a_failed_write_while_freeing_leaves_the_object_allocated() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 64, 0, SLAB_POISON | SLAB_RED_ZONE, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    let before = snapshot(&e);
    // The poison is written, the red zones fail.
    e.platform_mut().fail_write = Failure::after(2, Error::Internal);
    assert_eq!(e.cache_free(0, id, h), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.last_fault().map(|f| f.hook), Some(Hook::Fill));
    check(&e);
    // Its red zones were put back: the retry is not blamed on the client.
    e.cache_free(0, id, h).unwrap();
}

#[test]
fn a_failed_write_in_the_middle_of_a_bulk_free_frees_nothing() {
    let mut e = engine();
    let id = e.cache_create(0, "r", 64, 0, SLAB_RED_ZONE, false).unwrap();
    let mut out = [Handle(0); 3];
    assert_eq!(e.cache_alloc_bulk(0, id, &mut out).unwrap().0, 3);
    let before = snapshot(&e);
    // Two fills per object (left and right red zone): the second object's second fails.
    e.platform_mut().fail_write = Failure::after(3, Error::Internal);
    assert_eq!(e.cache_free_bulk(0, id, &out), Err((1, Error::Internal)));
    assert_eq!(snapshot(&e), before);
    check(&e);
    e.cache_free_bulk(0, id, &out).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().active_objs, 0);
}

#[test]
fn a_failed_write_while_preparing_a_new_slab_gives_the_slab_back() {
    let mut e = engine();
    let id = e.cache_create(0, "p", 64, 0, SLAB_POISON, false).unwrap();
    let before = snapshot(&e);
    e.platform_mut().fail_write = Failure::after(5, Error::Internal);
    assert_eq!(e.cache_alloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    assert!(e.platform().frames.is_empty(), "the new slab's frame was released");
    check(&e);
    e.cache_alloc(0, id).unwrap();
}

#[test]
fn a_failed_zero_fill_fails_the_zalloc_and_changes_nothing() {
    let mut e = engine();
    let (id, h) = freed_object(&mut e, "z", 64, SLAB_RED_ZONE);
    let before = snapshot(&e);
    // Both red zones go active, then the zeroing fails.
    e.platform_mut().fail_write = Failure::after(2, Error::Internal);
    assert_eq!(e.cache_zalloc(0, id), Err(Error::Internal));
    assert_eq!(snapshot(&e), before);
    check(&e);
    // The red zones went back to inactive: the next allocation finds nothing to complain about.
    assert_eq!(e.cache_zalloc(0, id).map(|a| a.handle), Ok(h));
}

//! The audit against real memfds: a peer (a second mapping, as the client has) dirties pages.

use std::ptr;
use std::time::{Duration, Instant};

use rustix::mm::{MapFlags, ProtFlags};

use super::*;
use crate::memory::{ClientMemory, Windows};

const PAGES: usize = 64;

fn policy() -> AuditPolicy {
    AuditPolicy { slack_pages: 4, violations_max: 3, violation_window: Duration::from_secs(60) }
}

/// A client's own mapping of its window (as it has after `SCM_RIGHTS`), unmapped on drop.
struct PeerMapping(*mut u8);

impl PeerMapping {
    fn of(windows: &Windows, client: u16) -> PeerMapping {
        let fd = windows.get(client).unwrap().window.fd();
        // SAFETY: a fresh kernel-chosen shared mapping of the PAGES-page memfd; unmapped in drop.
        let base = unsafe {
            rustix::mm::mmap(
                ptr::null_mut(),
                PAGES * PAGE_SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .unwrap();
        PeerMapping(base.cast())
    }

    fn dirty(&self, first_page: usize, pages: usize) {
        assert!(first_page + pages <= PAGES);
        // SAFETY: inside the mapping (checked above); only this test writes through it.
        unsafe { ptr::write_bytes(self.0.add(first_page * PAGE_SIZE), 0xd1, pages * PAGE_SIZE) };
    }

    fn byte(&self, page: usize) -> u8 {
        // SAFETY: inside the mapping.
        unsafe { self.0.add(page * PAGE_SIZE).read_volatile() }
    }
}

impl Drop for PeerMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `of`; no references into it remain.
        let _ = unsafe { rustix::mm::munmap(self.0.cast(), PAGES * PAGE_SIZE) };
    }
}

fn windows() -> Windows {
    let mut w = Windows::new();
    w.insert(1, ClientMemory::create("audit", PAGES * PAGE_SIZE, PAGE_SIZE).unwrap());
    w
}

#[test]
fn within_the_grant_plus_slack_nothing_happens() {
    let mut w = windows();
    let peer = PeerMapping::of(&w, 1);
    w.map(1, 8, &[0; 8]).unwrap();
    peer.dirty(8, 8);
    peer.dirty(40, 4); // four ungranted pages: exactly the slack
    assert_eq!(w.audit(1, &policy(), Instant::now), Ok(Verdict::Held));
    assert_eq!(w.usage(1).unwrap().resident_pages, 12);
    assert_eq!(w.usage(1).unwrap().violations, 0);
}

#[test]
fn over_the_slack_every_ungranted_page_is_punched_and_granted_ones_kept() {
    let mut w = windows();
    let peer = PeerMapping::of(&w, 1);
    w.map(1, 8, &[0; 8]).unwrap();
    w.map(1, 30, &[0; 2]).unwrap();
    peer.dirty(0, PAGES);
    let verdict = w.audit(1, &policy(), Instant::now).unwrap();
    assert_eq!(verdict, Verdict::Punched(Violation { granted: 10, resident: 64, punched: 54, recent: 1 }));
    let usage = w.usage(1).unwrap();
    assert_eq!((usage.granted_pages, usage.resident_pages, usage.violations), (10, 10, 1));
    for page in 0..PAGES {
        let granted = (8..16).contains(&page) || (30..32).contains(&page);
        assert_eq!(peer.byte(page), if granted { 0xd1 } else { 0 }, "page {page}");
    }
}

#[test]
fn repeated_violations_within_the_window_reclaim_and_old_ones_expire() {
    let mut w = windows();
    let peer = PeerMapping::of(&w, 1);
    let t0 = Instant::now();
    let p = policy();
    peer.dirty(0, PAGES);
    assert!(matches!(w.audit(1, &p, || t0), Ok(Verdict::Punched(Violation { recent: 1, .. }))));
    peer.dirty(0, PAGES);
    assert!(matches!(
        w.audit(1, &p, || t0 + Duration::from_secs(1)),
        Ok(Verdict::Punched(Violation { recent: 2, .. }))
    ));
    // Past the window the first two no longer count.
    let later = t0 + Duration::from_secs(120);
    peer.dirty(0, PAGES);
    assert!(matches!(w.audit(1, &p, || later), Ok(Verdict::Punched(Violation { recent: 1, .. }))));
    peer.dirty(0, PAGES);
    assert!(matches!(w.audit(1, &p, || later), Ok(Verdict::Punched(Violation { recent: 2, .. }))));
    peer.dirty(0, PAGES);
    assert!(matches!(w.audit(1, &p, || later), Ok(Verdict::Reclaim(Violation { recent: 3, .. }))));
    assert_eq!(w.usage(1).unwrap().violations, 5);
}

#[test]
fn release_takes_the_grant_back_and_a_later_touch_is_a_violation() {
    let mut w = windows();
    let peer = PeerMapping::of(&w, 1);
    w.map(1, 0, &[0; 16]).unwrap();
    peer.dirty(0, 16);
    assert_eq!(w.audit(1, &policy(), Instant::now), Ok(Verdict::Held));
    w.release(1, 0, 16).unwrap();
    assert_eq!(w.usage(1).unwrap().granted_pages, 0);
    assert_eq!(w.usage(1).unwrap().resident_pages, 0, "release punched the pages");
    peer.dirty(0, 16); // use after release
    assert!(matches!(w.audit(1, &policy(), Instant::now), Ok(Verdict::Punched(Violation { punched: 16, .. }))));
}

#[test]
fn dropping_a_clients_memory_empties_the_window_it_still_maps() {
    let mut w = windows();
    let peer = PeerMapping::of(&w, 1);
    peer.dirty(0, PAGES);
    let fd = w.get(1).unwrap().window.fd().try_clone_to_owned().unwrap();
    drop(w.remove(1));
    let blocks = rustix::fs::fstat(&fd).unwrap().st_blocks;
    assert_eq!(blocks, 0, "the memfd the client still maps holds nothing");
    assert_eq!(peer.byte(5), 0);
}

/// The audit's cost, printed (the figures in docs/system.md come from a release run of
/// `cargo test --release -p memserver-host audit_cost -- --nocapture`). Not a speed check.
#[test]
fn audit_cost() {
    for clients in [8u16, 64] {
        let mut w = Windows::new();
        let mut peers = Vec::new();
        for id in 1..=clients {
            w.insert(id, ClientMemory::create("cost", PAGES * PAGE_SIZE, PAGE_SIZE).unwrap());
            w.map(id, 0, &[0; 16]).unwrap();
            let peer = PeerMapping::of(&w, id);
            peer.dirty(0, 16);
            peers.push(peer);
        }
        let p = policy();
        let rounds = 2000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            for id in 1..=clients {
                assert_eq!(w.audit(id, &p, Instant::now), Ok(Verdict::Held));
            }
        }
        let pass = start.elapsed() / rounds;
        let per_client = pass / u32::from(clients);
        // A violation: the walk over the data extents and the punches.
        let start = Instant::now();
        for id in 1..=clients {
            peers[usize::from(id) - 1].dirty(16, 48);
            assert!(matches!(w.audit(id, &p, Instant::now), Ok(Verdict::Punched(_))));
        }
        let walk = start.elapsed() / u32::from(clients);
        eprintln!(
            "audit cost, {clients} clients: {per_client:?} per client (after every 16th request batch), \
             {pass:?} per timer pass; a violation (walk + punch 48 pages): {walk:?}"
        );
    }
}

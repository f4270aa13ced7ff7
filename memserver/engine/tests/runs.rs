//! Bulk free, park and unpark of a cache without debug flags, which step the handles a run of
//! one slab at a time: the result must be the one of stepping them one by one (errors, their
//! index, slab lists), all or none.

mod common;
use std::collections::HashSet;

use common::*;
use proptest::prelude::*;
use protocol::{CacheId, Error, Handle};

/// Objects per slab of the caches here (256-byte objects in one page).
const PER_SLAB: usize = 16;

/// A cache of 256-byte objects of client 0 and `slabs` full slabs of it, each slab's handles in
/// order (they are consecutive in the window: the first object of the next slab is one stride
/// past the last of the one before).
fn full_slabs(e: &mut TestEngine, slabs: usize) -> (CacheId, Vec<Vec<Handle>>) {
    let id = e.cache_create(0, "runs", 256, 0, 0, false).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().objects_per_slab as usize, PER_SLAB);
    let all = (0..slabs)
        .map(|_| {
            let mut out = [Handle(0); PER_SLAB];
            assert_eq!(e.cache_alloc_bulk(0, id, &mut out).unwrap().0, PER_SLAB);
            out.to_vec()
        })
        .collect();
    (id, all)
}

#[test]
fn a_run_ends_at_the_slab_boundary() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 3);
    assert_eq!(s[1][0].0, s[0][PER_SLAB - 1].0 + 256, "the slabs are next to each other");
    let all: Vec<Handle> = s.concat();
    e.cache_free_bulk(0, id, &all).unwrap();
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_objs, info.active_slabs), (0, 0));
    check(&e);
    // Every object is free again, so each can be allocated once more.
    let mut again = [Handle(0); PER_SLAB];
    for _ in 0..3 {
        e.cache_alloc_bulk(0, id, &mut again).unwrap();
    }
    assert_eq!(e.cache_info(0, id).unwrap().num_slabs, 3);
    check(&e);
}

#[test]
fn a_repeat_inside_a_run_is_a_double_free_and_changes_nothing() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 2);
    let before = snapshot(&e);
    let a = &s[0];
    assert_eq!(e.cache_free_bulk(0, id, &[a[0], a[1], a[2], a[1], a[3]]), Err((3, Error::DoubleFree)));
    assert_eq!(e.cache_free_bulk(0, id, &[a[5], a[5]]), Err((1, Error::DoubleFree)));
    assert_eq!(e.cache_park_bulk(0, id, &[a[0], a[1], a[0]]), Err((2, Error::DoubleFree)));
    assert_eq!(snapshot(&e), before);
    check(&e);
    e.cache_free_bulk(0, id, &[a[0], a[1], a[2], a[3]]).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().active_objs as usize, 2 * PER_SLAB - 4);
    check(&e);
}

#[test]
fn a_bad_handle_in_the_middle_of_a_run_undoes_every_run() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 3);
    let (a, b) = (&s[0], &s[1]);
    let before = snapshot(&e);
    // All of b (a full slab emptied: relisted), then a run in a cut by a pointer inside an
    // object.
    let mut hs: Vec<Handle> = b.clone();
    hs.extend_from_slice(&a[..5]);
    hs.push(Handle(a[5].0 + 8));
    hs.push(a[6]);
    assert_eq!(e.cache_free_bulk(0, id, &hs), Err((PER_SLAB + 5, Error::InvalidObject)));
    assert_eq!(snapshot(&e), before);
    check(&e);
    // The same with an object already freed in the middle of the run.
    e.cache_free(0, id, a[3]).unwrap();
    let before = snapshot(&e);
    let hs: Vec<Handle> = b.iter().chain(&a[..8]).copied().collect();
    assert_eq!(e.cache_free_bulk(0, id, &hs), Err((PER_SLAB + 3, Error::DoubleFree)));
    assert_eq!(e.cache_park_bulk(0, id, &hs), Err((PER_SLAB + 3, Error::DoubleFree)));
    assert_eq!(snapshot(&e), before);
    check(&e);
    // The first bad handle in order is reported, whichever kind: a run is checked before the
    // handle that ended it is looked at.
    let other = e.cache_create(0, "other", 256, 0, 0, false).unwrap();
    let foreign = e.cache_alloc(0, other).unwrap().handle;
    assert_eq!(e.cache_free_bulk(0, id, &[a[2], a[3], foreign]), Err((1, Error::DoubleFree)));
    assert_eq!(e.cache_free_bulk(0, id, &[a[2], foreign, a[3]]), Err((1, Error::WrongCache)));
    let before = snapshot(&e);
    // Then the same handles without the bad one go through.
    let good: Vec<Handle> = b.iter().chain(&a[..3]).chain(&a[4..8]).copied().collect();
    e.cache_free_bulk(0, id, &good).unwrap();
    assert_ne!(snapshot(&e), before);
    check(&e);
}

#[test]
fn interleaved_slabs_step_as_runs_of_one() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 2);
    let (a, b) = (&s[0], &s[1]);
    let zipped: Vec<Handle> = a.iter().zip(b).flat_map(|(&x, &y)| [x, y]).collect();
    let before = snapshot(&e);
    // A repeat a few runs later meets the state its first occurrence left.
    assert_eq!(e.cache_free_bulk(0, id, &[a[0], b[0], a[1], b[1], a[0]]), Err((4, Error::DoubleFree)));
    assert_eq!(snapshot(&e), before);
    e.cache_park_bulk(0, id, &zipped).unwrap();
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_objs as usize, info.parked_objs as usize), (2 * PER_SLAB, 2 * PER_SLAB));
    assert_eq!(e.cache_free(0, id, b[7]), Err(Error::DoubleFree), "parked");
    check(&e);
    // The depot's handles: a repeat or one not parked is the server's own fault.
    assert_eq!(e.cache_unpark_bulk(0, id, &[a[0], b[0], a[0]]), Err(Error::Internal));
    assert_eq!(e.cache_info(0, id).unwrap().parked_objs as usize, 2 * PER_SLAB);
    e.cache_unpark_bulk(0, id, &zipped[..4]).unwrap();
    assert_eq!(e.cache_free_parked_bulk(0, id, &zipped), Err(Error::Internal));
    e.cache_free_parked_bulk(0, id, &zipped[4..]).unwrap();
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_objs, info.parked_objs), (4, 0));
    e.cache_free_bulk(0, id, &zipped[..4]).unwrap();
    assert_eq!(e.cache_info(0, id).unwrap().active_objs, 0);
    check(&e);
}

#[test]
fn a_full_slab_freed_in_one_run_becomes_the_first_partial_one() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 3);
    // a partial (first on the partial list), then all of c freed in one run: one at a time, c
    // would have gone first on the partial list with its first object and stayed there empty.
    e.cache_free(0, id, s[0][4]).unwrap();
    e.cache_free_bulk(0, id, &s[2]).unwrap();
    check(&e);
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, s[2][0], "the emptied slab is the first partial one");
    e.cache_free(0, id, s[2][0]).unwrap();
    check(&e);
}

#[test]
fn an_emptied_slab_behind_the_first_partial_one_goes_to_the_empty_list() {
    let mut e = engine();
    let (id, s) = full_slabs(&mut e, 2);
    let pages = e.cache_info(0, id).unwrap().pages_per_slab;
    // b partial, then a partial and first; then the rest of b in one run empties it.
    e.cache_free(0, id, s[1][0]).unwrap();
    e.cache_free(0, id, s[0][0]).unwrap();
    e.cache_free_bulk(0, id, &s[1][1..]).unwrap();
    check(&e);
    let info = e.cache_info(0, id).unwrap();
    assert_eq!((info.active_slabs, info.num_slabs), (1, 2));
    assert_eq!(e.cache_alloc(0, id).unwrap().handle, s[0][0], "a stays the first partial slab");
    assert_eq!(e.cache_shrink(0, id).unwrap(), pages, "b is on the empty list");
    check(&e);
}

/// The handles of a bulk call: runs of consecutive objects of 3 slabs of 16, forwards or
/// backwards, so runs meet slab boundaries, repeats and each other.
fn picks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec((0usize..3 * PER_SLAB, 1usize..12, any::<bool>()), 1..8).prop_map(|segments| {
        let mut out = Vec::new();
        for (start, len, down) in segments {
            for k in 0..len {
                let i = if down { start.checked_sub(k) } else { Some(start + k) };
                match i {
                    Some(i) if i < 3 * PER_SLAB => out.push(i),
                    _ => break,
                }
            }
        }
        out.truncate(protocol::control::MAGAZINE_MAX * 2);
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A bulk free or park of handles of three full slabs, some freed before, against stepping
    /// them one at a time: the first handle not held (freed before, or earlier in the call)
    /// is a `DoubleFree` at its index with nothing changed; otherwise all are stepped.
    #[test]
    fn runs_step_as_one_handle_at_a_time(
        freed in prop::collection::vec(prop::bool::weighted(0.05), 3 * PER_SLAB),
        picks in picks(),
        park in any::<bool>(),
    ) {
        let mut e = engine();
        let (id, s) = full_slabs(&mut e, 3);
        let all = s.concat();
        for (h, _) in all.iter().zip(&freed).filter(|(_, f)| **f) {
            e.cache_free(0, id, *h).unwrap();
        }
        let hs: Vec<Handle> = picks.iter().map(|&i| all[i]).collect();
        let mut seen = HashSet::new();
        let first_bad = picks.iter().position(|&i| freed[i] || !seen.insert(i));
        let before = snapshot(&e);
        let active = e.cache_info(0, id).unwrap().active_objs as usize;
        let result = if park { e.cache_park_bulk(0, id, &hs) } else { e.cache_free_bulk(0, id, &hs) };
        check(&e);
        match first_bad {
            Some(i) => {
                prop_assert_eq!(result, Err((i, Error::DoubleFree)));
                prop_assert_eq!(snapshot(&e), before);
            }
            None => {
                prop_assert_eq!(result, Ok(()));
                let info = e.cache_info(0, id).unwrap();
                if park {
                    prop_assert_eq!(info.parked_objs as usize, hs.len());
                    // Back out of the depot in the reverse order, then freed.
                    let back: Vec<Handle> = hs.iter().rev().copied().collect();
                    e.cache_unpark_bulk(0, id, &back).unwrap();
                    e.cache_free_bulk(0, id, &back).unwrap();
                } else {
                    prop_assert_eq!(info.active_objs as usize, active - hs.len());
                }
                prop_assert_eq!(e.cache_info(0, id).unwrap().active_objs as usize, active - hs.len());
                check(&e);
            }
        }
    }
}

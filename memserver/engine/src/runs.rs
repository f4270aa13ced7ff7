//! The bulk steps of the hot path (park, unpark, free), a run of one slab at a time.
//!
//! A magazine holds objects allocated together, so consecutive handles of a bulk call mostly
//! name objects of one slab. As Linux SLUB's `kmem_cache_free_bulk` (`build_detached_freelist`)
//! does, such handles are taken as a *run*: the slab is resolved once through the page map
//! (window page → frame → slab), each further handle only has to name an object of that slab
//! (no flag bits, on an object boundary, inside its objects: one multiply, [`Shape::object_in`]),
//! and its bit goes into a mask per bitmap word. A run ends at the first handle that is not an
//! object of its slab, or whose bit is already in the masks (a repeat). Then each bitmap word
//! the run touches is read once, all the run's bits in it are checked for the state the step
//! needs, and only when every word passes is each written once; a free then updates the slab's
//! summary, in-use count and list once for the whole run.
//!
//! The result is the one stepping handle by handle would give, error index included:
//! * a handle that ends a run starts the next one, which resolves it in full: a bad handle
//!   gets the general path's error, and a repeat meets its first occurrence's new state (a
//!   `DoubleFree` for a handle coming back from the client twice; `Internal` for a depot
//!   handle, as the depot is the server's own);
//! * a run is checked before the handle that ended it is looked at, and a failed check finds
//!   the run's first handle whose bit is wrong (nothing of the run was written yet), so the
//!   first bad handle in order is the one reported;
//! * a slab's list changes as if its objects had been freed one by one: a full slab moves to
//!   the partial list with the run's first object, and an emptied slab that is not the first
//!   partial one moves to the empty list with its last (see `slab`).
//!
//! All or none: every run applied is recorded, and on a bad handle they are undone in reverse
//! order (the masks rebuilt from the run's handles) before the error is returned.

use protocol::{ClientId, Error, Handle};

use super::bitmap::{get_u64 as get, put_u64 as put, record_at};
use super::bulk::BULK_RETURN_MAX;
use super::plain::Shape;
use super::storage::{LIST_PARTIAL, NIL};
use super::{BROKEN, Engine, Platform};

/// Most bitmap words of a slab: its summary has one bit per word.
const WORDS_MAX: usize = u8::BITS as usize;

/// What [`Engine::runs_step_all`] does to each object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Held by the client → parked (into the depot).
    Park,
    /// Parked → held by the client (out of the depot).
    Unpark,
    /// Held by the client → free.
    FreeHeld,
    /// Parked → free (the depot flushed).
    FreeParked,
}

const PARK: u8 = 0;
const UNPARK: u8 = 1;
const FREE_HELD: u8 = 2;
const FREE_PARKED: u8 = 3;

impl Step {
    /// The step numbered `n` (a const parameter of the per-step loops).
    const fn of(n: u8) -> Step {
        match n {
            PARK => Step::Park,
            UNPARK => Step::Unpark,
            FREE_HELD => Step::FreeHeld,
            _ => Step::FreeParked,
        }
    }

    /// Whether the step frees its objects.
    const fn frees(self) -> bool {
        matches!(self, Step::FreeHeld | Step::FreeParked)
    }

    /// The bits of `mask` whose objects are not in the state the step needs, given their
    /// words of the allocated and parked bitmaps: held by the client (allocated, not parked)
    /// for a park or a free of held objects, parked for an unpark or a free from the depot.
    #[inline(always)]
    const fn wrong(self, allocated: u64, parked: u64, mask: u64) -> u64 {
        match self {
            Step::Park | Step::FreeHeld => (!allocated | parked) & mask,
            Step::Unpark | Step::FreeParked => !(allocated & parked) & mask,
        }
    }

    /// The error for an object not in the state the step needs: `DoubleFree` for one coming
    /// back from the client; for one of the server's own depot, broken metadata.
    const fn error(self) -> Error {
        match self {
            Step::Park | Step::FreeHeld => Error::DoubleFree,
            Step::Unpark | Step::FreeParked => BROKEN,
        }
    }
}

/// A run applied: `handles[start..end]` of a bulk call, distinct objects of slab `slab`.
#[derive(Clone, Copy, Debug)]
struct Run {
    slab: u32,
    start: u32,
    end: u32,
}

/// The bits of a run, per bitmap word, and which words have any.
#[derive(Clone, Copy, Debug)]
struct Masks {
    bits: [u64; WORDS_MAX],
    words: u8,
}

impl Masks {
    const EMPTY: Masks = Masks { bits: [0; WORDS_MAX], words: 0 };

    /// The masks of the longest prefix of `handles` that names distinct objects of the slab
    /// whose first object is at `start` (a repeat, or any other handle, ends it), and its length.
    /// The loop is the run's whole cost per object: it keeps to a few registers and leaves
    /// `words` to the end.
    #[inline(never)]
    fn of_run(sh: &Shape, start: u64, handles: &[Handle]) -> (Masks, usize) {
        let mut masks = Masks::EMPTY;
        let mut len = 0usize;
        for &h in handles {
            match sh.object_in(start, h) {
                Some(idx) if masks.add(idx) => len += 1,
                _ => break,
            }
        }
        masks.settle();
        (masks, len)
    }

    /// Adds object `idx`; `false` if it is in already (a repeat) or past the words a slab has.
    /// `words` is left to [`Masks::settle`].
    #[inline(always)]
    fn add(&mut self, idx: u32) -> bool {
        let bit = 1u64 << (idx % 64);
        match self.bits.get_mut((idx / 64) as usize) {
            Some(m) if *m & bit == 0 => {
                *m |= bit;
                true
            }
            _ => false,
        }
    }

    /// Sets `words` from the bits.
    #[inline(always)]
    fn settle(&mut self) {
        self.words = self.bits.iter().enumerate().fold(0u8, |words, (w, &m)| words | u8::from(m != 0) << w);
    }

    /// The words with bits, as (word index, mask), lowest first.
    #[inline(always)]
    fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let mut words = self.words;
        core::iter::from_fn(move || {
            if words == 0 {
                return None;
            }
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            Some((w, self.bits.get(w).copied().unwrap_or(0)))
        })
    }
}

/// Byte offsets, in a slab's bitmap frame, of word 0 of its allocated and of its parked bitmap.
#[inline(always)]
fn bitmaps_at(sh: &Shape, record: u8) -> (usize, usize) {
    let allocated = record_at(sh.words(), usize::from(record)) + 8;
    (allocated, allocated + 8 * sh.words())
}

impl<P: Platform> Engine<'_, P> {
    /// Applies `step` to every handle, all or none, a run of one slab at a time (see the module
    /// documentation): each handle is resolved as an object of the cache of `sh`, checked for
    /// the state `step` needs and changed, as if one at a time in order (so a repeat meets the
    /// changed state: a `DoubleFree` for a repeat coming back from the client); on a bad handle
    /// every run applied is undone in reverse and `Err((index, error))` returned for the first
    /// bad handle. At most [`BULK_RETURN_MAX`] handles (`InvalidArgument` otherwise). Counts of
    /// the cache and the operation sequence are the caller's.
    pub(crate) fn runs_step_all(
        &mut self,
        client: ClientId,
        sh: &Shape,
        handles: &[Handle],
        step: Step,
    ) -> Result<(), (usize, Error)> {
        // One loop per step, so the step's tests are settled once per call, not per object.
        match step {
            Step::Park => self.runs_step_all_as::<PARK>(client, sh, handles),
            Step::Unpark => self.runs_step_all_as::<UNPARK>(client, sh, handles),
            Step::FreeHeld => self.runs_step_all_as::<FREE_HELD>(client, sh, handles),
            Step::FreeParked => self.runs_step_all_as::<FREE_PARKED>(client, sh, handles),
        }
    }

    /// [`Self::runs_step_all`] for the step numbered `STEP` ([`Step::of`]).
    #[inline(always)]
    fn runs_step_all_as<const STEP: u8>(
        &mut self,
        client: ClientId,
        sh: &Shape,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        if handles.len() > BULK_RETURN_MAX {
            return Err((BULK_RETURN_MAX, Error::InvalidArgument));
        }
        // The runs applied, to undo them on a bad handle (each takes at least one handle, so
        // they fit); not initialised, unlike an array, so an empty call costs nothing.
        let mut runs: heapless::Vec<Run, BULK_RETURN_MAX> = heapless::Vec::new();
        let mut start = 0usize;
        while start < handles.len() {
            // Room for the run is checked before it is stepped, so an applied run is always
            // recorded (and never is there none: see above).
            let stepped = match runs.is_full() {
                false => self.run_step::<STEP>(client, sh, handles, start),
                true => Err((start, BROKEN)),
            };
            let recorded = stepped.and_then(|run| runs.push(run).map(|()| run).map_err(|_| (start, BROKEN)));
            match recorded {
                Ok(run) => start = run.end as usize,
                Err((at, e)) => {
                    return Err(match self.runs_undo(sh, handles, &runs, Step::of(STEP)) {
                        Ok(()) => (at, e),
                        Err(broken) => (at, broken),
                    });
                }
            }
        }
        Ok(())
    }

    /// Takes the run that starts at `handles[start]`, checks it and applies it; the run, or the
    /// index and error of its first bad handle (nothing of the run changed).
    #[inline(always)]
    fn run_step<const STEP: u8>(
        &mut self,
        client: ClientId,
        sh: &Shape,
        handles: &[Handle],
        start: usize,
    ) -> Result<Run, (usize, Error)> {
        let step = Step::of(STEP);
        let rest = handles.get(start..).unwrap_or(&[]);
        let first = rest.first().copied().unwrap_or(Handle(0));
        let Some((slab, d)) = self.plain_slab_of(client, sh, first) else {
            return Err((start, self.plain_resolve_error(client, sh, first)));
        };
        let objects = sh.objects_start(d);
        let (frame, record) = (d.bitmap_frame, d.bitmap_record);
        let (masks, len) = Masks::of_run(sh, objects, rest);
        if len == 0 {
            // Not an object of the slab its page belongs to.
            return Err((start, self.plain_resolve_error(client, sh, first)));
        }
        let run = Run { slab, start: start as u32, end: (start + len) as u32 };
        match self.run_apply(sh, step, &run, frame, record, &masks) {
            Ok(()) => Ok(run),
            Err(e) if e == step.error() => Err((self.run_first_wrong(sh, step, handles, &run), e)),
            Err(e) => Err((start, e)),
        }
    }

    /// Checks every bit of `masks` (the run `run`, its slab's bitmaps in record `record` of
    /// frame `frame`) for the state `step` needs, then changes them, a word at a time; a free
    /// then updates the slab. On a wrong bit, [`Step::error`] and nothing changed.
    #[inline(always)]
    fn run_apply(
        &mut self,
        sh: &Shape,
        step: Step,
        run: &Run,
        frame: u32,
        record: u8,
        masks: &Masks,
    ) -> Result<(), Error> {
        let (allocated_at, parked_at) = bitmaps_at(sh, record);
        let bytes = self.platform.private_bytes_mut(frame)?;
        for (w, m) in masks.iter() {
            let (allocated, parked) = (get(bytes, allocated_at + 8 * w)?, get(bytes, parked_at + 8 * w)?);
            if step.wrong(allocated, parked, m) != 0 {
                return Err(step.error());
            }
        }
        for (w, m) in masks.iter() {
            let (a, p) = (allocated_at + 8 * w, parked_at + 8 * w);
            match step {
                Step::Park => put(bytes, p, get(bytes, p)? | m)?,
                Step::Unpark => put(bytes, p, get(bytes, p)? & !m)?,
                // Held: no parked bit of the run is set.
                Step::FreeHeld => put(bytes, a, get(bytes, a)? & !m)?,
                Step::FreeParked => {
                    put(bytes, a, get(bytes, a)? & !m)?;
                    put(bytes, p, get(bytes, p)? & !m)?;
                }
            }
        }
        if step.frees() {
            let freed = u16::try_from(run.end - run.start).map_err(|_| BROKEN)?;
            self.run_slab_freed(sh, run.slab, masks.words, freed)?;
        }
        Ok(())
    }

    /// `freed` objects of slab `s`, in the bitmap words `words`, were freed: its summary,
    /// count and list follow, the list as if they had been freed one at a time (see the
    /// module documentation).
    #[inline(always)]
    fn run_slab_freed(&mut self, sh: &Shape, s: u32, words: u8, freed: u16) -> Result<(), Error> {
        let d = self.slab_mut(s)?;
        d.summary |= words;
        let before = d.inuse;
        let after = before.checked_sub(freed).ok_or(BROKEN)?;
        if d.list != LIST_PARTIAL {
            // A full slab: the run's first object moves it.
            d.inuse = before.checked_sub(1).ok_or(BROKEN)?;
            self.slab_relist(sh.gi, s)?;
        }
        let d = self.slab_mut(s)?;
        d.inuse = after;
        // An emptied slab that is not the first partial one: the run's last object moves it.
        if d.list != LIST_PARTIAL || (after == 0 && d.prev != NIL) {
            self.slab_relist(sh.gi, s)?;
        }
        Ok(())
    }

    /// The first handle of `run` whose object is not in the state `step` needs (the run was
    /// not applied); its start if none is (never expected).
    #[cold]
    fn run_first_wrong(&self, sh: &Shape, step: Step, handles: &[Handle], run: &Run) -> usize {
        let wrong = |h: Handle| -> Result<bool, Error> {
            let d = self.slab(run.slab)?;
            let idx = sh.object_in(sh.objects_start(d), h).ok_or(BROKEN)?;
            let (allocated_at, parked_at) = bitmaps_at(sh, d.bitmap_record);
            let bytes = self.platform.private_bytes(d.bitmap_frame)?;
            let w = 8 * (idx / 64) as usize;
            let (allocated, parked) = (get(bytes, allocated_at + w)?, get(bytes, parked_at + w)?);
            Ok(step.wrong(allocated, parked, 1u64 << (idx % 64)) != 0)
        };
        let run_handles = handles.get(run.start as usize..run.end as usize).unwrap_or(&[]);
        let at = run_handles.iter().position(|&h| wrong(h).unwrap_or(true)).unwrap_or(0);
        run.start as usize + at
    }

    /// Undoes `runs` (applied by `step`), last first.
    #[cold]
    fn runs_undo(&mut self, sh: &Shape, handles: &[Handle], runs: &[Run], step: Step) -> Result<(), Error> {
        for run in runs.iter().rev() {
            self.run_undo(sh, handles, run, step)?;
        }
        Ok(())
    }

    /// Undoes one run applied by `step`: its bits back, and after a free its slab's summary,
    /// count and list.
    fn run_undo(&mut self, sh: &Shape, handles: &[Handle], run: &Run, step: Step) -> Result<(), Error> {
        let d = *self.slab(run.slab)?;
        let objects = sh.objects_start(&d);
        let run_handles = handles.get(run.start as usize..run.end as usize).ok_or(BROKEN)?;
        let (masks, len) = Masks::of_run(sh, objects, run_handles);
        if len != run_handles.len() {
            return Err(BROKEN);
        }
        let (allocated_at, parked_at) = bitmaps_at(sh, d.bitmap_record);
        let bytes = self.platform.private_bytes_mut(d.bitmap_frame)?;
        let mut full = 0u8;
        for (w, m) in masks.iter() {
            let (a, p) = (allocated_at + 8 * w, parked_at + 8 * w);
            match step {
                Step::Park => put(bytes, p, get(bytes, p)? & !m)?,
                Step::Unpark => put(bytes, p, get(bytes, p)? | m)?,
                Step::FreeHeld | Step::FreeParked => {
                    let word = get(bytes, a)? | m;
                    put(bytes, a, word)?;
                    if step == Step::FreeParked {
                        put(bytes, p, get(bytes, p)? | m)?;
                    }
                    if word == u64::MAX {
                        full |= 1 << w;
                    }
                }
            }
        }
        if step.frees() {
            let freed = u16::try_from(run.end - run.start).map_err(|_| BROKEN)?;
            let d = self.slab_mut(run.slab)?;
            d.summary &= !full;
            d.inuse = d.inuse.checked_add(freed).ok_or(BROKEN)?;
            self.slab_relist(sh.gi, run.slab)?;
        }
        Ok(())
    }
}

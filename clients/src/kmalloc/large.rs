//! Freed large kmallocs kept for reuse, as Linux's per-CPU page lists keep freed pages of low
//! orders for the next allocation of that order.
//!
//! A large `kmalloc` (whole pages, above 8 KiB) is an IPC each way, and on a machine where the
//! server runs on another CPU a round trip waits for a cross-CPU wake-up (50–100 µs on a 2 vCPU VM,
//! as `docs/architecture.md` says under the host runner). So `kfree` of a large kmalloc of up to
//! [`PARKED_MAX_PAGES`] pages parks it here when fewer than [`PARKED_PER_COUNT`] runs of its page
//! count are parked, and the next `kmalloc` that needs exactly that many pages takes it back
//! without IPC: 266 pages (1,064 KiB) at most. (`loadgen --workload kmalloc`, one large kmalloc of
//! 8–64 KiB in 1,000: 0.30× mimalloc's operations per second with an IPC each way, 0.79× with one
//! run per page count, 0.90× with two.) The server still counts a parked run as the client's (as it
//! counts objects in magazines), so it is in the client's quota; the library gives every parked run
//! back before it reports statistics, at `kmalloc_flush`, and when the server refuses an allocation
//! for lack of memory (then retries it once), as Linux drains its per-CPU lists before it gives up
//! on an allocation.
//!
//! Parking keeps `kfree`'s rules: a run parked twice is a double free (`DoubleFree`, what the
//! server answers), and only a pointer the page-owner table names as the first page of a large
//! kmalloc of this client gets here (anything else goes to the server). A client that forges
//! its page-owner table parks what is not its large kmalloc and misleads only itself: the
//! server checks every handle when the run goes back.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use protocol::Handle;
use spin::Mutex;

/// Pages of the smallest large kmalloc (8 KiB + 1 byte).
pub const PARKED_MIN_PAGES: usize = 3;
/// Pages of the largest large kmalloc that is parked (64 KiB); larger ones go back at once.
pub const PARKED_MAX_PAGES: usize = 16;
/// Runs parked per page count.
pub const PARKED_PER_COUNT: usize = 2;
/// Places for parked runs: [`PARKED_PER_COUNT`] per page count.
const PLACES: usize = (PARKED_MAX_PAGES - PARKED_MIN_PAGES + 1) * PARKED_PER_COUNT;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ParkedRuns {
    /// The parked run of each page count, from [`PARKED_MIN_PAGES`].
    runs: Mutex<[Option<Handle>; PLACES]>,
    /// Pages parked (read without the lock, to skip the release when there is nothing).
    pages: AtomicUsize,
}

/// What [`ParkedRuns::park`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parking {
    /// Parked: the caller is done.
    Parked,
    /// No place (a run of that page count is parked, or too many pages): the caller frees it.
    NoRoom,
    /// This very run is parked already: a double free.
    AlreadyParked,
}

impl ParkedRuns {
    pub(crate) const fn new() -> Self {
        ParkedRuns { runs: Mutex::new([None; PLACES]), pages: AtomicUsize::new(0) }
    }

    /// The places of runs of `pages` pages.
    fn places(pages: usize) -> Option<core::ops::Range<usize>> {
        let first = (PARKED_MIN_PAGES..=PARKED_MAX_PAGES)
            .contains(&pages)
            .then(|| (pages - PARKED_MIN_PAGES) * PARKED_PER_COUNT)?;
        Some(first..first + PARKED_PER_COUNT)
    }

    /// The parked run of exactly `pages` pages, taken out.
    pub(crate) fn take(&self, pages: usize) -> Option<Handle> {
        let places = Self::places(pages)?;
        if self.pages.load(Relaxed) == 0 {
            return None;
        }
        let run = self.runs.lock().get_mut(places)?.iter_mut().find_map(Option::take)?;
        self.pages.fetch_sub(pages, Relaxed);
        Some(run)
    }

    /// Parks the large kmalloc of `pages` pages at `run`.
    pub(crate) fn park(&self, run: Handle, pages: usize) -> Parking {
        let Some(places) = Self::places(pages) else { return Parking::NoRoom };
        let mut runs = self.runs.lock();
        if runs.contains(&Some(run)) {
            return Parking::AlreadyParked;
        }
        match runs.get_mut(places).and_then(|places| places.iter_mut().find(|place| place.is_none())) {
            Some(slot) => {
                *slot = Some(run);
                self.pages.fetch_add(pages, Relaxed);
                Parking::Parked
            }
            _ => Parking::NoRoom,
        }
    }

    /// Whether a run is parked.
    pub(crate) fn any(&self) -> bool {
        self.pages.load(Relaxed) > 0
    }

    /// Takes every parked run out, for `release` to give back (a run `release` refuses is
    /// dropped from here all the same: the server said what it is). The first error.
    pub(crate) fn drain<E>(&self, mut release: impl FnMut(Handle) -> Result<(), E>) -> Result<(), E> {
        if !self.any() {
            return Ok(());
        }
        let runs = {
            let mut parked = self.runs.lock();
            self.pages.store(0, Relaxed);
            core::mem::replace(&mut *parked, [None; PLACES])
        };
        let mut first = Ok(());
        for run in runs.into_iter().flatten() {
            let done = release(run);
            if first.is_ok() {
                first = done;
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_taken_back_by_exactly_their_page_count() {
        let parked = ParkedRuns::new();
        assert!(!parked.any());
        assert_eq!(parked.take(3), None);
        let runs: Vec<Handle> = (1..=PARKED_PER_COUNT as u64 + 1).map(|i| Handle(i << 20)).collect();
        for &run in &runs[..PARKED_PER_COUNT] {
            assert_eq!(parked.park(run, 3), Parking::Parked);
        }
        assert_eq!(parked.park(runs[PARKED_PER_COUNT], 3), Parking::NoRoom, "{PARKED_PER_COUNT} runs per page count");
        assert_eq!(parked.park(runs[0], 3), Parking::AlreadyParked);
        assert_eq!(parked.park(runs[0], 4), Parking::AlreadyParked, "parked under another count");
        assert_eq!(parked.park(Handle(0x10000), 16), Parking::Parked);
        assert_eq!(parked.park(Handle(0x40000), 17), Parking::NoRoom, "above 64 KiB");
        assert_eq!(parked.park(Handle(0x50000), 2), Parking::NoRoom, "not a large kmalloc");
        assert_eq!(parked.take(4), None);
        let mut taken: Vec<Handle> = (0..PARKED_PER_COUNT).filter_map(|_| parked.take(3)).collect();
        taken.sort();
        assert_eq!(taken, runs[..PARKED_PER_COUNT]);
        assert_eq!(parked.take(3), None);
        assert!(parked.any());
        let mut given = Vec::new();
        assert_eq!(
            parked.drain(|run| {
                given.push(run);
                Ok::<(), ()>(())
            }),
            Ok(())
        );
        assert_eq!(given, [Handle(0x10000)]);
        assert!(!parked.any());
        assert_eq!(parked.take(16), None);
    }

    #[test]
    fn drain_gives_back_every_run_and_reports_the_first_error() {
        let parked = ParkedRuns::new();
        for pages in PARKED_MIN_PAGES..=PARKED_MAX_PAGES {
            for i in 0..PARKED_PER_COUNT {
                assert_eq!(parked.park(Handle((pages * 16 + i) as u64 * 0x10_0000), pages), Parking::Parked);
            }
        }
        let mut given = 0;
        let first = parked.drain(|run| {
            given += 1;
            if run.0 >= 160 * 0x10_0000 { Err(run.0) } else { Ok(()) }
        });
        assert_eq!((given, first), (PLACES, Err(160 * 0x10_0000)));
        assert!(!parked.any());
    }
}

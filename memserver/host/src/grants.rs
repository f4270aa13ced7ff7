//! Which pages of a client's window the engine has granted it: one bit per window page, set by
//! `Platform::map` and cleared by `Platform::release` (through [`Windows`](crate::memory::Windows)),
//! so the runner knows, without asking the engine, what the client may keep resident.
//!
//! On seL4 the MMU holds a client to its grant (an ungranted page is simply not mapped). On
//! Linux the client maps its whole window memfd read-write, so the grant is enforced after the
//! fact: [`audit`](crate::audit) compares the memfd's allocated pages with this bitmap and
//! punches out every page the client was not granted.

/// The granted pages of one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    bits: Vec<u64>,
    pages: u64,
    granted: u64,
}

/// A page range outside the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfWindow;

impl Grants {
    /// Nothing granted yet, in a window of `pages` pages.
    pub fn new(pages: u64) -> Grants {
        let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
        Grants { bits: vec![0; words], pages, granted: 0 }
    }

    /// Pages in the window.
    pub fn window_pages(&self) -> u64 {
        self.pages
    }

    /// Pages granted now.
    pub fn granted(&self) -> u64 {
        self.granted
    }

    /// Whether `page` is granted (`false` outside the window).
    pub fn is_granted(&self, page: u64) -> bool {
        self.word(page).is_some_and(|(w, bit)| w & bit != 0)
    }

    fn word(&self, page: u64) -> Option<(u64, u64)> {
        let index = usize::try_from(page / 64).ok()?;
        (page < self.pages).then_some(())?;
        Some((*self.bits.get(index)?, 1u64 << (page % 64)))
    }

    /// `Ok` if pages `first .. first + count` lie inside the window.
    pub fn range_check(&self, first: u64, count: u64) -> Result<(), OutOfWindow> {
        self.range(first, count).map(|_| ())
    }

    fn range(&self, first: u64, count: u64) -> Result<std::ops::Range<u64>, OutOfWindow> {
        let end = first.checked_add(count).ok_or(OutOfWindow)?;
        if end > self.pages {
            return Err(OutOfWindow);
        }
        Ok(first..end)
    }

    /// Marks pages `first .. first + count` granted (`Platform::map`). Granting a page twice
    /// counts it once.
    pub fn grant(&mut self, first: u64, count: u64) -> Result<(), OutOfWindow> {
        self.set(first, count, true)
    }

    /// Marks pages `first .. first + count` no longer granted (`Platform::release`).
    pub fn revoke(&mut self, first: u64, count: u64) -> Result<(), OutOfWindow> {
        self.set(first, count, false)
    }

    fn set(&mut self, first: u64, count: u64, on: bool) -> Result<(), OutOfWindow> {
        for page in self.range(first, count)? {
            let index = usize::try_from(page / 64).map_err(|_| OutOfWindow)?;
            let word = self.bits.get_mut(index).ok_or(OutOfWindow)?;
            let bit = 1u64 << (page % 64);
            if (*word & bit != 0) != on {
                *word ^= bit;
                self.granted = if on { self.granted + 1 } else { self.granted.saturating_sub(1) };
            }
        }
        Ok(())
    }

    /// The runs of ungranted pages inside `first .. end` (clamped to the window), as
    /// `(first page, page count)`, in order.
    pub fn ungranted_runs(&self, first: u64, end: u64) -> UngrantedRuns<'_> {
        UngrantedRuns { grants: self, next: first, end: end.min(self.pages) }
    }
}

/// Iterator of [`Grants::ungranted_runs`].
pub struct UngrantedRuns<'a> {
    grants: &'a Grants,
    next: u64,
    end: u64,
}

impl Iterator for UngrantedRuns<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        while self.next < self.end && self.grants.is_granted(self.next) {
            self.next += 1;
        }
        if self.next >= self.end {
            return None;
        }
        let start = self.next;
        while self.next < self.end && !self.grants.is_granted(self.next) {
            self.next += 1;
        }
        Some((start, self.next - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_and_revoke_count_each_page_once() {
        let mut g = Grants::new(130);
        g.grant(0, 3).unwrap();
        g.grant(1, 3).unwrap();
        assert_eq!(g.granted(), 4);
        g.grant(127, 3).unwrap();
        assert_eq!(g.granted(), 7);
        assert!(g.is_granted(129) && !g.is_granted(126) && !g.is_granted(130));
        g.revoke(2, 1).unwrap();
        g.revoke(2, 1).unwrap();
        assert_eq!(g.granted(), 6);
        assert_eq!(g.grant(129, 2), Err(OutOfWindow));
        assert_eq!(g.revoke(u64::MAX, 2), Err(OutOfWindow));
        assert_eq!(g.granted(), 6, "a refused range changes nothing");
    }

    #[test]
    fn ungranted_runs_are_the_complement() {
        let mut g = Grants::new(20);
        g.grant(2, 3).unwrap();
        g.grant(10, 1).unwrap();
        g.grant(19, 1).unwrap();
        let runs: Vec<_> = g.ungranted_runs(0, 20).collect();
        assert_eq!(runs, [(0, 2), (5, 5), (11, 8)]);
        assert_eq!(g.ungranted_runs(3, 12).collect::<Vec<_>>(), [(5, 5), (11, 1)]);
        assert_eq!(g.ungranted_runs(15, 1000).collect::<Vec<_>>(), [(15, 4)]);
        assert_eq!(Grants::new(0).ungranted_runs(0, 10).count(), 0);
    }
}

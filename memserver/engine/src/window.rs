//! Client windows: the page map (window page → pool frame) and the occupancy bitmap that
//! finds room for a new slab (aligned run of `2^order` pages) or a large kmalloc.

use protocol::{ClientId, Error};

use super::{BROKEN, Engine, Platform, ShortageKind};

impl<P: Platform> Engine<'_, P> {
    #[inline]
    fn page_index(&self, client: ClientId, page: u32) -> Result<usize, Error> {
        if page >= self.config.max_window_pages {
            return Err(BROKEN);
        }
        Ok(usize::from(client) * self.config.max_window_pages as usize + page as usize)
    }

    /// The page-map entry of a window page (`PAGE_NONE`, `PAGE_FREED_LARGE` or a frame).
    #[inline]
    pub(crate) fn page_map_get(&self, client: ClientId, page: u32) -> Result<u32, Error> {
        let i = self.page_index(client, page)?;
        self.st.page_map.get(i).copied().ok_or(BROKEN)
    }

    pub(crate) fn page_map_set(&mut self, client: ClientId, page: u32, v: u32) -> Result<(), Error> {
        let i = self.page_index(client, page)?;
        *self.st.page_map.get_mut(i).ok_or(BROKEN)? = v;
        Ok(())
    }

    fn window_word(&self, client: ClientId, page: u32) -> (usize, u64) {
        let w = usize::from(client) * self.config.window_words() + (page / 64) as usize;
        (w, 1u64 << (page % 64))
    }

    /// Whether a window page is occupied.
    #[cfg(any(test, feature = "debug-invariants"))]
    pub(crate) fn page_used(&self, client: ClientId, page: u32) -> bool {
        let (w, bit) = self.window_word(client, page);
        self.st.window_bits.get(w).is_none_or(|x| x & bit != 0)
    }

    /// Mark window pages `[first, first + n)` occupied or free, keeping the client's search
    /// hint (every page below it occupied) exact.
    pub(crate) fn window_mark(&mut self, client: ClientId, first: u32, n: u32, used: bool) -> Result<(), Error> {
        let end = first.checked_add(n).ok_or(BROKEN)?;
        for page in first..end {
            let (w, bit) = self.window_word(client, page);
            let word = self.st.window_bits.get_mut(w).ok_or(BROKEN)?;
            if used {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        let c = self.client_mut(client)?;
        if used && first <= c.window_hint && c.window_hint < end {
            c.window_hint = end;
        } else if !used && n > 0 {
            c.window_hint = c.window_hint.min(first);
        }
        Ok(())
    }

    /// The occupancy word of window word `w` of `client` (bits past the window read as free).
    fn window_bits_word(&self, client: ClientId, w: u32) -> u64 {
        let i = usize::from(client) * self.config.window_words() + w as usize;
        self.st.window_bits.get(i).copied().unwrap_or(u64::MAX)
    }

    /// The first occupied page in `[from, to)`, if any (a word at a time).
    fn first_used(&self, client: ClientId, from: u32, to: u32) -> Option<u32> {
        let mut p = from;
        while p < to {
            let word = self.window_bits_word(client, p / 64) >> (p % 64);
            if word != 0 {
                let q = p + word.trailing_zeros();
                return (q < to).then_some(q);
            }
            p = (p / 64 + 1) * 64;
        }
        None
    }

    /// The first free page at or after `from` (or `limit` if none below it), a word at a time.
    fn first_free(&self, client: ClientId, from: u32, limit: u32) -> u32 {
        let mut p = from;
        while p < limit {
            let word = !self.window_bits_word(client, p / 64) >> (p % 64);
            if word != 0 {
                return (p + word.trailing_zeros()).min(limit);
            }
            p = (p / 64 + 1) * 64;
        }
        limit
    }

    /// First-fit search for `n` free pages starting at a multiple of `align` (a power of two),
    /// from the client's hint (every page below it is occupied), skipping occupied words 64
    /// pages at a time: O(1) while the window fills from the bottom, as slabs do.
    /// None: `OutOfMemory`, the shortage recorded as the window's.
    pub(crate) fn window_find(&mut self, client: ClientId, n: u32, align: u32) -> Result<u32, Error> {
        let c = self.client(client)?;
        let (window, hint) = (c.window_pages, c.window_hint);
        let mut p = self.first_free(client, hint, window);
        while let Some(start) = p.checked_next_multiple_of(align) {
            let Some(end) = start.checked_add(n).filter(|&end| end <= window) else { break };
            match self.first_used(client, start, end) {
                None => return Ok(start),
                Some(q) => p = self.first_free(client, q + 1, window),
            }
        }
        Err(self.short(client, ShortageKind::Window, u64::from(n)))
    }
}

//! Client windows: the page map (window page → pool frame) and the occupancy bitmap that
//! finds room for a new slab (aligned run of `2^order` pages) or a large kmalloc.

use protocol::{ClientId, Error};

use super::{BROKEN, Engine, Platform, ShortageKind};

impl<P: Platform> Engine<'_, P> {
    fn page_index(&self, client: ClientId, page: u32) -> Result<usize, Error> {
        if page >= self.config.max_window_pages {
            return Err(BROKEN);
        }
        Ok(usize::from(client) * self.config.max_window_pages as usize + page as usize)
    }

    /// The page-map entry of a window page (`PAGE_NONE`, `PAGE_FREED_LARGE` or a frame).
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
    pub(crate) fn page_used(&self, client: ClientId, page: u32) -> bool {
        let (w, bit) = self.window_word(client, page);
        self.st.window_bits.get(w).is_none_or(|x| x & bit != 0)
    }

    /// Mark window pages `[first, first + n)` occupied or free.
    pub(crate) fn window_mark(&mut self, client: ClientId, first: u32, n: u32, used: bool) -> Result<(), Error> {
        for page in first..first.checked_add(n).ok_or(BROKEN)? {
            let (w, bit) = self.window_word(client, page);
            let word = self.st.window_bits.get_mut(w).ok_or(BROKEN)?;
            if used {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
        Ok(())
    }

    /// First-fit search for `n` free pages starting at a multiple of `align` (a power of two).
    /// Each page is looked at O(1) times: a failed candidate restarts after its first used page.
    /// None: `OutOfMemory`, the shortage recorded as the window's.
    pub(crate) fn window_find(&mut self, client: ClientId, n: u32, align: u32) -> Result<u32, Error> {
        let window = self.client(client)?.window_pages;
        let mut p = 0u32;
        while p.checked_add(n).is_some_and(|end| end <= window) {
            match (p..p + n).find(|&q| self.page_used(client, q)) {
                None => return Ok(p),
                Some(q) => match (q + 1).checked_next_multiple_of(align) {
                    Some(x) => p = x,
                    None => break,
                },
            }
        }
        Err(self.short(client, ShortageKind::Window, u64::from(n)))
    }
}

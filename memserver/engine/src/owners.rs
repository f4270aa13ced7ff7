//! What the client's control-region tables say, from the engine's private truth: the owner of
//! each window page ([`Engine::page_owner`]), the description of each cache
//! ([`Engine::cache_entry`]), and a bounded log of the window pages whose owner changed
//! ([`Engine::take_page_changes`]), which the dispatch drains after every request to rewrite
//! those entries. The engine never reads the tables (they are in client-writable memory).
//!
//! The log holds [`PAGE_LOG`] runs; when a request changes more (a large shrink, a reclaim),
//! it overflows and the next drain names every page of every attached client instead:
//! slower, never wrong.

use protocol::control::{CacheEntry, NO_SLOT, NOT_KMALLOC, PageOwner};
use protocol::{CacheId, ClientId, Error};

use super::storage::{CacheDesc, FRAME_LARGE_HEAD, FRAME_LARGE_TAIL, FRAME_SLAB};
use super::{Engine, Platform};

/// Runs of window pages the log holds before it overflows.
pub const PAGE_LOG: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Change {
    client: ClientId,
    first: u32,
    count: u32,
}

/// Window pages whose owner changed since the last drain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageLog {
    changes: [Change; PAGE_LOG],
    len: usize,
    overflowed: bool,
}

impl PageLog {
    pub(crate) const EMPTY: PageLog =
        PageLog { changes: [Change { client: 0, first: 0, count: 0 }; PAGE_LOG], len: 0, overflowed: false };

    /// Pages `[first, first + count)` of `client` changed owner.
    pub(crate) fn record(&mut self, client: ClientId, first: u32, count: u32) {
        match self.changes.get_mut(self.len) {
            Some(slot) => {
                *slot = Change { client, first, count };
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }
}

impl<P: Platform> Engine<'_, P> {
    /// The owner of window page `page` of `client`, as the page-owner table states it.
    pub fn page_owner(&self, client: ClientId, page: u32) -> PageOwner {
        let Ok(f) = self.page_map_get(client, page) else { return PageOwner::NONE };
        if f >= self.config.pool_frames {
            return PageOwner::NONE;
        }
        let Ok(fd) = self.frame(f) else { return PageOwner::NONE };
        match fd.kind {
            FRAME_SLAB => match self.slab(fd.link) {
                Ok(d) => {
                    let slot = (d.cache % u32::from(self.config.max_caches_per_client)) as u16;
                    let class = self.cache(d.cache).map_or(NOT_KMALLOC, Self::kmalloc_class_of);
                    PageOwner::slab(slot, class, page.saturating_sub(d.first_page))
                }
                Err(_) => PageOwner::NONE,
            },
            FRAME_LARGE_HEAD => PageOwner::large(fd.link),
            FRAME_LARGE_TAIL => PageOwner::large_tail(page.saturating_sub(fd.link)),
            _ => PageOwner::NONE,
        }
    }

    /// The kmalloc class of the cache `c` describes, or [`NOT_KMALLOC`].
    fn kmalloc_class_of(c: &CacheDesc) -> u8 {
        match c.is_kmalloc {
            true => super::kmalloc::kmalloc_class(c.size).and_then(|k| u8::try_from(k).ok()).unwrap_or(NOT_KMALLOC),
            false => NOT_KMALLOC,
        }
    }

    /// The cache-table entry of cache `cache` and its index (the cache's slot) — without the
    /// magazine slot, which the dispatch assigns (`slot` [`NO_SLOT`], `capacity` 0).
    pub fn cache_entry(&self, client: ClientId, cache: CacheId) -> Result<(u16, CacheEntry), Error> {
        let gi = self.cache_lookup(client, cache)?;
        let c = self.cache(gi)?;
        let index = (gi % u32::from(self.config.max_caches_per_client)) as u16;
        let kmalloc_class = Self::kmalloc_class_of(c);
        Ok((
            index,
            CacheEntry {
                cache: cache.0,
                object_size: c.size,
                stride: c.stride,
                obj_offset: c.obj_offset,
                flags: c.flags,
                align: c.align,
                objects_per_slab: c.objs,
                slot: NO_SLOT,
                capacity: 0,
                kmalloc_class,
                order: c.order,
            },
        ))
    }

    /// Hands every run of window pages whose owner changed since the last call to `f`
    /// (`client`, first page, page count), then forgets them. After an overflow of the log,
    /// every page of every attached client.
    pub fn take_page_changes(&mut self, mut f: impl FnMut(ClientId, u32, u32)) {
        let (len, overflowed) = (self.page_log.len, self.page_log.overflowed);
        // Forgotten in place (the runs are not copied out): two stores.
        self.page_log.len = 0;
        self.page_log.overflowed = false;
        if overflowed {
            for client in 0..self.config.max_clients {
                if let Ok(c) = self.client(client) {
                    f(client, 0, c.window_pages);
                }
            }
            return;
        }
        for change in self.page_log.changes.iter().take(len) {
            f(change.client, change.first, change.count);
        }
    }

    /// Whether any window page changed owner since the last [`Self::take_page_changes`] (most
    /// requests change none: the dispatch asks before draining).
    #[inline]
    pub fn page_changes_pending(&self) -> bool {
        self.page_log.len != 0 || self.page_log.overflowed
    }
}

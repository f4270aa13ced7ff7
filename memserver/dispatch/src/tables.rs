//! The server's two tables in each client's control region (`protocol::control::tables`):
//! the cache table (one entry per cache slot: id, geometry, magazine slot, kmalloc class) and
//! the page-owner table (one entry per window page). The dispatch writes them from the
//! engine's private truth and the sessions' slot bindings, and never reads them back:
//!
//! * a cache entry when the cache is created or destroyed (for the kmalloc caches: at
//!   `Hello`, together with their magazine slots);
//! * page owners after every request, for every window page whose owner changed
//!   (`Engine::take_page_changes`): its own slabs and large kmallocs, and the pages memory
//!   pressure took from other clients.
//!
//! A failed write (a region too small, which the runner never makes) is skipped: the tables
//! only ever help the client, which falls back to asking the server.

use protocol::control::{self, CacheEntry, ControlLayout};
use protocol::{CacheId, ClientId};

use super::session::Phase;
use super::{ControlAccess, Server};
use memserver_engine::{KMALLOC_SIZES, Platform};

impl<P: Platform + ControlAccess> Server<'_, P> {
    /// The control layout of an open client (`None` for a client without an open session).
    fn open_layout(&self, client: ClientId) -> Option<ControlLayout> {
        let session = self.sessions.get(usize::from(client)).filter(|s| s.phase == Phase::Open)?;
        Some(self.control_layout(session.window_pages))
    }

    /// Writes the cache-table entry of `cache` (geometry from the engine, magazine slot and
    /// capacity from the session).
    pub(super) fn publish_cache(&mut self, client: ClientId, cache: CacheId) {
        let Ok((index, mut entry)) = self.engine.cache_entry(client, cache) else { return };
        if let Some(session) = self.sessions.get(usize::from(client))
            && let Some(slot) = session.slot_of(cache)
        {
            entry.slot = slot;
            entry.capacity = session.slots.get(usize::from(slot)).map_or(0, |s| s.capacity);
        }
        self.write_cache_entry(client, index, &entry);
    }

    /// Empties the cache-table entry of a cache that is gone (its slot's index).
    pub(super) fn unpublish_cache(&mut self, client: ClientId, index: u16) {
        self.write_cache_entry(client, index, &CacheEntry::default());
    }

    fn write_cache_entry(&mut self, client: ClientId, index: u16, entry: &CacheEntry) {
        let Some(layout) = self.open_layout(client) else { return };
        if let Some(control) = self.engine.platform_mut().control(client) {
            let _ = control::write_cache_entry(control, &layout, index, entry);
        }
    }

    /// At `Hello`: binds a magazine slot to each kmalloc class that is not a debug cache (in
    /// class order, while slots last) and publishes the 13 caches in the cache table.
    pub(super) fn publish_kmalloc_caches(&mut self, client: ClientId) {
        for (class, &size) in KMALLOC_SIZES.iter().enumerate() {
            let Some(cache) = self.engine.kmalloc_cache(client, class) else { continue };
            let debug =
                self.engine.cache_info(client, cache).map_or(true, |i| i.flags & protocol::flags::SLAB_DEBUG != 0);
            if !debug {
                self.bind_slot(client, cache, size);
            }
            self.publish_cache(client, cache);
        }
    }

    /// Drains the engine's log of window pages whose owner changed and states each one anew
    /// in its client's page-owner table (clients without an open session are skipped: their
    /// region is rewritten whole at their next `Hello`).
    pub(super) fn publish_page_owners(&mut self) {
        let mut changes: heapless::Vec<(ClientId, u32, u32), { memserver_engine::PAGE_LOG + 1 }> = heapless::Vec::new();
        let mut whole = false;
        self.engine.take_page_changes(|client, first, count| {
            if changes.push((client, first, count)).is_err() {
                whole = true;
            }
        });
        if whole {
            // More than the log holds can only be the overflow's one run per client; never
            // expected to be cut, but state everything rather than miss a page.
            changes.clear();
            for index in 0..self.sessions.len() {
                let client = index as ClientId;
                if let Some(layout) = self.open_layout(client) {
                    self.write_page_owners(client, &layout, 0, layout.window_pages);
                }
            }
            return;
        }
        for (client, first, count) in changes {
            if let Some(layout) = self.open_layout(client) {
                self.write_page_owners(client, &layout, first, count);
            }
        }
    }

    fn write_page_owners(&mut self, client: ClientId, layout: &ControlLayout, first: u32, count: u32) {
        for page in first..first.saturating_add(count).min(layout.window_pages) {
            let owner = self.engine.page_owner(client, page);
            let Some(control) = self.engine.platform_mut().control(client) else { return };
            let _ = control::write_page_owner(control, layout, page, &owner);
        }
    }
}

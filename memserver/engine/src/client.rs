//! Clients: attach (with the kmalloc caches), reclaim (everything back, as when a client
//! dies) and detach.

use protocol::{ClientId, Error};

use super::storage::{ClientDesc, FRAME_LARGE_HEAD, KMALLOC_CLASSES, PAGE_FREED_LARGE, PAGE_NONE};
use super::{Engine, Platform};

impl<P: Platform> Engine<'_, P> {
    /// Attach `client` with a window of `window_pages` pages (≤ `max_window_pages`) and a quota
    /// of `quota_frames`; creates its 13 kmalloc caches. A client already attached, an id ≥
    /// `max_clients` or a window out of range → `InvalidArgument`.
    pub fn client_attach(&mut self, client: ClientId, window_pages: u32, quota_frames: u32) -> Result<(), Error> {
        self.client_attach_with(client, window_pages, quota_frames, [0; KMALLOC_CLASSES])
    }

    /// [`client_attach`](Self::client_attach), with debug flags for each kmalloc class
    /// (`kmalloc-8` first: the client's `slub_debug` setting); a flag outside
    /// `flags::SLAB_DEBUG` → `InvalidArgument`.
    pub fn client_attach_with(
        &mut self,
        client: ClientId,
        window_pages: u32,
        quota_frames: u32,
        kmalloc_flags: [u32; KMALLOC_CLASSES],
    ) -> Result<(), Error> {
        if kmalloc_flags.iter().any(|&f| f & !protocol::flags::SLAB_DEBUG != 0) {
            return Err(Error::InvalidArgument);
        }
        if client >= self.config.max_clients || window_pages == 0 || window_pages > self.config.max_window_pages {
            return Err(Error::InvalidArgument);
        }
        let slot = self.st.clients.get_mut(usize::from(client)).ok_or(Error::InvalidArgument)?;
        if slot.attached {
            return Err(Error::InvalidArgument);
        }
        *slot = ClientDesc { attached: true, window_pages, quota_frames, kmalloc_flags, ..ClientDesc::EMPTY };
        self.kmalloc_caches_create(client)
    }

    /// Reclaim everything `client` holds: every cache (kmalloc ones too), object, slab, large
    /// allocation and track record goes back; the client stays attached with fresh kmalloc
    /// caches (all old cache ids become stale). Returns the frames freed.
    pub fn reclaim(&mut self, client: ClientId) -> Result<u32, Error> {
        let before = self.client(client)?.frames_used;
        for slot in 0..self.config.max_caches_per_client {
            let gi = self.cache_slot(client, slot);
            if self.cache(gi)?.live {
                self.cache_release(gi)?;
            }
        }
        let window = self.client(client)?.window_pages;
        for page in 0..window {
            let f = self.page_map_get(client, page)?;
            if f < self.config.pool_frames {
                let fd = *self.frame(f)?;
                if fd.kind == FRAME_LARGE_HEAD {
                    self.pages_release(client, page, fd.link)?;
                }
            } else if f == PAGE_FREED_LARGE {
                self.page_map_set(client, page, PAGE_NONE)?;
            }
        }
        let after = self.client(client)?.frames_used;
        self.kmalloc_caches_create(client)?;
        Ok(before.saturating_sub(after))
    }

    /// Reclaim and forget `client`. Returns the frames freed.
    pub fn client_detach(&mut self, client: ClientId) -> Result<u32, Error> {
        let freed = self.reclaim(client)?;
        for slot in 0..self.config.max_caches_per_client {
            let gi = self.cache_slot(client, slot);
            if self.cache(gi)?.live {
                self.cache_release(gi)?;
            }
        }
        *self.client_mut(client)? = ClientDesc::EMPTY;
        Ok(freed)
    }
}

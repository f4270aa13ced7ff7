//! One handler per request; each receives typed values that `dispatch` already decoded.

use protocol::flags::SLAB_DEBUG;
use protocol::reply::{CacheInfo as WireCacheInfo, CacheLayout, SlabInfoRows};
use protocol::request::CacheName;
use protocol::{CacheId, ClientId, Error, Handle, PAGE_SIZE, PROTOCOL_VERSION, Reply, Request, SLABINFO_ROWS_PER_PAGE};

use super::session::Phase;
use super::{ControlAccess, Server};
use memserver_engine::Platform;

impl<P: Platform + ControlAccess> Server<'_, P> {
    /// `Hello`: version check, name check, control region initialised, session open.
    pub(super) fn hello(&mut self, client: ClientId, version: u16, name: &str) -> Result<Reply, Error> {
        if version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch { server: PROTOCOL_VERSION });
        }
        let slots = self.config.magazine_slots;
        let capacity = self.config.magazine_sizes.largest();
        let session = self.sessions.get_mut(usize::from(client)).ok_or(Error::PermissionDenied)?;
        if session.name.as_str() != name {
            return Err(Error::PermissionDenied);
        }
        let window_size = u64::from(session.window_pages) * PAGE_SIZE as u64;
        let control = self.engine.platform_mut().control(client).ok_or(Error::NotSupported)?;
        protocol::control::init_region(control, client, slots, capacity)?;
        session.phase = Phase::Open;
        Ok(Reply::Hello {
            client,
            window_size,
            control_size: self.config.control_size() as u32,
            magazine_slots: slots,
            magazine_capacity: capacity,
        })
    }

    /// Every request of an open session.
    pub(super) fn handle(&mut self, client: ClientId, request: Request) -> Result<Reply, Error> {
        match request {
            Request::Hello { .. } => Err(Error::PermissionDenied),
            Request::CacheCreate { name, size, align, flags, ctor } => {
                self.cache_create(client, &name, size, align, flags, ctor)
            }
            Request::Alloc { cache } => self.alloc(client, cache, false),
            Request::Zalloc { cache } => self.alloc(client, cache, true),
            Request::Free { cache, handle } => {
                self.check_not_in_depot(client, cache, handle)?;
                self.engine.cache_free(client, cache, handle)?;
                self.count(client, |s| s.frees = s.frees.saturating_add(1));
                Ok(Reply::Done)
            }
            Request::Destroy { cache } => self.destroy(client, cache),
            Request::Shrink { cache } => {
                self.engine.cache_info(client, cache)?;
                self.flush_depot(client, cache)?;
                Ok(Reply::Shrunk { pages: self.engine.cache_shrink(client, cache)? })
            }
            Request::Kmalloc { size } => {
                let handle = self.with_pressure_relief(client, |s| s.engine.kmalloc(client, size))?;
                self.count(client, |s| s.allocs = s.allocs.saturating_add(1));
                Ok(Reply::Object { handle, fresh: false })
            }
            Request::Kfree { handle } => {
                self.engine.kfree(client, handle)?;
                self.count(client, |s| s.frees = s.frees.saturating_add(1));
                Ok(Reply::Done)
            }
            Request::MagazineExchange { cache, slot, op } => self.exchange(client, cache, slot, op),
            Request::CacheInfo { cache } => Ok(Reply::CacheInfo(self.wire_cache_info(client, cache)?)),
            Request::SlabInfo { page, all_clients } => self.slabinfo(client, page, all_clients),
            Request::ObjectOwner { handle } => self.object_owner(client, handle),
            Request::Stats => self.stats(client),
            Request::Goodbye => {
                self.disconnect(client);
                Ok(Reply::Done)
            }
            Request::ClientStats { client: target } => self.client_stats(client, target),
            Request::Clients { page } => self.clients(client, page),
        }
    }

    fn cache_create(
        &mut self,
        client: ClientId,
        name: &CacheName,
        size: u32,
        align: u32,
        flags: u32,
        ctor: bool,
    ) -> Result<Reply, Error> {
        let cache = self.engine.cache_create(client, name.as_str(), size, align, flags, ctor)?;
        let info = self.engine.cache_info(client, cache)?;
        let debug = flags & SLAB_DEBUG != 0;
        let (slot, magazine_capacity) = if debug { (None, 0) } else { self.bind_slot(client, cache, info.stride) };
        Ok(Reply::Created { cache, layout: layout(&info), debug, slot, magazine_capacity })
    }

    fn alloc(&mut self, client: ClientId, cache: CacheId, zero: bool) -> Result<Reply, Error> {
        let a = self.with_pressure_relief(client, |s| {
            if zero { s.engine.cache_zalloc(client, cache) } else { s.engine.cache_alloc(client, cache) }
        })?;
        self.count(client, |s| s.allocs = s.allocs.saturating_add(1));
        Ok(Reply::Object { handle: a.handle, fresh: a.fresh })
    }

    /// `Destroy`: as Linux flushes the per-CPU caches first, the depot and the client's
    /// magazines of the cache go back to the slabs (a tampered magazine is left alone: its
    /// objects then count as live), then the engine destroys the cache or reports it busy.
    fn destroy(&mut self, client: ClientId, cache: CacheId) -> Result<Reply, Error> {
        let active = self.engine.cache_info(client, cache)?.active_objs;
        let slot = self.sessions.get(usize::from(client)).and_then(|s| s.slot_of(cache));
        // Busy is decided first, from copies, so a refused destroy changes nothing (the
        // magazines and the depot stay as they were); objects that would come back from them
        // do not count as live.
        let live = active.saturating_sub(self.returnable_objects(client, cache, slot));
        if live > 0 {
            return Err(Error::CacheBusy { live });
        }
        if let Some(slot) = slot {
            // Best effort: an invalid magazine must not block the depot flush or the destroy.
            let _ = self.take_back_magazines(client, cache, slot);
        }
        self.flush_depot(client, cache)?;
        self.engine.cache_destroy(client, cache)?;
        self.unbind_slot(client, cache);
        Ok(Reply::Done)
    }

    pub(super) fn wire_cache_info(&mut self, client: ClientId, cache: CacheId) -> Result<WireCacheInfo, Error> {
        let info = self.engine.cache_info(client, cache)?;
        let session = self.sessions.get(usize::from(client)).ok_or(Error::PermissionDenied)?;
        let slot = session.slot_of(cache);
        let capacity = slot.and_then(|i| session.slots.get(usize::from(i))).map_or(0, |s| s.capacity);
        let in_magazines = slot.map_or(0, |i| self.magazine_objects(client, i, capacity));
        Ok(WireCacheInfo {
            cache,
            name: info.name.clone(),
            flags: info.flags,
            ctor: info.has_ctor,
            layout: layout(&info),
            debug: info.flags & SLAB_DEBUG != 0,
            slot,
            magazine_capacity: capacity,
            // Like Linux's per-CPU caches, objects in magazines and in the depot count as active.
            active_objs: info.active_objs,
            num_objs: info.num_objs,
            active_slabs: info.active_slabs,
            num_slabs: info.num_slabs,
            magazine_objs: in_magazines,
        })
    }

    fn slabinfo(&mut self, client: ClientId, page: u16, all_clients: bool) -> Result<Reply, Error> {
        let introspect = self.sessions.get(usize::from(client)).is_some_and(|s| s.introspect);
        if all_clients && !introspect {
            return Err(Error::PermissionDenied);
        }
        let skip = usize::from(page) * SLABINFO_ROWS_PER_PAGE;
        let mut rows = SlabInfoRows::new();
        let mut seen = 0usize;
        let mut more = false;
        let filter = if all_clients { None } else { Some(client) };
        self.engine.slabinfo_rows(filter, |row| {
            if seen >= skip && rows.push(row.clone()).is_err() {
                more = true;
            }
            seen += 1;
        });
        Ok(Reply::SlabInfo { page, more, rows })
    }

    fn object_owner(&mut self, client: ClientId, handle: Handle) -> Result<Reply, Error> {
        let owner = self.engine.object_owner(client, handle)?;
        let track = |t: memserver_engine::Track| protocol::Track { client: t.client, seq: t.seq };
        Ok(Reply::Owner { alloc: owner.alloc.map(track), free: owner.free.map(track) })
    }

    /// Bumps one of `client`'s counters.
    pub(super) fn count(&mut self, client: ClientId, f: impl FnOnce(&mut protocol::Stats)) {
        if let Some(session) = self.sessions.get_mut(usize::from(client)) {
            f(&mut session.stats);
        }
    }
}

fn layout(info: &memserver_engine::CacheInfo) -> CacheLayout {
    CacheLayout {
        object_size: info.size,
        stride: info.stride,
        align: info.align,
        objects_per_slab: info.objects_per_slab,
        pages_per_slab: info.pages_per_slab,
    }
}

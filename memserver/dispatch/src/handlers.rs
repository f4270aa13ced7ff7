//! The handlers: [`Handlers`], the dispatch's one implementation of the interface's
//! [`Service`] trait, one method per request. `protocol::api::route` calls them with typed
//! values that [`Server::dispatch`] already decoded and checked (session phase, version).

use core::ops::{Deref, DerefMut};

use protocol::api::Service;
use protocol::control::ControlLayout;
use protocol::flags::SLAB_DEBUG;
use protocol::reply::{CacheInfo as WireCacheInfo, CacheLayout, SlabInfoRows};
use protocol::request::{CacheName, ClientName, ExchangeOp};
use protocol::{
    CacheId, ClientId, ClientsPage, Created, Error, Exchanged, Handle, Object, Owner, PAGE_SIZE, SHRINK_PLAN_SLABS,
    SLABINFO_ROWS_PER_PAGE, SessionInfo, ShrinkPlan, Shrunk, SlabInfoPage, Stats, ValidationReport,
};

use super::session::Phase;
use super::{ControlAccess, Server};
use memserver_engine::Platform;

/// The server behind the door: [`Server::dispatch`] builds one for each request that passed
/// its checks and routes the request to it. Being the only [`Service`] implementation, and
/// private, it is the only way to a handler.
pub(crate) struct Handlers<'s, 'a, P: Platform + ControlAccess>(pub(crate) &'s mut Server<'a, P>);

impl<'a, P: Platform + ControlAccess> Deref for Handlers<'_, 'a, P> {
    type Target = Server<'a, P>;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl<P: Platform + ControlAccess> DerefMut for Handlers<'_, '_, P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0
    }
}

impl<P: Platform + ControlAccess> Service for Handlers<'_, '_, P> {
    /// `Hello` (version already checked at the door): name check, control region
    /// initialised, session open.
    fn hello(&mut self, client: ClientId, _version: u16, client_name: ClientName) -> Result<SessionInfo, Error> {
        let server = &mut *self.0;
        let slots = server.config.magazine_slots;
        let capacity = server.config.magazine_sizes.largest();
        let session = server.sessions.get_mut(usize::from(client)).ok_or(Error::PermissionDenied)?;
        if session.name != client_name {
            return Err(Error::PermissionDenied);
        }
        let window_pages = session.window_pages;
        let window_size = u64::from(window_pages) * PAGE_SIZE as u64;
        let layout = ControlLayout { slots, caches: server.engine.config().max_caches_per_client, window_pages };
        let control = server.engine.platform_mut().control(client).ok_or(Error::NotSupported)?;
        protocol::control::init_region(control, client, &layout, capacity)?;
        session.phase = Phase::Open;
        server.publish_kmalloc_caches(client);
        Ok(SessionInfo {
            client,
            window_size,
            control_size: u32::try_from(layout.size()).map_err(|_| Error::InvalidArgument)?,
            magazine_slots: slots,
            magazine_capacity: capacity,
        })
    }

    /// `CacheCreate`: the client's `slub_debug` flags for that name are added, a non-debug
    /// cache gets a magazine slot, and the cache table describes it.
    #[allow(clippy::too_many_arguments)]
    fn cache_create(
        &mut self,
        client: ClientId,
        name: CacheName,
        size: u32,
        align: u32,
        flags: u32,
        ctor: bool,
        dtor: bool,
    ) -> Result<Created, Error> {
        let extra = self.sessions.get(usize::from(client)).map_or(0, |s| s.slub_debug.flags_for(name.as_str()));
        let flags = if flags & !protocol::flags::SLAB_ALL == 0 { flags | extra } else { flags };
        let cache = self.engine.cache_create_with_dtor(client, name.as_str(), size, align, flags, ctor, dtor)?;
        let info = self.engine.cache_info(client, cache)?;
        let debug = flags & SLAB_DEBUG != 0;
        let (slot, magazine_capacity) = if debug { (None, 0) } else { self.bind_slot(client, cache, info.stride) };
        self.publish_cache(client, cache);
        Ok(Created { cache, layout: layout(&info), debug, slot, magazine_capacity })
    }

    fn alloc(&mut self, client: ClientId, cache: CacheId) -> Result<Object, Error> {
        self.allocate(client, cache, false)
    }

    fn zalloc(&mut self, client: ClientId, cache: CacheId) -> Result<Object, Error> {
        self.allocate(client, cache, true)
    }

    fn free(&mut self, client: ClientId, cache: CacheId, handle: Handle) -> Result<(), Error> {
        self.check_not_in_depot(client, cache, handle)?;
        self.engine.cache_free(client, cache, handle)?;
        self.count(client, |s| s.frees = s.frees.saturating_add(1));
        Ok(())
    }

    /// `Destroy`: as Linux flushes the per-CPU caches first, the depot and the client's
    /// magazines of the cache go back to the slabs (a tampered magazine is left alone: its
    /// objects then count as live), then the engine destroys the cache or reports it busy.
    fn destroy(&mut self, client: ClientId, cache: CacheId) -> Result<(), Error> {
        let info = self.engine.cache_info(client, cache)?;
        // The kmalloc caches are never destroyed; refused before anything is touched.
        if info.is_kmalloc {
            return Err(Error::InvalidArgument);
        }
        let slot = self.sessions.get(usize::from(client)).and_then(|s| s.slot_of(cache));
        // Busy is decided first, from copies, so a refused destroy changes nothing (the
        // magazines and the depot stay as they were); objects that would come back from them
        // do not count as live.
        let live = info.active_objs.saturating_sub(self.returnable_objects(client, cache, slot));
        if live > 0 {
            return Err(Error::CacheBusy { live });
        }
        // So is a dtor cache's refusal: its slabs leave through the two-phase shrink (the
        // client runs the dtor first), never by Destroy.
        if info.has_dtor && info.num_slabs > 0 {
            return Err(Error::InvalidArgument);
        }
        if let Some(slot) = slot {
            // Best effort: an invalid magazine must not block the depot flush or the destroy.
            let _ = self.take_back_magazines(client, cache, slot);
        }
        self.flush_depot(client, cache)?;
        let (index, _) = self.engine.cache_entry(client, cache)?;
        self.engine.cache_destroy(client, cache)?;
        self.unbind_slot(client, cache);
        self.unpublish_cache(client, index);
        Ok(())
    }

    fn shrink(&mut self, client: ClientId, cache: CacheId) -> Result<Shrunk, Error> {
        // A dtor cache shrinks in two phases; refused before the depot is touched.
        if self.engine.cache_info(client, cache)?.has_dtor {
            return Err(Error::InvalidArgument);
        }
        self.flush_depot(client, cache)?;
        Ok(Shrunk { pages: self.engine.cache_shrink(client, cache)? })
    }

    fn kmalloc(&mut self, client: ClientId, size: u32) -> Result<Object, Error> {
        let handle = self.with_pressure_relief(client, |s| s.engine.kmalloc(client, size))?;
        self.count(client, |s| s.allocs = s.allocs.saturating_add(1));
        Ok(Object { handle, fresh: false })
    }

    fn kfree(&mut self, client: ClientId, handle: Handle) -> Result<(), Error> {
        self.check_not_in_any_depot(client, handle)?;
        self.engine.kfree(client, handle)?;
        self.count(client, |s| s.frees = s.frees.saturating_add(1));
        Ok(())
    }

    fn magazine_exchange(
        &mut self,
        client: ClientId,
        cache: CacheId,
        slot: u16,
        op: ExchangeOp,
    ) -> Result<Exchanged, Error> {
        self.exchange(client, cache, slot, op)
    }

    fn cache_info(&mut self, client: ClientId, cache: CacheId) -> Result<WireCacheInfo, Error> {
        self.wire_cache_info(client, cache)
    }

    fn slab_info(&mut self, client: ClientId, page: u16, all_clients: bool) -> Result<SlabInfoPage, Error> {
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
        Ok(SlabInfoPage { page, more, rows })
    }

    fn object_owner(&mut self, client: ClientId, handle: Handle) -> Result<Owner, Error> {
        let owner = self.engine.object_owner(client, handle)?;
        let track = |t: memserver_engine::Track| protocol::Track { client: t.client, seq: t.seq };
        Ok(Owner { alloc: owner.alloc.map(track), free: owner.free.map(track) })
    }

    fn validate(&mut self, client: ClientId, target: ClientId, name: CacheName) -> Result<ValidationReport, Error> {
        self.check_rights(client, target)?;
        let cache = self.engine.cache_by_name(target, name.as_str())?;
        self.engine.cache_validate(target, cache)
    }

    fn krealloc(&mut self, client: ClientId, handle: Handle, size: u32, zero: bool) -> Result<Object, Error> {
        self.check_not_in_any_depot(client, handle)?;
        let handle = self.with_pressure_relief(client, |s| s.engine.krealloc(client, handle, size, zero))?;
        Ok(Object { handle, fresh: false })
    }

    /// `ShrinkBegin`: as `Shrink`, the depot goes back to the slabs first, so the slabs it
    /// kept busy can be named too.
    fn shrink_begin(&mut self, client: ClientId, cache: CacheId) -> Result<ShrinkPlan, Error> {
        self.engine.cache_info(client, cache)?;
        self.flush_depot(client, cache)?;
        let mut out = [Handle(0); SHRINK_PLAN_SLABS];
        let plan = self.engine.shrink_begin(client, cache, &mut out)?;
        let slabs = out.iter().take(plan.slabs).copied().collect();
        Ok(ShrinkPlan { token: plan.token, more: plan.more, slabs })
    }

    fn shrink_commit(&mut self, client: ClientId, cache: CacheId, token: u32) -> Result<Shrunk, Error> {
        Ok(Shrunk { pages: self.engine.shrink_commit(client, cache, token)? })
    }

    fn stats(&mut self, client: ClientId) -> Result<Stats, Error> {
        self.stats_of(client)
    }

    /// The object is checked by the engine (an allocated object of a DMA cache of the
    /// caller), then the platform says where it is (the host: `NotSupported`).
    fn dma_addr(&mut self, client: ClientId, handle: Handle) -> Result<protocol::DmaAddress, Error> {
        let (offset, size) = self.engine.dma_object(client, handle)?;
        self.engine.platform_mut().bus_address(client, offset, size)
    }

    fn goodbye(&mut self, client: ClientId) -> Result<(), Error> {
        self.disconnect(client);
        Ok(())
    }

    fn client_stats(&mut self, client: ClientId, target: ClientId) -> Result<Stats, Error> {
        self.stats_for(client, target)
    }

    fn clients(&mut self, client: ClientId, page: u16) -> Result<ClientsPage, Error> {
        self.clients_page(client, page)
    }
}

impl<P: Platform + ControlAccess> Server<'_, P> {
    /// `Alloc` and `Zalloc`.
    fn allocate(&mut self, client: ClientId, cache: CacheId, zero: bool) -> Result<Object, Error> {
        let a = self.with_pressure_relief(client, |s| {
            if zero { s.engine.cache_zalloc(client, cache) } else { s.engine.cache_alloc(client, cache) }
        })?;
        self.count(client, |s| s.allocs = s.allocs.saturating_add(1));
        Ok(Object { handle: a.handle, fresh: a.fresh })
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
            dtor: info.has_dtor,
        })
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

//! Caches: `kmem_cache_create/alloc/zalloc/free/destroy/shrink`, and handle validation.

use protocol::flags::{
    SLAB_ALL, SLAB_CONSISTENCY_CHECKS, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SLAB_TYPESAFE_BY_RCU,
};
use protocol::{CACHE_NAME_MAX, CacheId, ClientId, Error, Handle, PAGE_SIZE};

use super::storage::{
    CacheDesc, FRAME_LARGE_HEAD, FRAME_LARGE_TAIL, FRAME_SLAB, LIST_EMPTY, LIST_PARTIAL, LISTS, NIL, PAGE_FREED_LARGE,
    PAGE_NONE,
};
use super::{Allocated, BROKEN, Engine, Platform, layout};

/// Whether free objects of cache `c` are poisoned: `SLAB_POISON`, but (as in Linux) not with a
/// ctor (a freed object stays constructed) nor `SLAB_TYPESAFE_BY_RCU` (a freed object may
/// still be read by a reader that found it before the free).
pub(crate) fn poisons(c: &CacheDesc) -> bool {
    c.flags & SLAB_POISON != 0 && !c.has_ctor && c.flags & SLAB_TYPESAFE_BY_RCU == 0
}

/// What a handle names, after validation against the client's window.
pub(crate) enum Located {
    /// Object `idx` of slab `slab` of cache `gi` (allocated or not).
    Slab { gi: u32, slab: u32, idx: u32 },
    /// The first page of a large kmalloc of `pages` pages.
    Large { page: u32, pages: u32 },
    /// The first page of a large kmalloc that was freed (and not reused since).
    FreedLarge,
}

impl<P: Platform> Engine<'_, P> {
    /// Create a cache. Corresponds to `kmem_cache_create()`.
    ///
    /// `name`: 1..=31 bytes, unique among the client's caches, printable ASCII without spaces
    /// (slabinfo columns are whitespace-separated, and no invisible or right-to-left character
    /// may disguise a row).
    pub fn cache_create(
        &mut self,
        client: ClientId,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        has_ctor: bool,
    ) -> Result<CacheId, Error> {
        self.cache_create_with_dtor(client, name, size, align, flags, has_ctor, false)
    }

    /// Create a cache whose client runs a destructor (Linux 2.4's `kmem_cache_create()` with a
    /// `dtor`): its slabs leave it only through the two-phase shrink ([`Engine::shrink_begin`]),
    /// and memory pressure never reaps it.
    #[allow(clippy::too_many_arguments)]
    pub fn cache_create_with_dtor(
        &mut self,
        client: ClientId,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        has_ctor: bool,
        has_dtor: bool,
    ) -> Result<CacheId, Error> {
        self.client(client)?;
        if name.is_empty()
            || name.len() > CACHE_NAME_MAX
            || !name.bytes().all(|b| b.is_ascii_graphic())
            || flags & !SLAB_ALL != 0
        {
            return Err(Error::InvalidArgument);
        }
        let gi = self.cache_create_inner(client, name, size, align, flags, has_ctor, false)?;
        let c = self.cache_mut(gi)?;
        c.has_dtor = has_dtor;
        c.no_reap |= has_dtor;
        self.cache_id(gi)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cache_create_inner(
        &mut self,
        client: ClientId,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        has_ctor: bool,
        is_kmalloc: bool,
    ) -> Result<u32, Error> {
        let l = if is_kmalloc { layout::kmalloc_layout(size, flags)? } else { layout::compute(size, align, flags)? };
        let max = self.config.max_caches_per_client;
        let mut free_slot = None;
        for slot in 0..max {
            let c = self.cache(self.cache_slot(client, slot))?;
            if c.live && c.name.as_str() == name {
                return Err(Error::NameTaken);
            }
            if !c.live && !c.retired && free_slot.is_none() {
                free_slot = Some(slot);
            }
        }
        // No slot left (live or retired): a limit of the client's own, not memory pressure.
        let gi = self.cache_slot(client, free_slot.ok_or(Error::OutOfMemory)?);
        let name = heapless::String::try_from(name).map_err(|_| Error::InvalidArgument)?;
        let c = self.cache_mut(gi)?;
        *c = CacheDesc {
            live: true,
            is_kmalloc,
            has_ctor,
            no_reap: super::reclaim::forbids_reaping(flags),
            generation: c.generation,
            name,
            size,
            align: l.align,
            stride: l.stride,
            obj_offset: l.obj_offset,
            flags,
            order: l.order,
            objs: l.objs,
            ..CacheDesc::EMPTY
        };
        let cl = self.client_mut(client)?;
        cl.caches = cl.caches.saturating_add(1);
        Ok(gi)
    }

    /// Allocate an object. Corresponds to `kmem_cache_alloc()`.
    pub fn cache_alloc(&mut self, client: ClientId, cache: CacheId) -> Result<Allocated, Error> {
        let gi = self.cache_lookup(client, cache)?;
        self.alloc_one(client, gi, false, true)
    }

    /// Allocate a zero-filled object. Corresponds to `kmem_cache_zalloc()`; rejected on a
    /// cache with a ctor (Linux warns about `__GFP_ZERO` with a ctor).
    pub fn cache_zalloc(&mut self, client: ClientId, cache: CacheId) -> Result<Allocated, Error> {
        let gi = self.cache_lookup(client, cache)?;
        if self.cache(gi)?.has_ctor {
            return Err(Error::InvalidArgument);
        }
        self.alloc_one(client, gi, true, true)
    }

    /// Take the lowest free object of the first partial slab, else of an empty slab, else of a
    /// new slab. Debug checks run before anything changes; a corruption found is repaired
    /// when `repair` (the object stays free either way). `fresh` says the slab was created by
    /// this call: the client constructs every object of it (Linux runs the ctor over a new
    /// slab when it allocates it), so its objects are never fresh again.
    pub(crate) fn alloc_one(
        &mut self,
        client: ClientId,
        gi: u32,
        zero: bool,
        repair: bool,
    ) -> Result<Allocated, Error> {
        let c = self.cache(gi)?;
        let flags = c.flags;
        let poisoned = poisons(c);
        let head = |list: u8| c.heads.get(usize::from(list)).copied().unwrap_or(NIL);
        let (s, fresh) = match (head(LIST_PARTIAL), head(LIST_EMPTY)) {
            (p, _) if p != NIL => (p, false),
            (_, e) if e != NIL => (e, false),
            _ => (self.slab_create(client, gi)?, true),
        };
        let idx = self.slab_peek_free(s)?;
        let inactive = Self::red_zone_expected(false);
        if flags & SLAB_RED_ZONE != 0
            && let Some(bad) = self.red_zone_check(client, gi, s, idx, inactive)?
        {
            if repair {
                self.red_zone_fill(client, gi, s, idx, inactive)?;
            }
            return Err(Error::RedZoneCorrupted(bad));
        }
        if poisoned && let Some(bad) = self.poison_check(client, gi, s, idx)? {
            if repair {
                self.poison_object(client, gi, s, idx)?;
            }
            return Err(Error::PoisonCorrupted(bad));
        }
        // Object memory first, while the object is still free in the metadata: a platform
        // failure then leaves the metadata as it was.
        let start = self.obj_stride_start(gi, s, idx)?;
        let c = self.cache(gi)?;
        let handle = Handle(start + u64::from(c.obj_offset));
        let size = c.size as usize;
        let prepared = match flags & SLAB_RED_ZONE != 0 {
            true => self.red_zone_fill(client, gi, s, idx, Self::red_zone_expected(true)),
            false => Ok(()),
        }
        .and_then(|()| if zero { self.fill(client, handle.0, size, 0) } else { Ok(()) });
        if let Err(e) = prepared {
            self.debug_bytes_restore(client, gi, s, idx, false);
            return Err(e);
        }
        let seq = self.next_seq();
        if flags & SLAB_STORE_USER != 0
            && let Err(e) = self.track_stamp(s, idx, true, client, seq)
        {
            self.debug_bytes_restore(client, gi, s, idx, false);
            return Err(e);
        }
        // Until `kmalloc` says otherwise, the whole object was asked for.
        if super::kmalloc::tracks_orig_size(self.cache(gi)?)
            && let Err(e) = self.track_orig_size(s, idx, size as u32)
        {
            self.debug_bytes_restore(client, gi, s, idx, false);
            return Err(e);
        }
        // Commit (metadata only: nothing here calls the platform).
        self.slab_set_obj(s, idx, true)?;
        self.slab_relist(gi, s)?;
        let c = self.cache_mut(gi)?;
        c.active_objs = c.active_objs.saturating_add(1);
        if flags & SLAB_CONSISTENCY_CHECKS != 0 {
            self.check_slab(gi, s).map_err(|_| BROKEN)?;
        }
        Ok(Allocated { handle, fresh })
    }

    /// Free an object. Corresponds to `kmem_cache_free()`.
    pub fn cache_free(&mut self, client: ClientId, cache: CacheId, handle: Handle) -> Result<(), Error> {
        let gi = self.cache_lookup(client, cache)?;
        let (s, idx) = self.validate_free(client, gi, handle)?;
        self.free_prepare(client, gi, s, idx)?;
        self.free_commit(client, gi, s, idx)
    }

    /// Check that `handle` is an allocated object of cache `gi` and its red zones are intact
    /// (repairing them if not). Changes nothing else.
    pub(crate) fn validate_free(&mut self, client: ClientId, gi: u32, handle: Handle) -> Result<(u32, u32), Error> {
        let (s, idx) = match self.locate(client, handle)? {
            Located::Slab { gi: owner, slab, idx } if owner == gi => (slab, idx),
            Located::Slab { .. } => return Err(Error::WrongCache),
            _ => return Err(Error::InvalidObject),
        };
        if !self.obj_allocated(s, idx)? {
            return Err(Error::DoubleFree);
        }
        if self.cache(gi)?.flags & SLAB_RED_ZONE != 0 {
            let active = Self::red_zone_expected(true);
            if let Some(bad) = self.red_zone_check(client, gi, s, idx, active)? {
                self.red_zone_fill(client, gi, s, idx, active)?;
                return Err(Error::RedZoneCorrupted(bad));
            }
            if let Some(bad) = self.slack_check(client, gi, s, idx)? {
                self.slack_repair(client, gi, s, idx)?;
                return Err(Error::RedZoneCorrupted(bad));
            }
        }
        Ok((s, idx))
    }

    /// Object memory of a validated object about to be freed: the free poison and inactive red
    /// zones, written while the metadata still has it allocated (a platform failure leaves the
    /// metadata as it was, the red zones put back as far as possible).
    pub(crate) fn free_prepare(&mut self, client: ClientId, gi: u32, s: u32, idx: u32) -> Result<(), Error> {
        let c = self.cache(gi)?;
        let (flags, poisoned) = (c.flags, poisons(c));
        let poisoned = match poisoned {
            true => self.poison_object(client, gi, s, idx),
            false => Ok(()),
        };
        let prepared = poisoned.and_then(|()| match flags & SLAB_RED_ZONE != 0 {
            true => self.red_zone_fill(client, gi, s, idx, Self::red_zone_expected(false)),
            false => Ok(()),
        });
        if prepared.is_err() {
            self.debug_bytes_restore(client, gi, s, idx, true);
        }
        prepared
    }

    /// Free a validated, prepared object: its STORE_USER record (a failure there changes
    /// nothing), then the metadata.
    pub(crate) fn free_commit(&mut self, client: ClientId, gi: u32, s: u32, idx: u32) -> Result<(), Error> {
        let flags = self.cache(gi)?.flags;
        let seq = self.next_seq();
        if flags & SLAB_STORE_USER != 0 {
            self.track_stamp(s, idx, false, client, seq)?;
        }
        self.slab_set_obj(s, idx, false)?;
        self.slab_relist(gi, s)?;
        let c = self.cache_mut(gi)?;
        c.active_objs = c.active_objs.saturating_sub(1);
        if flags & SLAB_CONSISTENCY_CHECKS != 0 {
            self.check_slab(gi, s).map_err(|_| BROKEN)?;
        }
        Ok(())
    }

    /// Resolve a handle in O(1): window page → frame → slab → object index.
    pub(crate) fn locate(&self, client: ClientId, handle: Handle) -> Result<Located, Error> {
        let window = self.client(client)?.window_pages;
        if handle.0 & Handle::FLAG_BITS != 0 {
            return Err(Error::InvalidObject);
        }
        let page = u32::try_from(handle.0 / PAGE_SIZE as u64).map_err(|_| Error::InvalidObject)?;
        if page >= window {
            return Err(Error::InvalidObject);
        }
        let f = match self.page_map_get(client, page)? {
            PAGE_NONE => return Err(Error::InvalidObject),
            PAGE_FREED_LARGE if handle.0.is_multiple_of(PAGE_SIZE as u64) => return Ok(Located::FreedLarge),
            PAGE_FREED_LARGE => return Err(Error::InvalidObject),
            f => f,
        };
        let fd = *self.frame(f)?;
        if fd.client != client || fd.page != page {
            return Err(BROKEN);
        }
        match fd.kind {
            FRAME_SLAB => {
                let s = fd.link;
                let d = self.slab(s)?;
                let gi = d.cache;
                let c = self.cache(gi)?;
                let base = u64::from(d.first_page) * PAGE_SIZE as u64 + u64::from(c.obj_offset);
                let rel = handle.0.checked_sub(base).ok_or(Error::InvalidObject)?;
                let stride = u64::from(c.stride);
                if stride == 0 || rel % stride != 0 || rel / stride >= u64::from(c.objs) {
                    return Err(Error::InvalidObject);
                }
                Ok(Located::Slab { gi, slab: s, idx: (rel / stride) as u32 })
            }
            FRAME_LARGE_HEAD if handle.0.is_multiple_of(PAGE_SIZE as u64) => {
                Ok(Located::Large { page, pages: fd.link })
            }
            FRAME_LARGE_HEAD | FRAME_LARGE_TAIL => Err(Error::InvalidObject),
            _ => Err(BROKEN),
        }
    }

    /// Destroy a cache. Corresponds to `kmem_cache_destroy()`: with live objects →
    /// `CacheBusy { live }` and the cache stays usable; kmalloc caches → `InvalidArgument`; a
    /// cache with a dtor that still has slabs → `InvalidArgument` (its slabs leave through the
    /// two-phase shrink, so the client runs the dtor first).
    pub fn cache_destroy(&mut self, client: ClientId, cache: CacheId) -> Result<(), Error> {
        let gi = self.cache_lookup(client, cache)?;
        let c = self.cache(gi)?;
        if c.is_kmalloc {
            return Err(Error::InvalidArgument);
        }
        if c.active_objs > 0 {
            return Err(Error::CacheBusy { live: c.active_objs });
        }
        if c.has_dtor && c.counts.iter().any(|&n| n > 0) {
            return Err(Error::InvalidArgument);
        }
        self.cache_release(gi)
    }

    /// Every slab of cache `gi` back to the pool (objects or not) and the slot freed, with a
    /// new generation so old ids are stale (or retired after its last one). Returns nothing;
    /// pages are counted by the caller.
    pub(crate) fn cache_release(&mut self, gi: u32) -> Result<(), Error> {
        let client = self.cache_client(gi);
        for list in 0..LISTS {
            loop {
                let head = *self.cache(gi)?.heads.get(list).ok_or(BROKEN)?;
                if head == NIL {
                    break;
                }
                self.slab_destroy(gi, head)?;
            }
        }
        let last = self.cache_generation_max();
        let c = self.cache_mut(gi)?;
        // A slot that used its last generation retires: its ids can never come back to life.
        let (generation, retired) = match c.generation {
            g if g >= last => (g, true),
            g => (g + 1, false),
        };
        *c = CacheDesc { generation, retired, ..CacheDesc::EMPTY };
        let cl = self.client_mut(client)?;
        cl.caches = cl.caches.saturating_sub(1);
        Ok(())
    }

    /// Release every empty slab of a cache. Corresponds to `kmem_cache_shrink()`; returns
    /// the pages that went back to the pool. A cache with a dtor → `InvalidArgument` (its slabs
    /// leave through [`Engine::shrink_begin`] / [`Engine::shrink_commit`]).
    pub fn cache_shrink(&mut self, client: ClientId, cache: CacheId) -> Result<u32, Error> {
        if self.cache(self.cache_lookup(client, cache)?)?.has_dtor {
            return Err(Error::InvalidArgument);
        }
        Ok(self.cache_shrink_some(client, cache, super::reclaim::Released::ALL)?.pages)
    }
}

//! A slot's magazines, the shared layer ([`Magazines`]): the loaded and previous magazines
//! in the control region, their swap, the exchange with the server's depot (the one IPC of a
//! miss), the construction of new slabs (ctor), the hardened free's admission, bulk
//! operations, and where hits are counted ([`Pending`]). Used by a [`Cache`](super::Cache)'s
//! own `alloc`/`free` and by `kmalloc`/`kfree`, which reach the same slots through the
//! server's cache and page-owner tables. Every user of a slot holds the slot's lock
//! ([`Memserver::slot_lock`]).

use core::sync::atomic::Ordering::Relaxed;

use protocol::control::{CacheEntry, MagazineRole, NO_SLOT, NOT_KMALLOC, SLOTS_MAX};
use protocol::flags::SLAB_DEBUG;
use protocol::{CacheId, CacheLayout, ExchangeOp, Handle, PAGE_SIZE};

use super::Ctor;
use super::fast::FastPath;
use crate::error::Error;
use crate::hardened::ObjectCheck;
use crate::server::Memserver;
use crate::shm::SlotView;
use crate::transport::Transport;

/// Where a cache's objects lie, as far as constructing a whole slab needs: slabs are
/// `pages_per_slab` pages, aligned to their own size in the window, holding
/// `objects_per_slab` objects at `stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) object_size: u32,
    pub(crate) stride: u32,
    pub(crate) objects_per_slab: u32,
    pub(crate) pages_per_slab: u32,
}

impl Geometry {
    pub(super) fn of_layout(layout: &CacheLayout) -> Self {
        Geometry {
            object_size: layout.object_size,
            stride: layout.stride,
            objects_per_slab: layout.objects_per_slab,
            pages_per_slab: layout.pages_per_slab,
        }
    }

    fn of_entry(entry: &CacheEntry) -> Self {
        Geometry {
            object_size: entry.object_size,
            stride: entry.stride,
            objects_per_slab: u32::from(entry.objects_per_slab),
            pages_per_slab: 1u32.checked_shl(u32::from(entry.order)).unwrap_or(0),
        }
    }

    /// The handles of every object of the slab holding `handle` (a slab starts at a multiple
    /// of its own size; the first object is as far into it as `handle` is into its stride).
    fn slab_objects(&self, handle: Handle) -> impl Iterator<Item = Handle> + use<> {
        let slab_bytes = u64::from(self.pages_per_slab) * PAGE_SIZE as u64;
        let stride = u64::from(self.stride).max(1);
        let base = if slab_bytes.is_power_of_two() { handle.0 & !(slab_bytes - 1) } else { handle.0 };
        let first = base + (handle.0 - base) % stride;
        (0..u64::from(self.objects_per_slab)).map(move |i| Handle(first + i * stride))
    }
}

/// A magazine slot and what its paths need: the slot's magazines (a view given only to the
/// cache bound to it), the cache, the ctor to run over the objects of new slabs, and the
/// hardened free's checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Magazines {
    pub(crate) index: u16,
    pub(crate) capacity: u16,
    pub(crate) cache: CacheId,
    pub(crate) geometry: Geometry,
    pub(crate) ctor: Option<Ctor>,
    /// Whether the operations count as `kmalloc`/`kfree` (for the kmalloc hit counters).
    pub(crate) kmalloc: bool,
    pub(super) slot: SlotView,
    /// The hardened free's checks and the hand-out of objects: the object-start-of-this-cache
    /// check (none if the server's cache table did not describe the cache: then only the
    /// double-free test runs), and whether freed objects carry a canary (caches without ctor
    /// or dtor: their freed objects' contents are nobody's).
    pub(crate) fast: FastPath,
}

impl Magazines {
    /// The magazines of `slot` for `cache`, if the slot is usable (below [`SLOTS_MAX`], inside
    /// the control region, a capacity).
    pub(super) fn bind<T: Transport>(
        server: &Memserver<T>,
        slot: u16,
        capacity: u16,
        cache: CacheId,
        geometry: Geometry,
        ctor: Option<Ctor>,
        (canary, check): (bool, Option<ObjectCheck>),
    ) -> Option<Magazines> {
        if slot >= SLOTS_MAX.min(server.magazine_slots()) || capacity == 0 || !server.control().has_slot(slot) {
            return None;
        }
        let view = server.control().slot(slot)?;
        let fast =
            FastPath::new(server.window(), server.page_owners(), geometry.object_size, check, *server.canary(), canary);
        Some(Magazines { index: slot, capacity, cache, geometry, ctor, kmalloc: false, slot: view, fast })
    }

    /// The magazines of the cache `entry` (cache-table index `table_index`) describes, if it
    /// has a slot this client can use (a non-debug cache with a usable slot), for `kmalloc`
    /// and `kfree` (their hits count as kmalloc hits). Freed objects carry a canary for the
    /// kmalloc classes and for the caches this session created without ctor or dtor (the
    /// table does not say whether a cache has a ctor; the session remembers).
    pub(crate) fn of_entry<T: Transport>(
        server: &Memserver<T>,
        table_index: u16,
        entry: &CacheEntry,
    ) -> Option<Magazines> {
        if entry.slot == NO_SLOT || entry.flags & SLAB_DEBUG != 0 {
            return None;
        }
        let canary = entry.kmalloc_class != NOT_KMALLOC || server.canary_cache(table_index);
        let check = ObjectCheck::of_entry(table_index, entry);
        let geometry = Geometry::of_entry(entry);
        let mut m =
            Self::bind(server, entry.slot, entry.capacity, CacheId(entry.cache), geometry, None, (canary, check))?;
        m.kmalloc = true;
        Some(m)
    }

    /// A handle from the shared layer: the loaded magazine's top, after a swap with a
    /// non-empty previous one or a refill from the server (a miss: the one IPC). The caller holds the slot's lock.
    pub(crate) fn take<T: Transport>(&self, server: &Memserver<T>, pending: &mut Pending) -> Result<u64, Error> {
        if let Some(handle) = self.slot.pop() {
            return Ok(handle);
        }
        // Bonwick swaps only with a full previous magazine; any objects there beat an IPC.
        if self.slot.count(MagazineRole::Previous) > 0 {
            self.slot.swap();
        } else {
            self.miss(server, pending);
            self.exchange(server, ExchangeOp::Refill)?;
        }
        self.slot.pop().ok_or(Error::UnexpectedReply)
    }

    /// Puts a handle into the shared layer: onto the loaded magazine, after a swap with an
    /// empty previous one or a drain to the server. The caller holds the slot's lock.
    pub(crate) fn put<T: Transport>(
        &self,
        server: &Memserver<T>,
        pending: &mut Pending,
        handle: u64,
    ) -> Result<(), Error> {
        if self.slot.push(self.capacity, handle) {
            return Ok(());
        }
        if self.slot.count(MagazineRole::Previous) == 0 {
            self.slot.swap();
        } else {
            self.miss(server, pending);
            self.exchange(server, ExchangeOp::Drain)?;
        }
        if self.slot.push(self.capacity, handle) { Ok(()) } else { Err(Error::UnexpectedReply) }
    }

    /// Hands an object out of a magazine: clears its canary.
    #[inline]
    pub(crate) fn hand_out<T: Transport>(&self, server: &Memserver<T>, handle: u64) -> Handle {
        if self.fast.writes_canary() {
            server.window().set_word(handle, 0);
        }
        Handle(handle)
    }

    /// The shared-layer path of an allocation; the caller holds the slot's lock.
    #[inline]
    pub(crate) fn alloc<T: Transport>(&self, server: &Memserver<T>, pending: &mut Pending) -> Result<Handle, Error> {
        pending.missed = false;
        let handle = self.take(server, pending)?;
        if !pending.missed {
            pending.hit(server, true, self.kmalloc);
        }
        Ok(self.hand_out(server, handle))
    }

    /// The shared-layer path of a free (hardened); the caller holds the slot's lock.
    #[inline]
    pub(crate) fn free<T: Transport>(
        &self,
        server: &Memserver<T>,
        pending: &mut Pending,
        handle: Handle,
    ) -> Result<(), Error> {
        let top = if self.fast.writes_canary() { None } else { self.top() };
        let canary = self.fast.admit(handle.0, top).map_err(Error::from)?;
        pending.missed = false;
        self.put(server, pending, handle.0)?;
        self.fast.mark_free(handle.0, canary);
        if !pending.missed {
            pending.hit(server, false, self.kmalloc);
        }
        Ok(())
    }

    /// The handle on top of the loaded magazine (the object freed last), if any.
    fn top(&self) -> Option<u64> {
        let count = self.slot.count(MagazineRole::Loaded) as usize;
        self.slot.handle(MagazineRole::Loaded, count.checked_sub(1)?)
    }

    /// An operation that needs an IPC: counted as a miss (not a hit).
    fn miss<T: Transport>(&self, server: &Memserver<T>, pending: &mut Pending) {
        pending.publish(server);
        pending.missed = true;
        server.raw_counters().misses.fetch_add(1, Relaxed);
        if self.kmalloc {
            server.private_counters().kmalloc_misses.fetch_add(1, Relaxed);
        }
    }

    /// One `MagazineExchange`; after a refill, runs the ctor over every object of each new
    /// slab (a set bit of `fresh_mask` marks a handle whose slab the refill created).
    pub(crate) fn exchange<T: Transport>(&self, server: &Memserver<T>, op: ExchangeOp) -> Result<(), Error> {
        let protocol::Exchanged { count, fresh_mask } =
            server.ipc_retrying(|api| api.magazine_exchange(self.cache, self.index, op))?;
        if let (Some(ctor), ExchangeOp::Refill) = (self.ctor, op) {
            for i in (0..usize::from(count)).filter(|i| fresh_mask >> i & 1 == 1) {
                let handle = self.slot.handle(MagazineRole::Loaded, i).ok_or(Error::UnexpectedReply)?;
                construct_slab(server, &self.geometry, Handle(handle), ctor)?;
            }
        }
        Ok(())
    }

    /// Allocates `out.len()` objects, all or none. Pops what the magazines hold and refills
    /// as needed (each refill moves a whole magazine in one exchange); on a failure every
    /// object taken so far goes back through [`Magazines::free`]. Caller holds the lock.
    pub(crate) fn alloc_bulk<T: Transport>(
        &self,
        server: &Memserver<T>,
        pending: &mut Pending,
        out: &mut [Handle],
    ) -> Result<(), Error> {
        for i in 0..out.len() {
            match self.alloc(server, pending) {
                Ok(handle) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = handle;
                    }
                }
                Err(e) => {
                    for &handle in out.iter().take(i) {
                        self.free(server, pending, handle)?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Runs `ctor` on every object of the slab holding `handle`.
pub(super) fn construct_slab<T: Transport>(
    server: &Memserver<T>,
    geometry: &Geometry,
    handle: Handle,
    ctor: Ctor,
) -> Result<(), Error> {
    for object in geometry.slab_objects(handle) {
        ctor(server.object(object, geometry.object_size as usize)?);
    }
    Ok(())
}

/// Where the fast path counts its magazine hits. `Cache::alloc`/`free` add to the
/// control-region header at once (one atomic add; the server reads those counters). A
/// [`CacheGuard`](super::CacheGuard) counts with plain adds and publishes in batches: at every miss, every
/// [`PUBLISH_EVERY`] hits, and when it is dropped, so its fast path has no atomic instruction.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batched: bool,
    alloc_hits: u64,
    free_hits: u64,
    /// Whether a trip to the shared layer missed (swapped or exchanged): the operation that
    /// made it counts as a miss, not a hit.
    pub(crate) missed: bool,
}

/// Hits a guard counts before it publishes them.
const PUBLISH_EVERY: u64 = 256;

impl Pending {
    /// A guard's: hits are counted here and published in batches.
    pub(super) fn batched() -> Self {
        Pending { batched: true, ..Pending::default() }
    }

    /// Counts one hit (`alloc` or `free`).
    #[inline]
    fn hit<T: Transport>(&mut self, server: &Memserver<T>, alloc: bool, kmalloc: bool) {
        if !self.batched {
            server.count_hit(alloc, kmalloc);
            return;
        }
        if kmalloc {
            server.private_counters().kmalloc_hits.fetch_add(1, Relaxed);
        }
        let count = if alloc { &mut self.alloc_hits } else { &mut self.free_hits };
        *count += 1;
        if *count >= PUBLISH_EVERY {
            self.publish(server);
        }
    }

    pub(super) fn publish<T: Transport>(&mut self, server: &Memserver<T>) {
        let counters = server.raw_counters();
        if self.alloc_hits > 0 {
            counters.alloc_hits.fetch_add(core::mem::take(&mut self.alloc_hits), Relaxed);
        }
        if self.free_hits > 0 {
            counters.free_hits.fetch_add(core::mem::take(&mut self.free_hits), Relaxed);
        }
    }
}

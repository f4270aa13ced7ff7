//! [`Cache`]: a `kmem_cache` of one client, with Bonwick magazines in the control region;
//! [`KmemCache`]: its typed form, the `KMEM_CACHE()` macro's counterpart.
//!
//! All of the magazine logic lives here ([`Magazines`]: the fast path, the exchange, the
//! construction of new slabs, bulk operations), used by a cache's own `alloc`/`free` and by
//! `kmalloc`/`kfree`, which reach the same slots through the server's cache and page-owner
//! tables. Every user of a slot holds the slot's lock ([`Memserver::slot_lock`]).

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use protocol::control::{CacheEntry, MagazineRole, NO_SLOT, SLOTS_MAX};
use protocol::flags::{SLAB_DEBUG, SLAB_PANIC};
use protocol::{CacheId, CacheLayout, CacheName, ExchangeOp, Handle, PAGE_SIZE};
use spin::Mutex;

use crate::error::Error;
use crate::server::Memserver;
use crate::transport::Transport;

/// A constructor: runs on every object of a new slab, in the client, when the slab is first
/// handed out (Linux runs it when the slab is allocated); never again when an object is reused.
pub type Ctor = fn(NonNull<u8>);

/// A destructor (Linux 2.4's `dtor`): runs on every object of a slab, in the client, before
/// the slab's pages leave the cache (shrink, destroy). Objects are in their constructed state.
pub type Dtor = fn(NonNull<u8>);

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
    fn of_layout(layout: &CacheLayout) -> Self {
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

/// A magazine slot and what its slow path needs: the slot, the cache it is bound to, and the
/// ctor to run over the objects of new slabs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Magazines {
    pub(crate) index: u16,
    pub(crate) capacity: u16,
    pub(crate) cache: CacheId,
    pub(crate) geometry: Geometry,
    pub(crate) ctor: Option<Ctor>,
    /// Whether the operations count as `kmalloc`/`kfree` (for the kmalloc hit counters).
    pub(crate) kmalloc: bool,
}

impl Magazines {
    /// The magazines of the cache `entry` describes, if it has a slot this client can use (a
    /// non-debug cache, a slot inside the control region and below [`SLOTS_MAX`]), for
    /// `kmalloc` and `kfree` (their hits count as kmalloc hits).
    pub(crate) fn of_entry(entry: &CacheEntry, control: &crate::shm::Control, slots: u16) -> Option<Magazines> {
        let usable = entry.slot != NO_SLOT
            && entry.slot < slots.min(SLOTS_MAX)
            && entry.capacity > 0
            && entry.flags & SLAB_DEBUG == 0
            && control.has_slot(entry.slot);
        usable.then(|| Magazines {
            index: entry.slot,
            capacity: entry.capacity,
            cache: CacheId(entry.cache),
            geometry: Geometry::of_entry(entry),
            ctor: None,
            kmalloc: true,
        })
    }

    /// The magazine path of an allocation; the caller holds the slot's lock.
    #[inline]
    pub(crate) fn alloc<T: Transport>(&self, server: &Memserver<T>, pending: &mut Pending) -> Result<Handle, Error> {
        let control = server.control();
        if let Some(handle) = control.pop(self.index) {
            pending.hit(server, true, self.kmalloc);
            return Ok(Handle(handle));
        }
        pending.publish(server);
        self.count_miss(server);
        if control.count(self.index, MagazineRole::Previous) == u32::from(self.capacity) {
            control.swap(self.index);
        } else {
            self.exchange(server, ExchangeOp::Refill)?;
        }
        control.pop(self.index).map(Handle).ok_or(Error::UnexpectedReply)
    }

    /// The magazine path of a free; the caller holds the slot's lock.
    #[inline]
    pub(crate) fn free<T: Transport>(
        &self,
        server: &Memserver<T>,
        pending: &mut Pending,
        handle: Handle,
    ) -> Result<(), Error> {
        let control = server.control();
        if control.push(self.index, self.capacity, handle.0) {
            pending.hit(server, false, self.kmalloc);
            return Ok(());
        }
        pending.publish(server);
        self.count_miss(server);
        if control.count(self.index, MagazineRole::Previous) == 0 {
            control.swap(self.index);
        } else {
            self.exchange(server, ExchangeOp::Drain)?;
        }
        if control.push(self.index, self.capacity, handle.0) { Ok(()) } else { Err(Error::UnexpectedReply) }
    }

    fn count_miss<T: Transport>(&self, server: &Memserver<T>) {
        server.raw_counters().misses.fetch_add(1, Relaxed);
        if self.kmalloc {
            server.private_counters().kmalloc_misses.fetch_add(1, Relaxed);
        }
    }

    /// One `MagazineExchange`; after a refill, runs the ctor over every object of each new
    /// slab (a set bit of `fresh_mask` marks a handle whose slab the refill created).
    pub(crate) fn exchange<T: Transport>(&self, server: &Memserver<T>, op: ExchangeOp) -> Result<(), Error> {
        let protocol::Exchanged { count, fresh_mask } =
            server.ipc(|api| api.magazine_exchange(self.cache, self.index, op))?;
        if let (Some(ctor), ExchangeOp::Refill) = (self.ctor, op) {
            let control = server.control();
            for i in (0..usize::from(count)).filter(|i| fresh_mask >> i & 1 == 1) {
                let handle = control.handle(self.index, MagazineRole::Loaded, i).ok_or(Error::UnexpectedReply)?;
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
fn construct_slab<T: Transport>(
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
/// [`CacheGuard`] counts with plain adds and publishes in batches: at every miss, every
/// [`PUBLISH_EVERY`] hits, and when it is dropped, so its fast path has no atomic instruction.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    batched: bool,
    alloc_hits: u64,
    free_hits: u64,
}

/// Hits a guard counts before it publishes them.
const PUBLISH_EVERY: u64 = 256;

impl Pending {
    /// Counts one hit (`alloc` or `free`).
    #[inline]
    fn hit<T: Transport>(&mut self, server: &Memserver<T>, alloc: bool, kmalloc: bool) {
        if kmalloc {
            server.private_counters().kmalloc_hits.fetch_add(1, Relaxed);
        }
        if !self.batched {
            let counters = server.raw_counters();
            let counter = if alloc { counters.alloc_hits } else { counters.free_hits };
            counter.fetch_add(1, Relaxed);
            return;
        }
        let count = if alloc { &mut self.alloc_hits } else { &mut self.free_hits };
        *count += 1;
        if *count >= PUBLISH_EVERY {
            self.publish(server);
        }
    }

    fn publish<T: Transport>(&mut self, server: &Memserver<T>) {
        let counters = server.raw_counters();
        if self.alloc_hits > 0 {
            counters.alloc_hits.fetch_add(core::mem::take(&mut self.alloc_hits), Relaxed);
        }
        if self.free_hits > 0 {
            counters.free_hits.fetch_add(core::mem::take(&mut self.free_hits), Relaxed);
        }
    }
}

/// A slab cache. Corresponds to `struct kmem_cache`.
///
/// Thread safety: a cache may be shared between threads; one spin lock per magazine slot
/// guards its two magazines (held for a few instructions on the fast path, and across the
/// IPC of an exchange, so the server never sees a magazine being changed under it). The lock
/// belongs to the session ([`Memserver::slot_lock`]) because `kfree` of one of this cache's
/// objects reaches the same magazines. A spin lock rather than per-thread magazines because
/// the control region has one slot per cache and the common case is one thread per client
/// task, where the lock is never contended.
///
/// Each `alloc`/`free` takes the lock and counts its hit in the shared control-region header
/// (two atomic instructions). A thread that does many operations in a row can take the lock
/// once for all of them with [`Cache::lock`]: the [`CacheGuard`]'s `alloc`/`free` then run
/// without any atomic instruction, and publish their counts in batches.
pub struct Cache<'m, T: Transport> {
    server: &'m Memserver<T>,
    id: CacheId,
    name: CacheName,
    layout: CacheLayout,
    flags: u32,
    ctor: Option<Ctor>,
    dtor: Option<Dtor>,
    magazines: Option<Magazines>,
    /// Serialises the IPC path of a cache without magazines when it has a ctor: the objects of
    /// a new slab are constructed before another thread can be handed one of them.
    ipc_lock: Mutex<()>,
}

impl<'m, T: Transport> Cache<'m, T> {
    /// Corresponds to `kmem_cache_create()`.
    pub fn create(
        server: &'m Memserver<T>,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        ctor: Option<Ctor>,
    ) -> Result<Self, Error> {
        Self::create_with_dtor(server, name, size, align, flags, ctor, None)
    }

    /// Corresponds to `kmem_cache_create()` of the older API (Linux 2.4), with a destructor:
    /// `dtor` runs on every object of a slab before the slab leaves the cache. Such a cache is
    /// never reaped under memory pressure; its `shrink` and `destroy` release slabs in two
    /// phases (the server names them, the dtor runs, the server releases them).
    pub fn create_with_dtor(
        server: &'m Memserver<T>,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        ctor: Option<Ctor>,
        dtor: Option<Dtor>,
    ) -> Result<Self, Error> {
        let name = protocol::cache_name(name)?;
        let created =
            server.ipc(|api| api.cache_create(name.clone(), size, align, flags, ctor.is_some(), dtor.is_some()))?;
        let protocol::Created { cache, layout, slot, magazine_capacity, debug } = created;
        let magazines = slot
            .filter(|&s| !debug && magazine_capacity > 0 && s < SLOTS_MAX && server.control().has_slot(s))
            .map(|index| Magazines {
                index,
                capacity: magazine_capacity,
                cache,
                geometry: Geometry::of_layout(&layout),
                ctor,
                kmalloc: false,
            });
        Ok(Cache { server, id: cache, name, layout, flags, ctor, dtor, magazines, ipc_lock: Mutex::new(()) })
    }

    /// As [`Cache::create`], but every `alloc` and `free` is an IPC (`Alloc` / `Free`), as for a
    /// debug cache, without a debug flag: the server's slab layer measured on its own (the load
    /// generator's `--no-magazines`). The server may still bind a control-region slot to the
    /// cache; the client never uses it.
    pub fn create_without_magazines(
        server: &'m Memserver<T>,
        name: &str,
        size: u32,
        align: u32,
        flags: u32,
        ctor: Option<Ctor>,
    ) -> Result<Self, Error> {
        let mut cache = Self::create(server, name, size, align, flags, ctor)?;
        cache.magazines = None;
        Ok(cache)
    }

    /// The server's id of this cache.
    pub fn id(&self) -> CacheId {
        self.id
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Its object layout.
    pub fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Whether allocations and frees go through magazines (not for debug caches).
    pub fn has_magazines(&self) -> bool {
        self.magazines.is_some()
    }

    /// Whether it was created with a ctor (its objects are handed out constructed).
    pub fn has_ctor(&self) -> bool {
        self.ctor.is_some()
    }

    /// Corresponds to `kmem_cache_alloc()`. A `SLAB_PANIC` cache panics when it cannot
    /// allocate, as Linux does at creation; others return the error.
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let result = match &self.magazines {
            Some(m) => {
                let _guard = self.server.slot_lock(m.index).lock();
                m.alloc(self.server, &mut Pending::default()).and_then(|h| self.object(h))
            }
            None => self.ipc_alloc(false),
        };
        self.check_panic(result)
    }

    /// Takes the cache's lock for a run of operations by one thread: the guard's `alloc` and
    /// `free` are the magazine fast path without any atomic instruction. Other threads using
    /// the cache (or `kfree`ing its objects) wait (spin) until the guard is dropped.
    pub fn lock(&self) -> CacheGuard<'_, 'm, T> {
        let lock = match &self.magazines {
            Some(m) => self.server.slot_lock(m.index),
            None => &self.ipc_lock,
        };
        CacheGuard { cache: self, _lock: lock.lock(), pending: Pending { batched: true, ..Pending::default() } }
    }

    /// `SLAB_PANIC`: a failed allocation is fatal, as Linux makes it.
    fn check_panic<V: core::fmt::Debug>(&self, result: Result<V, Error>) -> Result<V, Error> {
        if result.is_err() && self.flags & SLAB_PANIC != 0 {
            panic!("kmem_cache_alloc on a SLAB_PANIC cache failed: {:?}", result);
        }
        result
    }

    /// Corresponds to `kmem_cache_zalloc()`: zero-filled. Refused on a cache with a ctor, as
    /// Linux refuses `__GFP_ZERO` with a constructor.
    pub fn zalloc(&self) -> Result<NonNull<u8>, Error> {
        if self.ctor.is_some() {
            return Err(Error::Server(protocol::Error::InvalidArgument));
        }
        if self.magazines.is_none() {
            return self.ipc_alloc(true);
        }
        let ptr = self.alloc()?;
        if !self.server.window().zero(ptr, self.layout.object_size as usize) {
            return Err(Error::NotInWindow);
        }
        Ok(ptr)
    }

    /// Corresponds to `kmem_cache_free()`.
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        match &self.magazines {
            Some(m) => {
                let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
                let _guard = self.server.slot_lock(m.index).lock();
                m.free(self.server, &mut Pending::default(), handle)
            }
            None => self.ipc_free(ptr),
        }
    }

    /// Corresponds to `kmem_cache_alloc_bulk()`: fills all of `out` or nothing. Linux returns
    /// the count or 0; this returns `Ok(out.len())` or the error, with nothing allocated (no
    /// object leaks on failure). Through the magazines, one exchange moves a whole magazine.
    pub fn alloc_bulk(&self, out: &mut [NonNull<u8>]) -> Result<usize, Error> {
        let mut handles = [Handle(0); 64];
        let mut done = 0usize;
        while done < out.len() {
            let n = (out.len() - done).min(handles.len());
            let chunk = handles.get_mut(..n).ok_or(Error::UnexpectedReply)?;
            let filled = match &self.magazines {
                Some(m) => {
                    let _guard = self.server.slot_lock(m.index).lock();
                    m.alloc_bulk(self.server, &mut Pending::default(), chunk)
                }
                None => self.ipc_alloc_bulk(chunk),
            };
            let placed = filled.and_then(|()| {
                for (slot, &handle) in out.iter_mut().skip(done).zip(chunk.iter()) {
                    *slot = self.object(handle)?;
                }
                Ok(())
            });
            if let Err(e) = placed {
                // Give back what the earlier chunks took (this chunk gave back its own).
                let taken = out.get(..done).unwrap_or(&[]);
                self.free_bulk(taken)?;
                return self.check_panic(Err(e));
            }
            done += n;
        }
        Ok(out.len())
    }

    /// Corresponds to `kmem_cache_free_bulk()`: every object goes back (through the magazines:
    /// one exchange drains a whole magazine). Stops at the first object that cannot be freed.
    pub fn free_bulk(&self, objects: &[NonNull<u8>]) -> Result<(), Error> {
        match &self.magazines {
            Some(m) => {
                let _guard = self.server.slot_lock(m.index).lock();
                let mut pending = Pending::default();
                for &ptr in objects {
                    let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
                    m.free(self.server, &mut pending, handle)?;
                }
                Ok(())
            }
            None => objects.iter().try_for_each(|&ptr| self.ipc_free(ptr)),
        }
    }

    /// The IPC path of `alloc_bulk`: one `Alloc` per object, all or nothing.
    fn ipc_alloc_bulk(&self, out: &mut [Handle]) -> Result<(), Error> {
        for i in 0..out.len() {
            match self.ipc_alloc(false).and_then(|ptr| self.server.window().handle(ptr).ok_or(Error::NotInWindow)) {
                Ok(handle) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = handle;
                    }
                }
                Err(e) => {
                    for &handle in out.iter().take(i) {
                        self.ipc_free(self.object(handle)?)?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn ipc_free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        self.server.ipc(|api| api.free(self.id, handle))
    }

    /// The physical (bus) address of `ptr`, an object of this cache (created with
    /// `SLAB_CACHE_DMA`), for a device's DMA: its address and how many bytes from there are
    /// physically contiguous. Corresponds to `virt_to_phys()` on a `GFP_DMA` object. On seL4
    /// the memserver knows its frames' physical addresses; the host runner answers
    /// `Error::Server(NotSupported)`.
    pub fn dma_addr(&self, ptr: NonNull<u8>) -> Result<protocol::DmaAddress, Error> {
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        self.server.ipc(|api| api.dma_addr(handle))
    }

    /// Corresponds to `kmem_cache_shrink()`: the magazines go back first (as Linux flushes
    /// the per-CPU slabs), then every empty slab returns to the frame pool. With a dtor the
    /// slabs leave in two phases: the server names them, the dtor runs over their objects, the
    /// server releases them. Returns the pages released.
    pub fn shrink(&self) -> Result<u32, Error> {
        self.flush()?;
        match self.dtor {
            None => Ok(self.server.ipc(|api| api.shrink(self.id))?.pages),
            Some(dtor) => crate::dtor::release_empty_slabs(self.server, self.id, &self.layout, dtor),
        }
    }

    /// Corresponds to `kmem_cache_destroy()`. With live objects the server refuses
    /// (`CacheBusy { live }`) and the cache comes back, still usable. With a dtor, the dtor
    /// runs over the objects of every slab first (a two-phase shrink).
    // The refused cache comes back whole (Linux's caller keeps its `kmem_cache *`); a destroy
    // is rare, so its size in the `Err` costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        if let Err(e) = self.flush() {
            return Err((self, e));
        }
        if let Some(dtor) = self.dtor
            && let Err(e) = crate::dtor::release_empty_slabs(self.server, self.id, &self.layout, dtor)
        {
            return Err((self, e));
        }
        match self.server.ipc(|api| api.destroy(self.id)) {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }

    /// Corresponds to writing `/sys/kernel/slab/<name>/validate`: the server checks every
    /// object of the cache (red zones, the kmalloc slack, poison, counts), repairs what it
    /// finds and reports it.
    pub fn validate(&self) -> Result<protocol::ValidationReport, Error> {
        self.server.validate(self.server.client_id(), self.name.as_str())
    }

    /// Both magazines back to the server.
    pub fn flush(&self) -> Result<(), Error> {
        let Some(m) = &self.magazines else { return Ok(()) };
        let _guard = self.server.slot_lock(m.index).lock();
        m.exchange(self.server, ExchangeOp::Flush)
    }

    fn object(&self, handle: Handle) -> Result<NonNull<u8>, Error> {
        self.server.object(handle, self.layout.object_size as usize)
    }

    fn ipc_alloc(&self, zero: bool) -> Result<NonNull<u8>, Error> {
        // A ctor cache constructs a new slab before anyone else may get one of its objects.
        let _guard = self.ctor.map(|_| self.ipc_lock.lock());
        self.ipc_alloc_locked(zero)
    }

    /// The IPC path of an allocation; the caller holds `ipc_lock` if the cache has a ctor.
    fn ipc_alloc_locked(&self, zero: bool) -> Result<NonNull<u8>, Error> {
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        let protocol::Object { handle, fresh } =
            self.server.ipc(|api| if zero { api.zalloc(self.id) } else { api.alloc(self.id) })?;
        if let (true, Some(ctor)) = (fresh, self.ctor) {
            construct_slab(self.server, &Geometry::of_layout(&self.layout), handle, ctor)?;
        }
        self.object(handle)
    }
}

/// One thread's exclusive hold on a [`Cache`] (from [`Cache::lock`]): `alloc` and `free`
/// without taking the lock per operation. Counters are published when it is dropped.
pub struct CacheGuard<'c, 'm, T: Transport> {
    cache: &'c Cache<'m, T>,
    _lock: spin::MutexGuard<'c, ()>,
    pending: Pending,
}

impl<T: Transport> CacheGuard<'_, '_, T> {
    /// Corresponds to `kmem_cache_alloc()`, with the lock already held.
    #[inline]
    pub fn alloc(&mut self) -> Result<NonNull<u8>, Error> {
        let result = match &self.cache.magazines {
            Some(m) => m.alloc(self.cache.server, &mut self.pending).and_then(|h| self.cache.object(h)),
            None => self.cache.ipc_alloc_locked(false),
        };
        self.cache.check_panic(result)
    }

    /// Corresponds to `kmem_cache_free()`, with the lock already held.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        match &self.cache.magazines {
            Some(m) => {
                let handle = self.cache.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
                m.free(self.cache.server, &mut self.pending, handle)
            }
            None => self.cache.ipc_free(ptr),
        }
    }
}

impl<T: Transport> Drop for CacheGuard<'_, '_, T> {
    fn drop(&mut self) {
        self.pending.publish(self.cache.server);
    }
}

/// A typed cache of `X`: name, size and alignment from the type. The `KMEM_CACHE()` macro's
/// counterpart.
pub struct KmemCache<'m, X, T: Transport> {
    cache: Cache<'m, T>,
    _type: PhantomData<fn() -> X>,
}

impl<'m, X, T: Transport> KmemCache<'m, X, T> {
    /// Corresponds to `KMEM_CACHE(X, flags)`: a cache named `name` of `size_of::<X>()`-byte
    /// objects aligned to `align_of::<X>()`.
    pub fn new(server: &'m Memserver<T>, name: &str, flags: u32, ctor: Option<Ctor>) -> Result<Self, Error> {
        let size = u32::try_from(size_of::<X>().max(1)).map_err(|_| Error::Server(protocol::Error::InvalidArgument))?;
        let align = u32::try_from(align_of::<X>()).map_err(|_| Error::Server(protocol::Error::InvalidArgument))?;
        Ok(KmemCache { cache: Cache::create(server, name, size, align, flags, ctor)?, _type: PhantomData })
    }

    /// Corresponds to `kmem_cache_alloc()`: uninitialised (or constructed) memory for one `X`.
    pub fn alloc(&self) -> Result<NonNull<X>, Error> {
        self.cache.alloc().map(NonNull::cast)
    }

    /// Corresponds to `kmem_cache_free()`.
    pub fn free(&self, object: NonNull<X>) -> Result<(), Error> {
        self.cache.free(object.cast())
    }

    /// The untyped cache.
    pub fn cache(&self) -> &Cache<'m, T> {
        &self.cache
    }

    /// Corresponds to `kmem_cache_destroy()`; see [`Cache::destroy`].
    // The refused cache comes back whole (Linux's caller keeps its `kmem_cache *`); a destroy
    // is rare, so its size in the `Err` costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        self.cache.destroy().map_err(|(cache, e)| (KmemCache { cache, _type: PhantomData }, e))
    }
}

//! [`Cache`]: a `kmem_cache` of one client, with Bonwick magazines in the control region;
//! [`KmemCache`]: its typed form, the `KMEM_CACHE()` macro's counterpart.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use protocol::control::MagazineRole;
use protocol::flags::SLAB_PANIC;
use protocol::{CacheId, CacheLayout, ExchangeOp, Handle};
use spin::Mutex;

use crate::error::Error;
use crate::server::Memserver;
use crate::transport::Transport;

/// A constructor: runs once on every fresh object, in the client (never again on reuse).
pub type Ctor = fn(NonNull<u8>);

/// The magazine slot of a cache.
#[derive(Clone, Copy, Debug)]
struct Slot {
    index: u16,
    capacity: u16,
}

/// Where the fast path counts its magazine hits. `Cache::alloc`/`free` add to the
/// control-region header at once (one atomic add; the server reads those counters). A
/// [`CacheGuard`] counts with plain adds and publishes in batches: at every miss, every
/// [`PUBLISH_EVERY`] hits, and when it is dropped, so its fast path has no atomic instruction.
#[derive(Debug, Default)]
struct Pending {
    batched: bool,
    alloc_hits: u64,
    free_hits: u64,
}

/// Hits a guard counts before it publishes them.
const PUBLISH_EVERY: u64 = 256;

impl Pending {
    /// Counts one hit (`alloc` or `free`).
    #[inline]
    fn hit<T: Transport>(&mut self, server: &Memserver<T>, alloc: bool) {
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
/// Thread safety: a cache may be shared between threads; one spin lock per cache guards its
/// two magazines (held for a few instructions on the fast path, and across the IPC of an
/// exchange, so the server never sees a magazine being changed under it). A spin lock
/// rather than per-thread magazines because the control region has one slot per cache and
/// the common case is one thread per client task, where the lock is never contended.
///
/// Each `alloc`/`free` takes the lock and counts its hit in the shared control-region header
/// (two atomic instructions). A thread that does many operations in a row can take the lock
/// once for all of them with [`Cache::lock`]: the [`CacheGuard`]'s `alloc`/`free` then run
/// without any atomic instruction, and publish their counts in batches.
pub struct Cache<'m, T: Transport> {
    server: &'m Memserver<T>,
    id: CacheId,
    layout: CacheLayout,
    flags: u32,
    ctor: Option<Ctor>,
    slot: Option<Slot>,
    lock: Mutex<()>,
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
        let name = protocol::cache_name(name)?;
        let created = server.ipc(|api| api.cache_create(name, size, align, flags, ctor.is_some()))?;
        let protocol::Created { cache, layout, slot, magazine_capacity, .. } = created;
        let slot = slot
            .filter(|&s| magazine_capacity > 0 && server.control().has_slot(s))
            .map(|index| Slot { index, capacity: magazine_capacity });
        Ok(Cache { server, id: cache, layout, flags, ctor, slot, lock: Mutex::new(()) })
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
        cache.slot = None;
        Ok(cache)
    }

    /// The server's id of this cache.
    pub fn id(&self) -> CacheId {
        self.id
    }

    /// Its object layout.
    pub fn layout(&self) -> CacheLayout {
        self.layout
    }

    /// Whether allocations and frees go through magazines (not for debug caches).
    pub fn has_magazines(&self) -> bool {
        self.slot.is_some()
    }

    /// Whether it was created with a ctor (its objects are handed out constructed).
    pub fn has_ctor(&self) -> bool {
        self.ctor.is_some()
    }

    /// Corresponds to `kmem_cache_alloc()`. A `SLAB_PANIC` cache panics when it cannot
    /// allocate, as Linux does at creation; others return the error.
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let result = match self.slot {
            Some(slot) => {
                let _guard = self.lock.lock();
                self.alloc_locked(slot, &mut Pending::default())
            }
            None => self.ipc_alloc(false),
        };
        self.check_panic(result)
    }

    /// Takes the cache's lock for a run of operations by one thread: the guard's `alloc` and
    /// `free` are the magazine fast path without any atomic instruction. Other threads using
    /// the cache wait (spin) until the guard is dropped.
    pub fn lock(&self) -> CacheGuard<'_, 'm, T> {
        CacheGuard { cache: self, _lock: self.lock.lock(), pending: Pending { batched: true, ..Pending::default() } }
    }

    /// `SLAB_PANIC`: a failed allocation is fatal, as Linux makes it.
    fn check_panic(&self, result: Result<NonNull<u8>, Error>) -> Result<NonNull<u8>, Error> {
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
        if self.slot.is_none() {
            return self.ipc_alloc(true);
        }
        let ptr = self.alloc()?;
        if !self.server.window().zero(ptr, self.layout.object_size as usize) {
            return Err(Error::NotInWindow);
        }
        Ok(ptr)
    }

    /// The magazine path of `alloc`, with the lock held.
    #[inline]
    fn alloc_locked(&self, slot: Slot, pending: &mut Pending) -> Result<NonNull<u8>, Error> {
        let control = self.server.control();
        if let Some(handle) = control.pop(slot.index) {
            pending.hit(self.server, true);
            return self.server.object(Handle(handle), self.layout.object_size as usize);
        }
        pending.publish(self.server);
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        if control.count(slot.index, MagazineRole::Previous) == u32::from(slot.capacity) {
            control.swap(slot.index);
        } else {
            self.exchange(slot, ExchangeOp::Refill)?;
        }
        let handle = control.pop(slot.index).ok_or(Error::UnexpectedReply)?;
        self.server.object(Handle(handle), self.layout.object_size as usize)
    }

    /// Corresponds to `kmem_cache_free()`.
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        match self.slot {
            Some(slot) => {
                let _guard = self.lock.lock();
                self.free_locked(slot, &mut Pending::default(), ptr)
            }
            None => self.ipc_free(ptr),
        }
    }

    fn ipc_free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        self.server.ipc(|api| api.free(self.id, handle))
    }

    /// The magazine path of `free`, with the lock held.
    #[inline]
    fn free_locked(&self, slot: Slot, pending: &mut Pending, ptr: NonNull<u8>) -> Result<(), Error> {
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        let control = self.server.control();
        if control.push(slot.index, slot.capacity, handle.0) {
            pending.hit(self.server, false);
            return Ok(());
        }
        pending.publish(self.server);
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        if control.count(slot.index, MagazineRole::Previous) == 0 {
            control.swap(slot.index);
        } else {
            self.exchange(slot, ExchangeOp::Drain)?;
        }
        if control.push(slot.index, slot.capacity, handle.0) { Ok(()) } else { Err(Error::UnexpectedReply) }
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
    /// the per-CPU slabs), then every empty slab returns to the frame pool. Returns the pages
    /// released.
    pub fn shrink(&self) -> Result<u32, Error> {
        self.flush()?;
        Ok(self.server.ipc(|api| api.shrink(self.id))?.pages)
    }

    /// Corresponds to `kmem_cache_destroy()`. With live objects the server refuses
    /// (`CacheBusy { live }`) and the cache comes back, still usable.
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        if let Err(e) = self.flush() {
            return Err((self, e));
        }
        match self.server.ipc(|api| api.destroy(self.id)) {
            Ok(()) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }

    /// Both magazines back to the server.
    pub fn flush(&self) -> Result<(), Error> {
        let Some(slot) = self.slot else { return Ok(()) };
        let _guard = self.lock.lock();
        self.exchange(slot, ExchangeOp::Flush)
    }

    /// One `MagazineExchange`; after a refill, runs the ctor on every fresh object.
    fn exchange(&self, slot: Slot, op: ExchangeOp) -> Result<(), Error> {
        let protocol::Exchanged { count, fresh_mask } =
            self.server.ipc(|api| api.magazine_exchange(self.id, slot.index, op))?;
        if let (Some(ctor), ExchangeOp::Refill) = (self.ctor, op) {
            let control = self.server.control();
            for i in (0..usize::from(count)).filter(|i| fresh_mask >> i & 1 == 1) {
                let handle = control.handle(slot.index, MagazineRole::Loaded, i).ok_or(Error::UnexpectedReply)?;
                ctor(self.server.object(Handle(handle), self.layout.object_size as usize)?);
            }
        }
        Ok(())
    }

    fn ipc_alloc(&self, zero: bool) -> Result<NonNull<u8>, Error> {
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        let protocol::Object { handle, fresh } =
            self.server.ipc(|api| if zero { api.zalloc(self.id) } else { api.alloc(self.id) })?;
        let ptr = self.server.object(handle, self.layout.object_size as usize)?;
        if let (true, Some(ctor)) = (fresh, self.ctor) {
            ctor(ptr);
        }
        Ok(ptr)
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
        let result = match self.cache.slot {
            Some(slot) => self.cache.alloc_locked(slot, &mut self.pending),
            None => self.cache.ipc_alloc(false),
        };
        self.cache.check_panic(result)
    }

    /// Corresponds to `kmem_cache_free()`, with the lock already held.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        match self.cache.slot {
            Some(slot) => self.cache.free_locked(slot, &mut self.pending, ptr),
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
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        self.cache.destroy().map_err(|(cache, e)| (KmemCache { cache, _type: PhantomData }, e))
    }
}

//! [`Cache`]: a `kmem_cache` of one client, with Bonwick magazines in the control region;
//! [`KmemCache`]: its typed form, the `KMEM_CACHE()` macro's counterpart.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use protocol::control::MagazineRole;
use protocol::flags::SLAB_PANIC;
use protocol::{CacheId, CacheLayout, ExchangeOp, Handle, Reply, Request};
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

/// A slab cache. Corresponds to `struct kmem_cache`.
///
/// Thread safety: a cache may be shared between threads; one spin lock per cache guards its
/// two magazines (held for a few instructions on the fast path, and across the IPC of an
/// exchange, so the server never sees a magazine being changed under it). A spin lock
/// rather than per-thread magazines because the control region has one slot per cache and
/// the common case is one thread per client task, where the lock is never contended.
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
        let request = Request::CacheCreate { name, size, align, flags, ctor: ctor.is_some() };
        let Reply::Created { cache, layout, slot, magazine_capacity, .. } = server.call(&request)? else {
            return Err(Error::UnexpectedReply);
        };
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

    /// Corresponds to `kmem_cache_alloc()`. A `SLAB_PANIC` cache panics when it cannot
    /// allocate, as Linux does at creation; others return the error.
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        let result = self.alloc_inner();
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

    fn alloc_inner(&self) -> Result<NonNull<u8>, Error> {
        let Some(slot) = self.slot else { return self.ipc_alloc(false) };
        let control = self.server.control();
        let _guard = self.lock.lock();
        if let Some(handle) = control.pop(slot.index) {
            self.server.raw_counters().alloc_hits.fetch_add(1, Relaxed);
            return self.server.object(Handle(handle), self.layout.object_size as usize);
        }
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
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        let Some(slot) = self.slot else {
            self.server.raw_counters().misses.fetch_add(1, Relaxed);
            return self.server.expect_done(&Request::Free { cache: self.id, handle });
        };
        let control = self.server.control();
        let _guard = self.lock.lock();
        if control.push(slot.index, slot.capacity, handle.0) {
            self.server.raw_counters().free_hits.fetch_add(1, Relaxed);
            return Ok(());
        }
        self.server.raw_counters().misses.fetch_add(1, Relaxed);
        if control.count(slot.index, MagazineRole::Previous) == 0 {
            control.swap(slot.index);
        } else {
            self.exchange(slot, ExchangeOp::Drain)?;
        }
        if control.push(slot.index, slot.capacity, handle.0) { Ok(()) } else { Err(Error::UnexpectedReply) }
    }

    /// Corresponds to `kmem_cache_shrink()`: the magazines go back first (as Linux flushes
    /// the per-CPU slabs), then every empty slab returns to the frame pool. Returns the pages
    /// released.
    pub fn shrink(&self) -> Result<u32, Error> {
        self.flush()?;
        match self.server.call(&Request::Shrink { cache: self.id })? {
            Reply::Shrunk { pages } => Ok(pages),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Corresponds to `kmem_cache_destroy()`. With live objects the server refuses
    /// (`CacheBusy { live }`) and the cache comes back, still usable.
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        if let Err(e) = self.flush() {
            return Err((self, e));
        }
        match self.server.expect_done(&Request::Destroy { cache: self.id }) {
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
        let Reply::Exchanged { count, fresh_mask } =
            self.server.call(&Request::MagazineExchange { cache: self.id, slot: slot.index, op })?
        else {
            return Err(Error::UnexpectedReply);
        };
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
        let request = if zero { Request::Zalloc { cache: self.id } } else { Request::Alloc { cache: self.id } };
        let Reply::Object { handle, fresh } = self.server.call(&request)? else {
            return Err(Error::UnexpectedReply);
        };
        let ptr = self.server.object(handle, self.layout.object_size as usize)?;
        if let (true, Some(ctor)) = (fresh, self.ctor) {
            ctor(ptr);
        }
        Ok(ptr)
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
}

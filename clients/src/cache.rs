//! [`Cache`]: a `kmem_cache` of one client, with Bonwick magazines in the control region;
//! [`KmemCache`]: its typed form, the `KMEM_CACHE()` macro's counterpart.
//!
//! This module is the cache as its user sees it (create, alloc/free, bulk, shrink, destroy).
//! The magazine logic lives in submodules: `magazines` (a slot's shared layer: the fast
//! path under the slot's lock, the exchange, the construction of new slabs, bulk operations),
//! used by a cache's own `alloc`/`free` and by `kmalloc`/`kfree`, which reach the same slots
//! through the server's cache and page-owner tables; `stripes` (with `std`: the per-thread
//! magazines in front of it); and `guard` ([`CacheGuard`], one thread's run of operations).
//! Every user of a slot holds the slot's lock ([`Memserver::slot_lock`]).

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use protocol::flags::SLAB_PANIC;
use protocol::{CacheId, CacheLayout, CacheName, ExchangeOp, Handle};
use spin::Mutex;

use crate::error::Error;
use crate::hardened::ObjectCheck;
use crate::server::Memserver;
use crate::transport::Transport;

#[allow(unsafe_code)]
mod fast;
mod guard;
mod magazines;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
mod stripes;

#[cfg(feature = "std")]
pub(crate) use fast::FastPath;
pub use guard::CacheGuard;
use guard::Hold;
use magazines::{Geometry, construct_slab};
pub(crate) use magazines::{Magazines, Pending};
#[cfg(feature = "std")]
pub(crate) use stripes::{Freed, free_owned};

/// A constructor: runs on every object of a new slab, in the client, when the slab is first
/// handed out (Linux runs it when the slab is allocated); never again when an object is reused.
pub type Ctor = fn(NonNull<u8>);

/// A destructor (Linux 2.4's `dtor`): runs on every object of a slab, in the client, before
/// the slab's pages leave the cache (shrink, destroy). Objects are in their constructed state.
pub type Dtor = fn(NonNull<u8>);

/// A slab cache. Corresponds to `struct kmem_cache`.
///
/// Thread safety: a cache may be shared between threads. With the `std` feature each thread
/// has its own magazine of the cache ([`crate::threads`], Bonwick's per-CPU layer): `alloc`
/// and `free` are a pop and a push there, with no lock and no atomic instruction. The shared
/// layer below is the slot's two magazines in the control region, guarded by one spin lock
/// per slot (held while a thread moves half a magazine, and across the IPC of an exchange,
/// so the server never sees a magazine being changed under it); the lock belongs to the
/// session ([`Memserver::slot_lock`]) because `kfree` of one of this cache's objects reaches
/// the same magazines. Without `std` (an seL4 task, single-threaded) every operation uses the
/// shared layer under the lock.
///
/// Every magazine free is hardened ([`crate::hardened`]): a pointer that is no object start
/// of this cache's slabs, or an object that is free already, is refused without IPC.
pub struct Cache<'m, T: Transport> {
    server: &'m Memserver<T>,
    id: CacheId,
    name: CacheName,
    layout: CacheLayout,
    flags: u32,
    ctor: Option<Ctor>,
    dtor: Option<Dtor>,
    magazines: Option<Magazines>,
    /// The per-thread magazines (with magazines and `std`).
    #[cfg(feature = "std")]
    threads: Option<stripes::CacheThreads>,
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
        let created = server
            .ipc_retrying(|api| api.cache_create(name.clone(), size, align, flags, ctor.is_some(), dtor.is_some()))?;
        let protocol::Created { cache, layout, slot, magazine_capacity, debug } = created;
        let magazines = slot.filter(|_| !debug).and_then(|slot| {
            let check = ObjectCheck::of_cache(server.control(), server.control_layout(), cache.0);
            let canary = ctor.is_none() && dtor.is_none();
            if let Some(check) = &check {
                server.set_canary_cache(check.table_index(), canary);
            }
            Magazines::bind(server, slot, magazine_capacity, cache, Geometry::of_layout(&layout), ctor, (canary, check))
        });
        Ok(Cache {
            server,
            id: cache,
            name,
            layout,
            flags,
            ctor,
            dtor,
            #[cfg(feature = "std")]
            threads: magazines.as_ref().map(stripes::CacheThreads::new),
            magazines,
            ipc_lock: Mutex::new(()),
        })
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
        #[cfg(feature = "std")]
        {
            cache.threads = None;
        }
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
    #[inline(always)]
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        #[cfg(feature = "std")]
        if let Some(threads) = &self.threads
            && let Some(ptr) = threads.pop(self.server)
        {
            return Ok(ptr);
        }
        self.alloc_slow()
    }

    /// `alloc` past the thread magazine's hit: its refill, the shared layer, the IPC path.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self) -> Result<NonNull<u8>, Error> {
        let Some(m) = &self.magazines else { return self.check_panic(self.ipc_alloc(false)) };
        #[cfg(feature = "std")]
        if let Some(stripe) = self.stripe() {
            return self.check_panic(self.stripe_refill(m, stripe));
        }
        let result = {
            let _guard = self.server.slot_lock(m.index).lock();
            m.alloc(self.server, &mut Pending::default())
        };
        self.check_panic(result.and_then(|h| self.object(h)))
    }

    /// This thread's stripe of the cache's per-thread magazines, if it has them.
    #[cfg(feature = "std")]
    #[inline]
    fn stripe(&self) -> Option<usize> {
        self.threads.as_ref()?;
        crate::threads::stripe()
    }

    /// A guard for a run of operations by one thread: its `alloc` and `free` are the same
    /// fast path as the cache's, minus finding the thread's magazine each time. Where the
    /// cache has no per-thread magazines (no `std`, more threads than stripes, no magazines)
    /// the guard holds the cache's lock instead, and other threads using the cache (or
    /// `kfree`ing its objects) wait until it is dropped.
    pub fn lock(&self) -> CacheGuard<'_, 'm, T> {
        #[cfg(feature = "std")]
        if let (Some(m), Some(threads), Some(stripe)) = (&self.magazines, self.threads(), self.stripe())
            && let Some(hold) = stripes::StripeHold::new(self.server, m, threads, stripe)
        {
            return CacheGuard {
                cache: self,
                hold: Hold::Stripe(hold),
                pending: Pending::default(),
                _thread: PhantomData,
            };
        }
        let lock = match &self.magazines {
            Some(m) => self.server.slot_lock(m.index),
            None => &self.ipc_lock,
        };
        CacheGuard { cache: self, hold: Hold::Locked(lock.lock()), pending: Pending::batched(), _thread: PhantomData }
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

    /// Corresponds to `kmem_cache_free()`. Through the magazines the free is hardened: a
    /// pointer that is not the start of one of this cache's objects is refused (`WrongCache`
    /// for another cache's object, `InvalidObject` otherwise), and so is an object that is
    /// already free (`DoubleFree`), without IPC.
    #[inline(always)]
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        #[cfg(feature = "std")]
        if let Some(threads) = &self.threads
            && let Some(pushed) = threads.push(self.server, ptr)
        {
            return pushed.map_err(Error::from);
        }
        self.free_slow(ptr)
    }

    /// `free` past the thread magazine's hit: its drain (or this thread's first use of its
    /// stripe), the shared layer, the IPC path.
    #[cold]
    #[inline(never)]
    fn free_slow(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        let Some(m) = &self.magazines else { return self.ipc_free(ptr) };
        let handle = self.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        #[cfg(feature = "std")]
        if let Some(stripe) = self.stripe() {
            return match self.stripe_push(m, stripe, handle.0) {
                Ok(true) => Ok(()),
                Ok(false) => self.stripe_drain(m, stripe, handle.0),
                Err(refusal) => Err(refusal.into()),
            };
        }
        let _guard = self.server.slot_lock(m.index).lock();
        m.free(self.server, &mut Pending::default(), handle)
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
    #[cfg_attr(not(feature = "std"), allow(unused_mut))]
    pub fn destroy(mut self) -> Result<(), (Self, Error)> {
        #[cfg(feature = "std")]
        if let Err(e) = self.return_thread_magazines() {
            return Err((self, e));
        }
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

    /// This thread's magazine, those of exited threads, and both shared magazines back to the
    /// server (the magazines of other live threads keep their objects until those threads
    /// flush, or the cache is destroyed).
    pub fn flush(&self) -> Result<(), Error> {
        let Some(m) = &self.magazines else { return Ok(()) };
        #[cfg(feature = "std")]
        if self.threads.is_some() {
            self.stripe_flush(m, crate::threads::stripe())?;
        }
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
            self.server.ipc_retrying(|api| if zero { api.zalloc(self.id) } else { api.alloc(self.id) })?;
        if let (true, Some(ctor)) = (fresh, self.ctor) {
            construct_slab(self.server, &Geometry::of_layout(&self.layout), handle, ctor)?;
        }
        self.object(handle)
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

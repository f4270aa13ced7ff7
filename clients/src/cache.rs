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

use protocol::control::{CacheEntry, MagazineRole, NO_SLOT, NOT_KMALLOC, SLOTS_MAX};
use protocol::flags::{SLAB_DEBUG, SLAB_PANIC};
use protocol::{CacheId, CacheLayout, CacheName, ExchangeOp, Handle, PAGE_SIZE};
use spin::Mutex;

use crate::error::Error;
use crate::hardened::{ObjectCheck, Refusal};
use crate::server::Memserver;
use crate::shm::SlotView;
#[cfg(feature = "std")]
use crate::threads::ThreadMagazines;

#[cfg(feature = "std")]
#[allow(unsafe_code)]
mod stripes;
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
    slot: SlotView,
    /// Object-start-of-this-cache check (`None` if the server's cache table did not describe
    /// the cache: then only the double-free check runs).
    check: Option<ObjectCheck>,
    /// Whether freed objects carry a canary (caches without ctor or dtor: their freed objects'
    /// contents are nobody's).
    canary: bool,
}

impl Magazines {
    /// The magazines of `slot` for `cache`, if the slot is usable (below [`SLOTS_MAX`], inside
    /// the control region, a capacity).
    fn bind<T: Transport>(
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
        Some(Magazines { index: slot, capacity, cache, geometry, ctor, kmalloc: false, slot: view, check, canary })
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
        if self.canary {
            server.window().set_word(handle, 0);
        }
        Handle(handle)
    }

    /// The hardened free's checks ([`crate::hardened`]): `handle` is an object start of this
    /// cache's slabs, and not free already (its canary; for a ctor cache, not `top`, the
    /// object freed last). Returns the canary to write once the object is in a magazine.
    #[inline(always)]
    pub(crate) fn admit<T: Transport>(
        &self,
        server: &Memserver<T>,
        handle: u64,
        top: Option<u64>,
    ) -> Result<Option<u64>, Refusal> {
        if let Some(check) = &self.check {
            check.check(server.page_owners(), handle)?;
        }
        // Every cache's freed objects are checked for the canary (a constructed object never
        // carries one); only caches whose freed objects are nobody's get one written.
        let canary = server.canary().of(handle);
        match server.window().word(handle) {
            Some(word) if word == canary => return Err(Refusal::DoubleFree),
            Some(_) => {}
            None => return Err(Refusal::InvalidObject),
        }
        if !self.canary && top == Some(handle) {
            return Err(Refusal::DoubleFree);
        }
        Ok(self.canary.then_some(canary))
    }

    /// Marks a freed object (now in a magazine) with its canary.
    #[inline]
    pub(crate) fn mark_free<T: Transport>(server: &Memserver<T>, handle: u64, canary: Option<u64>) {
        if let Some(canary) = canary {
            server.window().set_word(handle, canary);
        }
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
        let top = if self.canary { None } else { self.top() };
        let canary = self.admit(server, handle.0, top).map_err(Error::from)?;
        pending.missed = false;
        self.put(server, pending, handle.0)?;
        Self::mark_free(server, handle.0, canary);
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
            server.ipc(|api| api.magazine_exchange(self.cache, self.index, op))?;
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
    /// Whether a trip to the shared layer missed (swapped or exchanged): the operation that
    /// made it counts as a miss, not a hit.
    pub(crate) missed: bool,
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
    threads: Option<std::boxed::Box<ThreadMagazines>>,
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
            threads: magazines.map(|_| std::boxed::Box::new(ThreadMagazines::new())),
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
    #[inline]
    pub fn alloc(&self) -> Result<NonNull<u8>, Error> {
        #[cfg(feature = "std")]
        if let Some(m) = &self.magazines
            && let Some(stripe) = self.stripe()
            && let Some(ptr) = self.stripe_pop(m, stripe)
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
        if let Some(stripe) = self.stripe() {
            return CacheGuard {
                cache: self,
                hold: Hold::Stripe(stripe),
                pending: Pending::default(),
                _thread: PhantomData,
            };
        }
        let lock = match &self.magazines {
            Some(m) => self.server.slot_lock(m.index),
            None => &self.ipc_lock,
        };
        CacheGuard {
            cache: self,
            hold: Hold::Locked(lock.lock()),
            pending: Pending { batched: true, ..Pending::default() },
            _thread: PhantomData,
        }
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
    #[inline]
    pub fn free(&self, ptr: NonNull<u8>) -> Result<(), Error> {
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
            self.server.ipc(|api| if zero { api.zalloc(self.id) } else { api.alloc(self.id) })?;
        if let (true, Some(ctor)) = (fresh, self.ctor) {
            construct_slab(self.server, &Geometry::of_layout(&self.layout), handle, ctor)?;
        }
        self.object(handle)
    }
}

/// One thread's run of operations on a [`Cache`] (from [`Cache::lock`]): `alloc` and `free`
/// on this thread's magazine of the cache without looking it up each time, or, where the cache
/// has none, under the cache's lock held for the guard's life. Not `Send`: it stands for the
/// thread that made it. Counters are published when it is dropped.
pub struct CacheGuard<'c, 'm, T: Transport> {
    cache: &'c Cache<'m, T>,
    hold: Hold<'c>,
    pending: Pending,
    _thread: PhantomData<*const ()>,
}

/// What a [`CacheGuard`] holds.
enum Hold<'c> {
    /// This thread's stripe of the cache's per-thread magazines.
    #[cfg(feature = "std")]
    Stripe(usize),
    /// The lock of the cache's slot (or its IPC lock).
    Locked(#[allow(dead_code)] spin::MutexGuard<'c, ()>),
}

impl<T: Transport> CacheGuard<'_, '_, T> {
    /// Corresponds to `kmem_cache_alloc()`.
    #[inline]
    pub fn alloc(&mut self) -> Result<NonNull<u8>, Error> {
        let cache = self.cache;
        let result = match (&cache.magazines, &self.hold) {
            #[cfg(feature = "std")]
            (Some(m), Hold::Stripe(stripe)) => match cache.stripe_pop(m, *stripe) {
                Some(ptr) => return Ok(ptr),
                None => cache.stripe_refill(m, *stripe),
            },
            (Some(m), _) => m.alloc(cache.server, &mut self.pending).and_then(|h| cache.object(h)),
            (None, _) => cache.ipc_alloc_locked(false),
        };
        cache.check_panic(result)
    }

    /// Corresponds to `kmem_cache_free()` (hardened as [`Cache::free`]).
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        let cache = self.cache;
        let Some(m) = &cache.magazines else { return cache.ipc_free(ptr) };
        let handle = cache.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        match &self.hold {
            #[cfg(feature = "std")]
            Hold::Stripe(stripe) => match cache.stripe_push(m, *stripe, handle.0) {
                Ok(true) => Ok(()),
                Ok(false) => cache.stripe_drain(m, *stripe, handle.0),
                Err(refusal) => Err(refusal.into()),
            },
            Hold::Locked(_) => m.free(cache.server, &mut self.pending, handle),
        }
    }
}

impl<T: Transport> Drop for CacheGuard<'_, '_, T> {
    fn drop(&mut self) {
        self.pending.publish(self.cache.server);
        #[cfg(feature = "std")]
        if let Hold::Stripe(stripe) = self.hold {
            self.cache.server.publish_stripe(stripe);
        }
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

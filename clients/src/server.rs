//! [`Memserver`]: one client's session with the server — the typed client over its
//! transport, the two shared mappings, the locks of the magazine slots, the kmalloc classes
//! and the library's counters.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use protocol::api::{CallError, Client};
use protocol::control::{CacheEntry, ControlHeader, ControlLayout, NOT_KMALLOC, SLOTS_MAX};
use protocol::{CacheId, ClientId, Handle, MessageBuffer, PROTOCOL_VERSION, Reply, Request};
use spin::Mutex;

use crate::cache::Magazines;
use crate::error::Error;
use crate::hardened::{Canary, CanaryCaches, session_key};
use crate::kmalloc::{KMALLOC_CLASSES, KmallocClass, ParkedRuns};
use crate::shm::{Control, PublishedCounters, Window};
use crate::transport::Transport;
use peer_memory::PeerMemory;

/// Counters of the magazine layer, kept by the client (the server cannot see hits).
///
/// The hit and miss counters live in the control-region header
/// ([`Control::published_counters`]), where the server can copy them into `Stats` for
/// `memctl`; incrementing them there costs the same atomic add as a private counter. The
/// fields here back them only if a region were too short for its header (never once
/// [`Memserver::new`] accepted it), and count the IPC round trips, which stay private.
#[derive(Debug, Default)]
pub struct Counters {
    /// Allocations served from a magazine without IPC (fallback, see above).
    pub alloc_hits: AtomicU64,
    /// Frees absorbed by a magazine without IPC (fallback).
    pub free_hits: AtomicU64,
    /// Allocations and frees that needed an IPC (fallback).
    pub misses: AtomicU64,
    /// IPC round trips made, of any kind.
    pub calls: AtomicU64,
    /// `kmalloc`s and `kfree`s served by a magazine without IPC (also counted in the hits
    /// above).
    pub kmalloc_hits: AtomicU64,
    /// `kmalloc`s and `kfree`s that needed an IPC (also counted in `misses`).
    pub kmalloc_misses: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub alloc_hits: u64,
    pub free_hits: u64,
    pub misses: u64,
    pub calls: u64,
    pub kmalloc_hits: u64,
    pub kmalloc_misses: u64,
}

impl CounterSnapshot {
    /// Fraction of allocations and frees served without IPC, in 0..=1.
    pub fn hit_rate(&self) -> f64 {
        let hits = self.alloc_hits + self.free_hits;
        let total = hits + self.misses;
        if total == 0 { 0.0 } else { hits as f64 / total as f64 }
    }

    /// Fraction of `kmalloc`s and `kfree`s served without IPC, in 0..=1.
    pub fn kmalloc_hit_rate(&self) -> f64 {
        let total = self.kmalloc_hits + self.kmalloc_misses;
        if total == 0 { 0.0 } else { self.kmalloc_hits as f64 / total as f64 }
    }
}

/// One client's session with the memory server.
pub struct Memserver<T: Transport> {
    api: Mutex<Client<T>>,
    window: Window,
    control: Control,
    layout: ControlLayout,
    client: ClientId,
    magazine_slots: u16,
    counters: Counters,
    /// One lock per magazine slot: whoever touches a slot's magazines (a cache's `alloc` and
    /// `free`, a `kmalloc`, a `kfree` of any object of that cache) holds it, also across the
    /// slot's exchange IPC.
    slot_locks: [Mutex<()>; SLOTS_MAX as usize],
    /// The kmalloc classes as the server set them up at `Hello` (from its cache table).
    kmalloc: [KmallocClass; KMALLOC_CLASSES],
    /// Freed large kmallocs kept for the next `kmalloc` of their page count.
    parked: ParkedRuns,
    /// The canaries of freed objects (the hardened free), keyed per session.
    canary: Canary,
    /// Which caches' freed objects carry canaries (by cache-table index).
    canary_caches: CanaryCaches,
    /// The server's page-owner table in the control region (the hardened free's lookup).
    page_owners: PeerMemory,
    /// Hits the thread magazines counted and have not yet added to the header.
    #[cfg(feature = "std")]
    stripe_counters: crate::threads::AllStripeCounters,
    /// The per-thread magazines of every kmalloc class, in one allocation: `kmalloc` finds a
    /// class's magazines at a byte offset its size-indexed table gives, not by loading a
    /// pointer (a table of pointers measured 4.8 against 3.9 ns a pair); `kfree` takes them
    /// from the class's entry of the front, beside its check (arithmetic on the class there
    /// measured no faster). Those of a class without magazines stay empty.
    #[cfg(feature = "std")]
    kmalloc_threads: std::boxed::Box<[crate::threads::ThreadMagazines; KMALLOC_CLASSES]>,
    /// What `kmalloc`'s and `kfree`'s fast paths need about every class.
    #[cfg(feature = "std")]
    kmalloc_front: crate::kmalloc::KmallocFront,
}

/// The `Hello` request for `name`, encoded (a runner sends it before it can map anything).
pub fn hello_request(name: &str, buf: &mut MessageBuffer) -> Result<usize, Error> {
    let client_name = protocol::client_name(name)?;
    Ok(protocol::encode_request(&Request::Hello { version: PROTOCOL_VERSION, client_name }, buf)?.len())
}

impl<T: Transport> Memserver<T> {
    /// A session whose `Hello` was answered with `hello` and whose window and control region
    /// are mapped. Checks the control-region header against the reply.
    pub fn new(transport: T, hello: &Reply, window: Window, control: Control) -> Result<Self, Error> {
        let &Reply::Hello(protocol::SessionInfo { client, window_size, magazine_slots, .. }) = hello else {
            return match hello {
                Reply::Error(e) => Err(Error::Server(*e)),
                _ => Err(Error::UnexpectedReply),
            };
        };
        if (window.len() as u64) < window_size {
            return Err(Error::NotInWindow);
        }
        let mut header = [0u8; protocol::control::HEADER_SIZE];
        if !control.read(0, &mut header) {
            return Err(Error::Server(protocol::Error::Malformed));
        }
        let header = <ControlHeader as zerocopy::FromBytes>::read_from_bytes(&header)
            .map_err(|_| Error::Server(protocol::Error::Malformed))?;
        header.check(control.len())?;
        if header.client != client || header.slots != magazine_slots || control.published_counters().is_none() {
            return Err(Error::Server(protocol::Error::Malformed));
        }
        let layout = header.layout();
        let canary = Canary::new(session_key(window.base().as_ptr() as usize));
        let page_owners = control.page_owner_table(&layout).ok_or(Error::Server(protocol::Error::Malformed))?;
        #[cfg(feature = "std")]
        let kmalloc_front = crate::kmalloc::KmallocFront::new(crate::cache::FastPath::new(
            &window,
            &page_owners,
            8,
            None,
            canary,
            true,
        ));
        let mut session = Memserver {
            api: Mutex::new(Client::new(transport)),
            window,
            control,
            layout,
            client,
            magazine_slots,
            counters: Counters::default(),
            slot_locks: [const { Mutex::new(()) }; SLOTS_MAX as usize],
            kmalloc: [KmallocClass::UNKNOWN; KMALLOC_CLASSES],
            parked: ParkedRuns::new(),
            canary,
            canary_caches: CanaryCaches::default(),
            page_owners,
            #[cfg(feature = "std")]
            stripe_counters: Default::default(),
            #[cfg(feature = "std")]
            kmalloc_threads: std::boxed::Box::new(core::array::from_fn(|_| crate::threads::ThreadMagazines::new())),
            #[cfg(feature = "std")]
            kmalloc_front,
        };
        for index in 0..layout.caches {
            let Some(entry) = session.control.cache_entry(&layout, index) else { continue };
            if entry.cache == 0 || entry.kmalloc_class == NOT_KMALLOC {
                continue;
            }
            let magazines = Magazines::of_entry(&session, index, &entry);
            let class = KmallocClass::of(&entry, magazines);
            let number = usize::from(entry.kmalloc_class);
            #[cfg(feature = "std")]
            if let (Some(m), Some(threads)) = (&class.magazines, session.kmalloc_threads.get(number)) {
                session.kmalloc_front.enable(number, &m.fast, threads);
            }
            if let Some(slot) = session.kmalloc.get_mut(number) {
                *slot = class;
            }
        }
        Ok(session)
    }

    /// One typed call through the session's [`Client`] (`|api| api.cache_info(id)`), with
    /// the session's lock held for its round trip, counted in [`CounterSnapshot::calls`].
    /// Refused for lack of memory (`QuotaExceeded`, `OutOfMemory`) while large kmallocs are
    /// parked ([`crate::kmalloc::large`]), it gives them back before it returns the refusal,
    /// so a caller that tries again finds their pages (the library's own allocations are made
    /// once more at once: [`Memserver::ipc_retrying`]).
    pub fn ipc<V>(&self, call: impl FnOnce(&mut Client<T>) -> Result<V, CallError>) -> Result<V, Error> {
        let result = self.ipc_once(call);
        if self.short_with_runs_parked(&result) {
            let _ = self.release_parked_runs();
        }
        result
    }

    /// [`Memserver::ipc`] for the library's allocations: refused for lack of memory while
    /// large kmallocs are parked, it gives them back and makes the call once more (a refused
    /// request changes nothing on the server), as Linux drains its per-CPU page lists before
    /// it gives up on an allocation.
    pub(crate) fn ipc_retrying<V>(
        &self,
        mut call: impl FnMut(&mut Client<T>) -> Result<V, CallError>,
    ) -> Result<V, Error> {
        let result = self.ipc_once(&mut call);
        if self.short_with_runs_parked(&result) {
            let _ = self.release_parked_runs();
            return self.ipc_once(call);
        }
        result
    }

    /// Whether `result` is a refusal for lack of memory while large kmallocs are parked.
    fn short_with_runs_parked<V>(&self, result: &Result<V, Error>) -> bool {
        matches!(result, Err(Error::Server(protocol::Error::QuotaExceeded | protocol::Error::OutOfMemory)))
            && self.parked.any()
    }

    /// [`Memserver::ipc`] without the retry.
    pub(crate) fn ipc_once<V>(&self, call: impl FnOnce(&mut Client<T>) -> Result<V, CallError>) -> Result<V, Error> {
        let result = call(&mut self.api.lock());
        if !matches!(result, Err(CallError::Transport(_) | CallError::Encode)) {
            self.counters.calls.fetch_add(1, Relaxed);
        }
        result.map_err(Error::from)
    }

    /// One request, one reply; `Reply::Error` becomes `Err(Error::Server)`.
    pub fn call(&self, request: &Request) -> Result<Reply, Error> {
        match self.ipc_retrying(|api| api.call(request))? {
            Reply::Error(e) => Err(Error::Server(e)),
            reply => Ok(reply),
        }
    }

    /// The id the server knows this client by.
    pub fn client_id(&self) -> ClientId {
        self.client
    }

    /// The window.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The control region.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Magazine slots of the control region.
    pub fn magazine_slots(&self) -> u16 {
        self.magazine_slots
    }

    /// Where the server's tables lie in the control region (from its header).
    pub fn control_layout(&self) -> &ControlLayout {
        &self.layout
    }

    /// The server's cache-table entry of cache slot `index` (what it says about one of this
    /// client's caches; `cache` 0 when the slot is empty).
    pub fn cache_entry(&self, index: u16) -> Option<CacheEntry> {
        self.control.cache_entry(&self.layout, index)
    }

    /// The lock of magazine slot `index` (every user of the slot's magazines holds it).
    #[inline]
    pub(crate) fn slot_lock(&self, index: u16) -> &Mutex<()> {
        // Magazines are only made for slots below SLOTS_MAX (`Magazines::of_entry`,
        // `Cache::create`), so the fallback is never taken.
        self.slot_locks.get(usize::from(index)).unwrap_or(&self.slot_locks[0])
    }

    /// The freed large kmallocs kept for reuse.
    pub(crate) fn parked_runs(&self) -> &ParkedRuns {
        &self.parked
    }

    /// The kmalloc class `class` (0: `kmalloc-8` … 12: `kmalloc-8k`).
    #[inline]
    pub(crate) fn kmalloc_class(&self, class: usize) -> Option<&KmallocClass> {
        self.kmalloc.get(class)
    }

    /// The per-thread magazines of kmalloc class `class` (those of a class without magazines
    /// stay empty).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn kmalloc_threads_of(&self, class: usize) -> Option<&crate::threads::ThreadMagazines> {
        self.kmalloc_threads.get(class)
    }

    /// The first of the per-class thread magazines (`kmalloc`'s fast path adds a class's
    /// byte offset).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn kmalloc_threads_base(&self) -> *const crate::threads::ThreadMagazines {
        self.kmalloc_threads.as_ptr()
    }

    /// What `kmalloc`'s and `kfree`'s fast paths need about every class.
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn kmalloc_front(&self) -> &crate::kmalloc::KmallocFront {
        &self.kmalloc_front
    }

    /// The page-owner table ([`crate::hardened`]).
    #[inline]
    pub(crate) fn page_owners(&self) -> &PeerMemory {
        &self.page_owners
    }

    /// The canary of freed objects ([`crate::hardened`]).
    #[inline]
    pub(crate) fn canary(&self) -> &Canary {
        &self.canary
    }

    /// Whether the cache at cache-table index `index` is one of this session's caches whose
    /// freed objects carry canaries.
    pub(crate) fn canary_cache(&self, index: u16) -> bool {
        self.canary_caches.get(index)
    }

    /// Records whether the cache at `index` (just created by this session) carries canaries.
    pub(crate) fn set_canary_cache(&self, index: u16, canary: bool) {
        self.canary_caches.set(index, canary);
    }

    /// Counts a hit of the thread magazine of `stripe` (the calling thread's).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn stripe_hit(&self, stripe: usize, alloc: bool, kmalloc: bool) {
        if let Some(counters) = self.stripe_counters.get(stripe) {
            counters.hit(alloc, kmalloc);
        }
    }

    /// Counts a hit of the thread magazine of `lease`'s stripe (the calling thread's, which
    /// owns its magazine: a fast path that got this far).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn lease_hit(&self, lease: crate::threads::LeaseWord, alloc: bool, kmalloc: bool) {
        self.stripe_counters.of(lease).hit(alloc, kmalloc);
    }

    /// Where `stripe` counts its hits.
    #[cfg(feature = "std")]
    pub(crate) fn stripe_counters(&self, stripe: usize) -> Option<&crate::threads::StripeCounters> {
        self.stripe_counters.get(stripe)
    }

    /// Adds the hits `stripe` (the calling thread's) counted to the control-region header.
    #[cfg(feature = "std")]
    pub(crate) fn publish_stripe(&self, stripe: usize) {
        let Some(counters) = self.stripe_counters.get(stripe) else { return };
        let (alloc, free, kmalloc) = counters.take();
        if kmalloc > 0 {
            self.counters.kmalloc_hits.fetch_add(kmalloc, Relaxed);
        }
        let published = self.raw_counters();
        if alloc > 0 {
            published.alloc_hits.fetch_add(alloc, Relaxed);
        }
        if free > 0 {
            published.free_hits.fetch_add(free, Relaxed);
        }
    }

    /// Hits every thread counted and has not yet published: `(alloc, free, kmalloc)`.
    fn pending_stripe_hits(&self) -> (u64, u64, u64) {
        #[cfg(feature = "std")]
        return self.stripe_counters.pending();
        #[cfg(not(feature = "std"))]
        (0, 0, 0)
    }

    /// Publishes the calling thread's pending hits (before counters are read).
    fn publish_own_hits(&self) {
        #[cfg(feature = "std")]
        if let Some(stripe) = crate::threads::stripe() {
            self.publish_stripe(stripe);
        }
    }

    /// The magazine counters: hits and misses as published in the control region, plus the
    /// hits other threads counted and have not published yet (the calling thread's are
    /// published first; the server's `Stats` sees the others at their next trip to the shared
    /// layer, `flush`, or the end of a guard).
    pub fn counters(&self) -> CounterSnapshot {
        self.publish_own_hits();
        let c = self.raw_counters();
        let (alloc_pending, free_pending, kmalloc_pending) = self.pending_stripe_hits();
        CounterSnapshot {
            alloc_hits: c.alloc_hits.load(Relaxed) + alloc_pending,
            free_hits: c.free_hits.load(Relaxed) + free_pending,
            misses: c.misses.load(Relaxed),
            calls: self.counters.calls.load(Relaxed),
            kmalloc_hits: self.counters.kmalloc_hits.load(Relaxed) + kmalloc_pending,
            kmalloc_misses: self.counters.kmalloc_misses.load(Relaxed),
        }
    }

    /// Counts one operation done without IPC, at once: an `alloc` (else a free) hit, also a
    /// `kmalloc` hit if `kmalloc`.
    pub(crate) fn count_hit(&self, alloc: bool, kmalloc: bool) {
        if kmalloc {
            self.counters.kmalloc_hits.fetch_add(1, Relaxed);
        }
        let published = self.raw_counters();
        if alloc { published.alloc_hits } else { published.free_hits }.fetch_add(1, Relaxed);
    }

    /// The hit and miss counters the fast path increments: those in the control-region
    /// header, so the server can report them.
    #[inline]
    pub(crate) fn raw_counters(&self) -> PublishedCounters<'_> {
        self.control.published_counters().unwrap_or(PublishedCounters {
            alloc_hits: &self.counters.alloc_hits,
            free_hits: &self.counters.free_hits,
            misses: &self.counters.misses,
        })
    }

    /// The library's private counters (the kmalloc ones).
    #[inline]
    pub(crate) fn private_counters(&self) -> &Counters {
        &self.counters
    }

    /// The server's statistics for this client. First, what the calling thread and threads
    /// that exited parked in their kmalloc magazines (free objects the server cannot see) goes
    /// to the shared magazines, which the server counts as `magazine_objects`, and the parked
    /// large kmallocs go back to the server, so its `client_pages` are what the program holds.
    pub fn stats(&self) -> Result<protocol::Stats, Error> {
        self.publish_own_hits();
        let _ = self.release_parked_runs();
        // A failure leaves those objects parked; the statistics are the server's all the same.
        #[cfg(feature = "std")]
        let _ = self.kmalloc_unpark();
        self.ipc(|api| api.stats())
    }

    /// The statistics of any client (`ClientStats`; another client's need introspection
    /// rights).
    pub fn client_stats(&self, client: ClientId) -> Result<protocol::Stats, Error> {
        self.ipc(|api| api.client_stats(client))
    }

    /// Every client with an open session, by id (`Clients`, all pages; needs introspection
    /// rights).
    pub fn for_each_client(&self, mut f: impl FnMut(&protocol::ClientEntry)) -> Result<(), Error> {
        for page in 0..=u16::MAX {
            let page = self.ipc(|api| api.clients(page))?;
            page.clients.iter().for_each(&mut f);
            if !page.more {
                break;
            }
        }
        Ok(())
    }

    /// One cache's geometry and counters.
    pub fn cache_info(&self, cache: CacheId) -> Result<protocol::CacheInfo, Error> {
        self.ipc(|api| api.cache_info(cache))
    }

    /// Every slabinfo row (this client's, or all clients' with introspection rights).
    pub fn for_each_slabinfo_row(
        &self,
        all_clients: bool,
        mut f: impl FnMut(&protocol::SlabInfoRow),
    ) -> Result<(), Error> {
        for page in 0..=u16::MAX {
            let page = self.ipc(|api| api.slab_info(page, all_clients))?;
            page.rows.iter().for_each(&mut f);
            if !page.more {
                break;
            }
        }
        Ok(())
    }

    /// Corresponds to writing `/sys/kernel/slab/<name>/validate` for cache `name` of client
    /// `client` (this client's own, or another's with introspection rights): every object
    /// checked, every corruption repaired and counted.
    pub fn validate(&self, client: ClientId, name: &str) -> Result<protocol::ValidationReport, Error> {
        let name = protocol::cache_name(name)?;
        self.ipc(|api| api.validate(client, name))
    }

    /// The `SLAB_STORE_USER` record of an object.
    pub fn object_owner(&self, ptr: NonNull<u8>) -> Result<(Option<protocol::Track>, Option<protocol::Track>), Error> {
        let handle = self.window.handle(ptr).ok_or(Error::NotInWindow)?;
        let owner = self.ipc(|api| api.object_owner(handle))?;
        Ok((owner.alloc, owner.free))
    }

    /// Ends the session: the server reclaims everything this client holds.
    pub fn goodbye(&self) -> Result<(), Error> {
        self.ipc(|api| api.goodbye())
    }

    /// The address of `handle` for an object of `size` bytes.
    pub(crate) fn object(&self, handle: Handle, size: usize) -> Result<NonNull<u8>, Error> {
        self.window.ptr(handle, size).ok_or(Error::NotInWindow)
    }
}

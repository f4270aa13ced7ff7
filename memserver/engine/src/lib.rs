//! memserver-engine: the `kmem_cache` slab engine of a microkernel memory server.
//!
//! # Design
//! The engine hands out objects in four steps: a global **frame pool** (an O(1) free stack
//! threaded through a frame descriptor table, one Linux `struct page`-like entry per frame)
//! backs pages of each client's **window** (a per-client page map plus occupancy bitmap; a
//! handle is a byte offset in it), a run of `2^order` window pages forms a **slab** of one
//! cache, and a slab is cut into **objects** at a fixed stride. The tables the runner provides
//! sized from the pool ([`EngineStorage`]) are a frame and a slab descriptor per frame, 44
//! bytes; the metadata that grows with use, the objects' bitmaps and STORE_USER records, lives
//! in server-private pool frames ([`Platform::private_frame`]) charged to the client whose
//! slabs it describes. Nothing is ever read back from memory a client can write except to check
//! poison and red-zone bytes. Every path is O(1): a handle resolves by index arithmetic (window
//! page → frame → slab → `(offset - start) / stride`), an allocation takes the first slab of the
//! partial list and the lowest free object through a two-level bitmap, slabs move between
//! empty/partial/full lists through intrusive index links, bitmap records are taken from and
//! given back to per-client free lists, and a new slab's room in the window is found from a
//! hint below which every page is occupied. Objects the dispatch's depot holds are *parked*
//! (a second bit), so a double free into the depot is found in O(1). No heap, no panics: every
//! table access is checked and every failure is a [`protocol::Error`] — the client's own, or
//! [`Error::Internal`] when the engine's metadata or a platform hook failed (never dropped: see
//! [`Platform`]). An allocation that finds no memory says why ([`Shortage`]), for the
//! dispatch's pressure policy. Caches without debug flags take a hot path that does the same
//! with less work per object.
//!
//! Files: [`storage`] (config and caller-provided tables), `platform` (the hooks and their
//! faults), `frame` (pool free stack, quarantine), `window` (per-client page maps), [`layout`]
//! (alignment, stride, slab order), `slab` (descriptors, lists), `bitmap` (object bitmaps in
//! private frames), `cache` (create/alloc/free/destroy/shrink), `plain` (the hot path of caches
//! without debug flags), `bulk` (magazine refill/drain, parked objects), `runs` (the hot
//! path's bulk park/unpark/free, a run of one slab at a time), `debug` (poison, red
//! zones, consistency checks), `track` (STORE_USER records in private frames), `kmalloc`,
//! `client` (attach, reclaim), `reclaim` (shortages, bounded shrink, reapable caches), `stats`
//! (info and slabinfo), `invariants` (the checker).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "testing")]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "testing")]
pub mod testing;

mod bitmap;
mod bulk;
mod cache;
mod client;
mod debug;
mod frame;
#[cfg(any(test, feature = "debug-invariants"))]
mod invariants;
mod kmalloc;
pub mod layout;
mod owners;
mod plain;
mod platform;
mod reclaim;
mod release;
mod runs;
mod slab;
mod stats;
pub mod storage;
mod track;
mod validate;
mod window;

use protocol::{CACHE_NAME_MAX, CacheId, ClientId, Error, Handle};

pub use debug::InvariantViolation;
pub use kmalloc::{KMALLOC_MAX, KMALLOC_NAMES, KMALLOC_SIZES, kmalloc_align, kmalloc_class};
pub use owners::PAGE_LOG;
use platform::FaultLog;
pub use platform::{Fault, Hook, Platform};
pub use reclaim::{NO_REAP_FLAGS, Released, Shortage, ShortageKind};
pub use release::ReleasePlan;
pub use storage::{CacheDesc, ClientDesc, EngineConfig, EngineStorage, FrameDesc, SlabDesc, StorageSizes};
use storage::{NIL, PAGE_NONE};

/// The result of an allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocated {
    /// The object.
    pub handle: Handle,
    /// Never constructed (its slab is new): the client runs the ctor on it.
    pub fresh: bool,
}

/// Everything about one cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    pub id: CacheId,
    pub name: heapless::String<CACHE_NAME_MAX>,
    /// Requested object size.
    pub size: u32,
    /// Effective object address alignment.
    pub align: u32,
    /// Bytes per object in the slab, debug metadata included.
    pub stride: u32,
    pub flags: u32,
    pub has_ctor: bool,
    /// The client runs a destructor: slabs leave only through the two-phase shrink.
    pub has_dtor: bool,
    pub order: u8,
    pub objects_per_slab: u32,
    pub pages_per_slab: u32,
    /// Private frames each slab takes for STORE_USER records (0 without `SLAB_STORE_USER`).
    pub tracking_frames_per_slab: u32,
    /// Allocated objects, the parked ones included.
    pub active_objs: u32,
    /// Allocated objects the server's magazine depot holds (see `cache_park_bulk`).
    pub parked_objs: u32,
    pub num_objs: u32,
    pub active_slabs: u32,
    pub num_slabs: u32,
    pub is_kmalloc: bool,
}

/// One STORE_USER record: who, and when (the engine's global operation sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track {
    pub client: ClientId,
    pub seq: u64,
}

/// Last allocation and last free of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerInfo {
    pub alloc: Option<Track>,
    pub free: Option<Track>,
}

/// The global frame pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    pub total_frames: u32,
    pub free_frames: u32,
    /// Frames whose platform release failed: out of use until the server restarts.
    pub quarantined_frames: u32,
}

/// One client's accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientStats {
    /// Every frame it holds, its tracking frames included.
    pub frames_used: u32,
    /// Private frames holding the STORE_USER records of its slabs.
    pub tracking_frames: u32,
    /// Private frames holding the object bitmaps of its slabs.
    pub bitmap_frames: u32,
    pub quota_frames: u32,
    pub window_pages: u32,
    pub caches: u16,
    /// Cache slots that used their last generation (never used again).
    pub retired_cache_slots: u16,
}

/// The error for engine metadata that contradicts itself: never expected (the invariant
/// checker proves it in tests); the operation is refused rather than panicking, and the
/// client is told it was the server's fault.
pub(crate) const BROKEN: Error = Error::Internal;

/// The slab engine of one memory server.
pub struct Engine<'a, P: Platform> {
    config: EngineConfig,
    st: EngineStorage<'a>,
    platform: P,
    free_frame_head: u32,
    free_frames: u32,
    free_slab_head: u32,
    free_slabs: u32,
    /// Frames taken out of use because their release failed.
    quarantined_frames: u32,
    /// Why the latest allocation failed for lack of memory, until taken.
    shortage: Option<Shortage>,
    /// Platform failures so far.
    fault_log: FaultLog,
    /// Global operation sequence number (STORE_USER timestamps), starts at 1.
    seq: u64,
    /// Window pages whose owner changed since the dispatch last drained the log.
    page_log: owners::PageLog,
}

impl<'a, P: Platform> Engine<'a, P> {
    /// Initialise the engine in `storage` (every slice at least [`EngineStorage::required`]).
    pub fn new(config: EngineConfig, storage: EngineStorage<'a>, platform: P) -> Result<Self, Error> {
        let sizes = EngineStorage::required(&config).ok_or(Error::InvalidArgument)?;
        if !storage.fits(&sizes)
            || config.pool_frames >= storage::PAGE_FREED_LARGE
            || config.max_tracked_slabs == NIL
            || usize::from(config.max_caches_per_client) < storage::KMALLOC_CLASSES
            || config.max_window_pages == 0
            || u64::from(config.max_window_pages) * protocol::PAGE_SIZE as u64 > u64::from(u32::MAX) << 12
        {
            return Err(Error::InvalidArgument);
        }
        let mut e = Engine {
            config,
            st: storage,
            platform,
            free_frame_head: NIL,
            free_frames: 0,
            free_slab_head: NIL,
            free_slabs: 0,
            quarantined_frames: 0,
            shortage: None,
            fault_log: FaultLog::default(),
            seq: 1,
            page_log: owners::PageLog::EMPTY,
        };
        for f in e.st.frames.iter_mut() {
            *f = FrameDesc::EMPTY;
        }
        for f in (0..config.pool_frames).rev() {
            e.frame_push(f)?;
        }
        for s in e.st.slabs.iter_mut() {
            *s = SlabDesc::EMPTY;
        }
        for s in (0..config.max_tracked_slabs).rev() {
            e.slab_desc_push(s)?;
        }
        e.st.clients.fill(ClientDesc::EMPTY);
        e.st.caches.fill(CacheDesc::EMPTY);
        e.st.page_map.fill(PAGE_NONE);
        e.st.window_bits.fill(0);
        Ok(e)
    }

    /// The platform hooks.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The platform hooks, mutably (tests use it to scribble on object memory).
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    /// Platform failures recorded so far (see [`Platform`]); the dispatch logs each.
    pub fn faults(&self) -> u64 {
        self.fault_log.count.get()
    }

    /// The latest platform failure, if any.
    pub fn last_fault(&self) -> Option<Fault> {
        self.fault_log.last.get()
    }

    /// Record that a platform hook failed; returns the error the operation reports.
    pub(crate) fn hook_failed(&self, hook: Hook, client: ClientId, error: Error) -> Error {
        self.fault_log.record(hook, client, error)
    }

    /// Why the latest allocation failed for lack of memory (`QuotaExceeded`, `OutOfMemory`),
    /// if one did since the last call; clears it.
    pub fn take_shortage(&mut self) -> Option<Shortage> {
        self.shortage.take()
    }

    /// Record a shortage of `client`; returns the error the allocation fails with.
    pub(crate) fn short(&mut self, client: ClientId, kind: ShortageKind, needed: u64) -> Error {
        let needed = u32::try_from(needed).unwrap_or(u32::MAX);
        self.shortage = Some(Shortage { client, kind, needed });
        kind.error()
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    // ---- checked table access (indices come from private metadata or are range-checked) ----

    #[inline]
    pub(crate) fn frame(&self, f: u32) -> Result<&FrameDesc, Error> {
        self.st.frames.get(f as usize).ok_or(BROKEN)
    }

    #[inline]
    pub(crate) fn frame_mut(&mut self, f: u32) -> Result<&mut FrameDesc, Error> {
        self.st.frames.get_mut(f as usize).ok_or(BROKEN)
    }

    #[inline]
    pub(crate) fn slab(&self, s: u32) -> Result<&SlabDesc, Error> {
        self.st.slabs.get(s as usize).ok_or(BROKEN)
    }

    #[inline]
    pub(crate) fn slab_mut(&mut self, s: u32) -> Result<&mut SlabDesc, Error> {
        self.st.slabs.get_mut(s as usize).ok_or(BROKEN)
    }

    #[inline]
    pub(crate) fn cache(&self, gi: u32) -> Result<&CacheDesc, Error> {
        self.st.caches.get(gi as usize).ok_or(BROKEN)
    }

    #[inline]
    pub(crate) fn cache_mut(&mut self, gi: u32) -> Result<&mut CacheDesc, Error> {
        self.st.caches.get_mut(gi as usize).ok_or(BROKEN)
    }

    /// An attached client, else `InvalidArgument`.
    #[inline]
    pub(crate) fn client(&self, c: ClientId) -> Result<&ClientDesc, Error> {
        match self.st.clients.get(usize::from(c)) {
            Some(d) if d.attached && c < self.config.max_clients => Ok(d),
            _ => Err(Error::InvalidArgument),
        }
    }

    #[inline]
    pub(crate) fn client_mut(&mut self, c: ClientId) -> Result<&mut ClientDesc, Error> {
        let max = self.config.max_clients;
        match self.st.clients.get_mut(usize::from(c)) {
            Some(d) if d.attached && c < max => Ok(d),
            _ => Err(Error::InvalidArgument),
        }
    }

    /// Global slot of a client's cache slot.
    #[inline]
    pub(crate) fn cache_slot(&self, client: ClientId, slot: u16) -> u32 {
        u32::from(client) * u32::from(self.config.max_caches_per_client) + u32::from(slot)
    }

    /// Bits of a `CacheId` that name the slot (just enough for `max_caches_per_client`); the
    /// rest name the slot's generation.
    #[inline]
    fn cache_slot_bits(&self) -> u32 {
        u32::BITS - u32::from(self.config.max_caches_per_client.saturating_sub(1)).leading_zeros()
    }

    /// The last generation a cache slot can have: after it the slot is retired for good, so a
    /// `CacheId` never names a second cache. With 64 caches per client a slot lasts 2^26
    /// create/destroy cycles, with 1,024 caches 2^22.
    pub fn cache_generation_max(&self) -> u32 {
        u32::MAX >> self.cache_slot_bits()
    }

    /// `Ok` if `cache` is a live cache of `client`, else the error a request naming it gets
    /// (`NoSuchCache`; an unknown client's own error): the check without building a
    /// [`CacheInfo`].
    #[inline]
    pub fn cache_check(&self, client: ClientId, cache: CacheId) -> Result<(), Error> {
        self.cache_lookup(client, cache).map(|_| ())
    }

    /// The live cache `id` of `client` (its global slot), else `NoSuchCache`.
    #[inline]
    pub(crate) fn cache_lookup(&self, client: ClientId, id: CacheId) -> Result<u32, Error> {
        self.client(client)?;
        let bits = self.cache_slot_bits();
        let slot = id.0 & !(u32::MAX << bits);
        let generation = id.0 >> bits;
        let slot = u16::try_from(slot).map_err(|_| Error::NoSuchCache)?;
        if slot >= self.config.max_caches_per_client {
            return Err(Error::NoSuchCache);
        }
        let gi = self.cache_slot(client, slot);
        match self.st.caches.get(gi as usize) {
            Some(c) if c.live && c.generation == generation => Ok(gi),
            _ => Err(Error::NoSuchCache),
        }
    }

    /// The public id of a global cache slot: its generation above its slot.
    pub(crate) fn cache_id(&self, gi: u32) -> Result<CacheId, Error> {
        let c = self.cache(gi)?;
        let slot = gi % u32::from(self.config.max_caches_per_client);
        let generation = c.generation.checked_shl(self.cache_slot_bits()).ok_or(BROKEN)?;
        Ok(CacheId(generation | slot))
    }

    /// The client owning global cache slot `gi`.
    #[inline]
    pub(crate) fn cache_client(&self, gi: u32) -> ClientId {
        (gi / u32::from(self.config.max_caches_per_client)) as ClientId
    }

    #[inline]
    pub(crate) fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq = self.seq.saturating_add(1);
        s
    }
}

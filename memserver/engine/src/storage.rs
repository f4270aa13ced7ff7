//! Engine configuration and the caller-provided storage every private table lives in.
//!
//! The engine never allocates: a runner asks [`EngineStorage::required`] how long each slice
//! must be, provides them (the host from `Vec`s, seL4 from statics built with the `EMPTY`
//! constants) and hands them to [`Engine::new`](super::Engine::new), which initialises them.

use heapless::String;
use protocol::{CACHE_NAME_MAX, ClientId};

/// "No entry" in every index link (lists, free stacks, slab references).
pub(crate) const NIL: u32 = u32::MAX;
/// Page-map value: the window page is not mapped.
pub(crate) const PAGE_NONE: u32 = u32::MAX;
/// Page-map value: unmapped, and it was the first page of a large kmalloc that was freed
/// (lets a second `kfree` of it report `DoubleFree` until the page is reused).
pub(crate) const PAGE_FREED_LARGE: u32 = u32::MAX - 1;
/// Most bitmap words one slab needs (one bit per object, in each of its two bitmaps).
pub const BITMAP_WORDS: usize = 8;
/// Most objects one slab can hold (a bitmap has at most this many bits).
pub const MAX_OBJS_PER_SLAB: u32 = (BITMAP_WORDS * 64) as u32;
/// Number of kmalloc size classes (`kmalloc-8` … `kmalloc-8k`).
pub const KMALLOC_CLASSES: usize = 13;

/// Fixed capacities of one engine instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Frames (pages) in the physical pool.
    pub pool_frames: u32,
    /// Clients that may be attached; a `ClientId` must be below this.
    pub max_clients: u16,
    /// Caches per client, including the 13 kmalloc caches.
    pub max_caches_per_client: u16,
    /// Largest window a client may be attached with, in pages.
    pub max_window_pages: u32,
    /// Slab descriptors (slabs alive at once, all clients); `pool_frames` never runs out first.
    pub max_tracked_slabs: u32,
}

/// Bytes of the server's own tables for one pool frame at most: its frame descriptor and one
/// slab descriptor (object bitmaps and STORE_USER records are in pool frames charged to the
/// client whose slabs they describe). Linux's `struct page` is 64 bytes.
pub const TABLE_BYTES_PER_POOL_FRAME: usize = core::mem::size_of::<FrameDesc>() + core::mem::size_of::<SlabDesc>();

impl EngineConfig {
    /// A configuration with room for 64 caches per client and a slab descriptor per pool frame.
    /// (STORE_USER records need no table: they live in pool frames charged to the client.)
    pub const fn new(pool_frames: u32, max_clients: u16, max_window_pages: u32) -> Self {
        EngineConfig {
            pool_frames,
            max_clients,
            max_caches_per_client: 64,
            max_window_pages,
            max_tracked_slabs: pool_frames,
        }
    }

    pub(crate) fn window_words(&self) -> usize {
        (self.max_window_pages as usize).div_ceil(64)
    }
}

/// The length each [`EngineStorage`] slice must have at least.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageSizes {
    pub frames: usize,
    pub slabs: usize,
    pub clients: usize,
    pub caches: usize,
    pub page_map: usize,
    pub window_bits: usize,
}

impl StorageSizes {
    /// Bytes of server-private memory these tables take (saturating).
    pub fn bytes(&self) -> usize {
        use core::mem::size_of;
        [
            (self.frames, size_of::<FrameDesc>()),
            (self.slabs, size_of::<SlabDesc>()),
            (self.clients, size_of::<ClientDesc>()),
            (self.caches, size_of::<CacheDesc>()),
            (self.page_map, size_of::<u32>()),
            (self.window_bits, size_of::<u64>()),
        ]
        .iter()
        .fold(0usize, |sum, &(n, size)| sum.saturating_add(n.saturating_mul(size)))
    }
}

/// Frame kinds.
pub(crate) const FRAME_FREE: u8 = 0;
pub(crate) const FRAME_SLAB: u8 = 1;
pub(crate) const FRAME_LARGE_HEAD: u8 = 2;
pub(crate) const FRAME_LARGE_TAIL: u8 = 3;
/// Its platform release failed: out of use for good (see `Platform`).
pub(crate) const FRAME_QUARANTINED: u8 = 4;
/// Server-private: STORE_USER records of one slab (`page`: the slab descriptor, `link`: the
/// next frame of the slab's records or `NIL`), charged to `client`.
pub(crate) const FRAME_TRACK: u8 = 5;
/// Server-private: object bitmaps of slabs of `client` whose bitmaps have `page` words each
/// (`link`: the next frame of the client's list of such frames with a free record, or `NIL`),
/// charged to `client`. See `bitmap`.
pub(crate) const FRAME_BITMAP: u8 = 6;

/// One pool frame, Linux `struct page` style: who holds it and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDesc {
    pub(crate) kind: u8,
    pub(crate) client: ClientId,
    /// Window page it backs (when not free).
    pub(crate) page: u32,
    /// Free: next free frame. Slab: slab descriptor. Large head: page count. Large tail: head page.
    pub(crate) link: u32,
}

impl FrameDesc {
    /// An unused entry (for static initialisers).
    pub const EMPTY: Self = FrameDesc { kind: FRAME_FREE, client: 0, page: 0, link: NIL };
}

impl Default for FrameDesc {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Slab list tags.
pub(crate) const LIST_EMPTY: u8 = 0;
pub(crate) const LIST_PARTIAL: u8 = 1;
pub(crate) const LIST_FULL: u8 = 2;
/// Empty slabs a two-phase shrink named to the client (`ShrinkBegin`): out of use until the
/// client's `ShrinkCommit` releases them.
pub(crate) const LIST_RELEASING: u8 = 3;
pub(crate) const LIST_NONE: u8 = 4;
/// Number of slab lists a cache has.
pub(crate) const LISTS: usize = 4;

/// One slab: its cache, window place, object state summary and list links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabDesc {
    /// Global cache slot, `NIL` while the descriptor is free.
    pub(crate) cache: u32,
    pub(crate) first_page: u32,
    pub(crate) prev: u32,
    /// List link; also the free-descriptor stack link.
    pub(crate) next: u32,
    /// First frame of the STORE_USER records (a chain through the frame links), or `NIL`.
    pub(crate) track_frame: u32,
    /// The private frame holding the slab's object bitmaps (see `bitmap`).
    pub(crate) bitmap_frame: u32,
    pub(crate) inuse: u16,
    /// The record in `bitmap_frame` (its index).
    pub(crate) bitmap_record: u8,
    /// Objects below this index have been handed out at least once (are constructed).
    pub(crate) constructed: u16,
    pub(crate) order: u8,
    pub(crate) list: u8,
    /// Bit `w` set: bitmap word `w` has a free object.
    pub(crate) summary: u8,
}

impl SlabDesc {
    /// An unused entry (for static initialisers).
    pub const EMPTY: Self = SlabDesc {
        cache: NIL,
        first_page: 0,
        prev: NIL,
        next: NIL,
        track_frame: NIL,
        bitmap_frame: NIL,
        inuse: 0,
        bitmap_record: 0,
        constructed: 0,
        order: 0,
        list: LIST_NONE,
        summary: 0,
    };
}

impl Default for SlabDesc {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// One client: window size, quota and accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientDesc {
    pub(crate) attached: bool,
    pub(crate) window_pages: u32,
    pub(crate) quota_frames: u32,
    /// Every frame the client holds: window pages and its private tracking frames.
    pub(crate) frames_used: u32,
    /// Private frames holding the STORE_USER records of its slabs (part of `frames_used`).
    pub(crate) tracking_frames: u32,
    /// Private frames holding the object bitmaps of its slabs (part of `frames_used`).
    pub(crate) bitmap_frames: u32,
    /// Per bitmap size (`w` + 1 words): the first of its bitmap frames with a free record
    /// (a list through their frame links), or `NIL`.
    pub(crate) bitmap_free: [u32; BITMAP_WORDS],
    pub(crate) caches: u16,
    /// Every window page below it is occupied (where a search for room starts).
    pub(crate) window_hint: u32,
    /// Slot of each kmalloc cache.
    pub(crate) kmalloc: [u16; KMALLOC_CLASSES],
    /// Debug flags of each kmalloc cache (the client's `slub_debug` setting), kept so a
    /// reclaim creates them alike.
    pub(crate) kmalloc_flags: [u32; KMALLOC_CLASSES],
}

impl ClientDesc {
    /// An unused entry (for static initialisers).
    pub const EMPTY: Self = ClientDesc {
        attached: false,
        window_pages: 0,
        quota_frames: 0,
        frames_used: 0,
        tracking_frames: 0,
        bitmap_frames: 0,
        bitmap_free: [NIL; BITMAP_WORDS],
        caches: 0,
        window_hint: 0,
        kmalloc: [0; KMALLOC_CLASSES],
        kmalloc_flags: [0; KMALLOC_CLASSES],
    };
}

impl Default for ClientDesc {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// One cache (`struct kmem_cache`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheDesc {
    pub(crate) live: bool,
    pub(crate) is_kmalloc: bool,
    pub(crate) has_ctor: bool,
    /// The client runs a destructor on the objects of a slab before it leaves the cache: only
    /// the two-phase shrink releases its slabs, and memory pressure never does.
    pub(crate) has_dtor: bool,
    /// Token of the pending two-phase shrink (its slabs on `LIST_RELEASING`), 0 when none.
    pub(crate) release_token: u32,
    /// Memory pressure must not reap it (see `reclaim::NO_REAP_FLAGS`; a cache with a dtor
    /// never either).
    pub(crate) no_reap: bool,
    /// Bumped whenever the slot is freed, so stale `CacheId`s are rejected (1 at first, never 0).
    pub(crate) generation: u32,
    /// The slot used its last generation: never used again (`Engine::cache_generation_max`).
    pub(crate) retired: bool,
    pub(crate) name: String<CACHE_NAME_MAX>,
    pub(crate) size: u32,
    pub(crate) align: u32,
    pub(crate) stride: u32,
    /// Offset of the object inside its stride (the left red zone).
    pub(crate) obj_offset: u32,
    pub(crate) flags: u32,
    pub(crate) order: u8,
    pub(crate) objs: u16,
    /// List heads, indexed by `LIST_EMPTY`, `LIST_PARTIAL`, `LIST_FULL`, `LIST_RELEASING`.
    pub(crate) heads: [u32; LISTS],
    pub(crate) counts: [u32; LISTS],
    pub(crate) active_objs: u32,
    /// Objects held by the server's magazine depot (allocated, not with the client).
    pub(crate) parked_objs: u32,
}

impl CacheDesc {
    /// An unused entry (for static initialisers).
    pub const EMPTY: Self = CacheDesc {
        live: false,
        is_kmalloc: false,
        has_ctor: false,
        has_dtor: false,
        release_token: 0,
        no_reap: false,
        generation: 1,
        retired: false,
        name: String::new(),
        size: 0,
        align: 0,
        stride: 0,
        obj_offset: 0,
        flags: 0,
        order: 0,
        objs: 0,
        heads: [NIL; LISTS],
        counts: [0; LISTS],
        active_objs: 0,
        parked_objs: 0,
    };
}

impl Default for CacheDesc {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Every table of the engine, in memory the caller provides (server-private memory).
pub struct EngineStorage<'a> {
    /// One descriptor per pool frame.
    pub frames: &'a mut [FrameDesc],
    /// Slab descriptors (`max_tracked_slabs`).
    pub slabs: &'a mut [SlabDesc],
    /// One per client.
    pub clients: &'a mut [ClientDesc],
    /// `max_caches_per_client` per client.
    pub caches: &'a mut [CacheDesc],
    /// Window page → pool frame, `max_window_pages` per client.
    pub page_map: &'a mut [u32],
    /// Window page occupancy bits, `ceil(max_window_pages / 64)` words per client.
    pub window_bits: &'a mut [u64],
}

impl EngineStorage<'_> {
    /// How long each slice must be for `config` (`None` if a size overflows `usize`).
    pub fn required(config: &EngineConfig) -> Option<StorageSizes> {
        let clients = usize::from(config.max_clients);
        let slabs = config.max_tracked_slabs as usize;
        Some(StorageSizes {
            frames: config.pool_frames as usize,
            slabs,
            clients,
            caches: clients.checked_mul(usize::from(config.max_caches_per_client))?,
            page_map: clients.checked_mul(config.max_window_pages as usize)?,
            window_bits: clients.checked_mul(config.window_words())?,
        })
    }

    /// Tables for `config` from the global allocator, zeroed and never freed: for a runner that
    /// builds one engine for its whole life (the host runner, the seL4 memserver task).
    /// `None` if a size overflows `usize`.
    #[cfg(feature = "alloc")]
    pub fn leak(config: &EngineConfig) -> Option<EngineStorage<'static>> {
        fn leak<T: Clone>(value: T, len: usize) -> &'static mut [T] {
            alloc::boxed::Box::leak(alloc::vec![value; len].into_boxed_slice())
        }
        let s = Self::required(config)?;
        Some(EngineStorage {
            frames: leak(FrameDesc::EMPTY, s.frames),
            slabs: leak(SlabDesc::EMPTY, s.slabs),
            clients: leak(ClientDesc::EMPTY, s.clients),
            caches: leak(CacheDesc::EMPTY, s.caches),
            page_map: leak(0u32, s.page_map),
            window_bits: leak(0u64, s.window_bits),
        })
    }

    pub(crate) fn fits(&self, s: &StorageSizes) -> bool {
        self.frames.len() >= s.frames
            && self.slabs.len() >= s.slabs
            && self.clients.len() >= s.clients
            && self.caches.len() >= s.caches
            && self.page_map.len() >= s.page_map
            && self.window_bits.len() >= s.window_bits
    }
}

//! What the server answers: the [`Reply`] enum and the structs it carries.
//!
//! Variant order is wire format (postcard encodes the variant index): new variants go at the
//! end, and any change needs a `PROTOCOL_VERSION` bump and a new golden file.

use serde::{Deserialize, Serialize};

use crate::request::{CacheName, ClientName};
use crate::wire_size::{ENUM_TAG, WireSize, max_of};
use crate::{CacheId, ClientId, Corruption, Error, Handle, MAX_MESSAGE_BYTES, SlabInfoRow};

/// How the server laid out a cache's objects; fixed for the cache's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayout {
    /// Usable bytes of each object (the `size` asked for).
    pub object_size: u32,
    /// Distance in bytes from one object to the next in a slab (object size plus debug
    /// metadata, rounded up to the alignment); slabinfo's `objsize`.
    pub stride: u32,
    /// Alignment of every object address, in bytes (a power of two, at least 8).
    pub align: u32,
    /// Objects in one slab.
    pub objects_per_slab: u32,
    /// Pages in one slab.
    pub pages_per_slab: u32,
}

/// Everything about one cache, for `Reply::CacheInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// The cache.
    pub cache: CacheId,
    /// Its name.
    pub name: CacheName,
    /// Its `flags::SLAB_*` bits.
    pub flags: u32,
    /// Whether it was created with a ctor.
    pub ctor: bool,
    /// Its object layout.
    pub layout: CacheLayout,
    /// Whether it is a debug cache (bypasses magazines).
    pub debug: bool,
    /// The control-region slot of its magazines (`None` for debug caches).
    pub slot: Option<u16>,
    /// Handles per magazine (0 for debug caches).
    pub magazine_capacity: u16,
    /// Objects allocated to the client, including those sitting in its magazines.
    pub active_objs: u32,
    /// Objects in all slabs.
    pub num_objs: u32,
    /// Slabs with at least one allocated object.
    pub active_slabs: u32,
    /// All slabs.
    pub num_slabs: u32,
    /// Of `active_objs`, how many sit in the client's magazines.
    pub magazine_objs: u32,
    /// Whether it was created with a dtor (since version 3).
    pub dtor: bool,
}

/// One `SLAB_STORE_USER` record: who did the operation, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The client that allocated or freed the object.
    pub client: ClientId,
    /// The server's operation counter at that moment (increases by one per request, across
    /// all clients), so records can be ordered.
    pub seq: u64,
}

/// The frame pool and one client's share of it, for `Reply::Stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Pages in the server's frame pool.
    pub pool_pages: u32,
    /// Pages of the pool not held by any client.
    pub pool_free_pages: u32,
    /// The client these counters belong to.
    pub client: ClientId,
    /// Pages this client's slabs hold.
    pub client_pages: u32,
    /// This client's frame quota, in pages.
    pub quota_pages: u32,
    /// Caches the client has (its `kmalloc-<n>` caches included, once created).
    pub caches: u32,
    /// Objects allocated to the client, including those in its magazines.
    pub live_objects: u64,
    /// Of `live_objects`, how many sit in its magazines.
    pub magazine_objects: u64,
    /// Requests the client has sent (every IPC, `Hello` included).
    pub requests: u64,
    /// Objects handed out by `Alloc`, `Zalloc` and `Kmalloc`.
    pub allocs: u64,
    /// Objects taken back by `Free` and `Kfree`.
    pub frees: u64,
    /// `MagazineExchange` requests with `Refill`.
    pub refills: u64,
    /// `MagazineExchange` requests with `Drain`.
    pub drains: u64,
    /// `MagazineExchange` requests with `Flush`.
    pub flushes: u64,
    /// Objects written into magazines by refills.
    pub objects_refilled: u64,
    /// Objects taken back from magazines by drains and flushes.
    pub objects_drained: u64,
    /// Requests answered with `Reply::Error`.
    pub errors: u64,
    /// Allocations the client library served from a magazine without IPC. Copied from the
    /// client's control-region header: written by the client, untrusted, informational only.
    pub alloc_hits: u64,
    /// Frees the client library absorbed into a magazine without IPC (client-written, as
    /// `alloc_hits`).
    pub free_hits: u64,
    /// Allocations and frees the client library could not serve from a magazine: each cost
    /// an IPC (an exchange, or the cache has no magazines). Client-written, as `alloc_hits`.
    pub magazine_misses: u64,
    /// Window pages the server granted the client (slabs and large kmallocs), as the Linux
    /// runner's grant bitmap counts them. 0 on seL4, where no audit is needed (a page the
    /// client was not granted is not mapped). Since version 3.
    pub granted_pages: u32,
    /// Window pages holding memory now (the memfd's allocated blocks, Linux runner). At most
    /// `granted_pages` plus the audit's slack once the client's window has been audited. 0 on
    /// seL4. Since version 3.
    pub resident_pages: u32,
    /// Audits that found the client keeping more pages resident than it was granted plus the
    /// slack (each time the ungranted pages were punched out), since it connected. 0 on seL4.
    /// Since version 3.
    pub grant_violations: u32,
    /// Of `client_pages`, the pages of its `SLAB_RECLAIM_ACCOUNT` caches (Linux's
    /// `SReclaimable`). Since version 3.
    pub reclaimable_pages: u32,
}

/// One client with an open session, for `Reply::Clients`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEntry {
    /// Its id (its position in `system.toml`, or its badge).
    pub client: ClientId,
    /// Its name in `system.toml`.
    pub name: ClientName,
}

/// Rows of one `Reply::SlabInfo` page: as many as fit in [`MAX_MESSAGE_BYTES`].
pub const SLABINFO_ROWS_PER_PAGE: usize = (MAX_MESSAGE_BYTES - SLABINFO_REPLY_OVERHEAD) / SlabInfoRow::MAX_ENCODED;

/// Bytes of a `Reply::SlabInfo` besides its rows: tag, page, more, row count (one byte, as
/// a page has fewer than 128 rows).
const SLABINFO_REPLY_OVERHEAD: usize =
    ENUM_TAG + u16::MAX_ENCODED + bool::MAX_ENCODED + crate::wire_size::length_prefix(127);

const _: () = assert!(SLABINFO_ROWS_PER_PAGE > 0 && SLABINFO_ROWS_PER_PAGE < 128);

/// The rows of one slabinfo page.
pub type SlabInfoRows = heapless::Vec<SlabInfoRow, SLABINFO_ROWS_PER_PAGE>;

/// Entries of one `Reply::Clients` page: as many as fit in [`MAX_MESSAGE_BYTES`].
pub const CLIENTS_PER_PAGE: usize = (MAX_MESSAGE_BYTES - CLIENTS_REPLY_OVERHEAD) / ClientEntry::MAX_ENCODED;

/// Bytes of a `Reply::Clients` besides its entries: tag, page, more, entry count.
const CLIENTS_REPLY_OVERHEAD: usize =
    ENUM_TAG + u16::MAX_ENCODED + bool::MAX_ENCODED + crate::wire_size::length_prefix(127);

const _: () = assert!(CLIENTS_PER_PAGE > 0 && CLIENTS_PER_PAGE < 128);

/// The entries of one clients page.
pub type ClientList = heapless::Vec<ClientEntry, CLIENTS_PER_PAGE>;

/// What `Hello` tells the client about its session (`Reply::Hello`). The host runner passes
/// the window and the control region as file descriptors alongside this reply; on seL4 they
/// are mapped before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The id the server knows the client by.
    pub client: ClientId,
    /// Bytes of the client's window (handles are offsets into it).
    pub window_size: u64,
    /// Bytes of the control region (a multiple of `PAGE_SIZE`).
    pub control_size: u32,
    /// Magazine slots in the control region.
    pub magazine_slots: u16,
    /// The largest magazine capacity of any slot (at most `MAGAZINE_MAX`).
    pub magazine_capacity: u16,
}

/// A cache was created (`Reply::Created`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// Its id.
    pub cache: CacheId,
    /// Its object layout.
    pub layout: CacheLayout,
    /// A debug cache: every alloc and free must be an IPC (no magazines).
    pub debug: bool,
    /// The control-region slot for its magazines; `None` for debug caches.
    pub slot: Option<u16>,
    /// Handles per magazine of that slot (0 for debug caches).
    pub magazine_capacity: u16,
}

/// An object (`Reply::Object`, from `Alloc`, `Zalloc`, `Kmalloc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// The object.
    pub handle: Handle,
    /// Never handed out since its slab was created: the client runs its ctor on it.
    pub fresh: bool,
}

/// A shrink finished (`Reply::Shrunk`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shrunk {
    /// Pages returned to the frame pool.
    pub pages: u32,
}

/// A magazine exchange finished (`Reply::Exchanged`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchanged {
    /// The loaded magazine's count now (also written into the control region).
    pub count: u16,
    /// Bit `i` set: handle `i` of the loaded magazine is fresh (run the ctor).
    pub fresh_mask: u64,
}

/// One page of slabinfo rows (`Reply::SlabInfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabInfoPage {
    /// The page asked for.
    pub page: u16,
    /// Whether a later page has rows.
    pub more: bool,
    /// The rows, in cache creation order (by client, then cache, for `all_clients`).
    pub rows: SlabInfoRows,
}

/// The `SLAB_STORE_USER` record of an object (`Reply::Owner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The last allocation (`None`: never allocated since its slab was created).
    pub alloc: Option<Track>,
    /// The last free (`None`: never freed).
    pub free: Option<Track>,
}

/// One page of the clients with an open session (`Reply::Clients`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientsPage {
    /// The page asked for.
    pub page: u16,
    /// Whether a later page has entries.
    pub more: bool,
    /// The clients, by id.
    pub clients: ClientList,
}

/// Where an object of a `SLAB_CACHE_DMA` cache is in physical memory (`Reply::DmaAddr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmaAddress {
    /// The physical (bus) address of the object's first byte.
    pub addr: u64,
    /// Bytes from `addr` that are physically contiguous, at most the object's size.
    pub contiguous: u32,
}

/// What a validation found wrong with one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finding {
    /// A red-zone byte of an object (its left or right red zone, or, on a red-zoned kmalloc
    /// cache, the slack between the requested size and the object size) was overwritten.
    RedZone(Corruption),
    /// A free `SLAB_POISON` object was written after its free.
    Poison(Corruption),
}

/// What `Validate` found in one cache (`Reply::Validated`), Linux's `validate_slab_cache()`.
///
/// `errors` counts corrupted regions: each of an object's left red zone, right red zone,
/// kmalloc slack and poison counts once, however many of its bytes are wrong, and each was
/// repaired. Linux's `slab_errors` (its kunit tests) counts a report and a fix for each: twice
/// this number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// Slabs checked.
    pub slabs: u32,
    /// Objects checked (allocated and free).
    pub objects: u32,
    /// Corrupted regions found (and repaired).
    pub errors: u32,
    /// The first one found, in slab order then object order.
    pub first: Option<Finding>,
}

/// Slabs one `ShrinkPlan` names at most.
pub const SHRINK_PLAN_SLABS: usize = 64;

/// The slabs of one `ShrinkPlan`: the window offset of each slab's first byte.
pub type SlabList = heapless::Vec<Handle, SHRINK_PLAN_SLABS>;

/// The first step of a two-phase shrink (`Reply::ShrinkPlan`): the empty slabs the server took
/// out of use and will release on `ShrinkCommit { token }`. Each slab is `pages_per_slab`
/// pages at the given offset holding `objects_per_slab` objects at the cache's stride, the
/// first at `offset + obj_offset` (its `CacheLayout` and cache-table entry say both): the
/// client runs its dtor on every one of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkPlan {
    /// Names this plan in `ShrinkCommit`.
    pub token: u32,
    /// Whether the cache has more empty slabs than this plan names (another round releases
    /// them).
    pub more: bool,
    /// The slabs.
    pub slabs: SlabList,
}

/// The server's answer to one [`Request`](crate::Request).
///
/// Every variant but `Done` and `Error` carries one struct; on the wire a variant is its
/// index followed by the struct's fields, so the bytes are those of a variant with the
/// fields inline. [`ReplyValue`] maps each success variant to the type it carries.
// `SlabInfo` is about 1 KiB inline; without a heap there is nothing to box it into, and a
// reply lives only while one request is answered.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The session is open.
    Hello(SessionInfo),
    /// A cache was created.
    Created(Created),
    /// An object (from `Alloc`, `Zalloc`, `Kmalloc`).
    Object(Object),
    /// The request succeeded and has nothing to report.
    Done,
    /// A shrink finished.
    Shrunk(Shrunk),
    /// A magazine exchange finished.
    Exchanged(Exchanged),
    /// Answer to `Request::CacheInfo`.
    CacheInfo(CacheInfo),
    /// One page of slabinfo rows.
    SlabInfo(SlabInfoPage),
    /// The `SLAB_STORE_USER` record of an object.
    Owner(Owner),
    /// Pool and client statistics.
    Stats(Stats),
    /// The request failed.
    Error(Error),
    /// One page of the clients with an open session (answer to `Request::Clients`).
    Clients(ClientsPage),
    /// Where a DMA object is in physical memory (answer to `Request::DmaAddr`).
    DmaAddr(DmaAddress),
    /// What a validation found (answer to `Request::Validate`).
    Validated(ValidationReport),
    /// The slabs a two-phase shrink will release (answer to `Request::ShrinkBegin`).
    ShrinkPlan(ShrinkPlan),
}

impl Reply {
    /// The name of this reply's variant (`"Object"`, `"Error"` …), for messages about a reply
    /// of the wrong kind.
    pub const fn variant_name(&self) -> &'static str {
        match self {
            Reply::Hello(_) => "Hello",
            Reply::Created(_) => "Created",
            Reply::Object(_) => "Object",
            Reply::Done => "Done",
            Reply::Shrunk(_) => "Shrunk",
            Reply::Exchanged(_) => "Exchanged",
            Reply::CacheInfo(_) => "CacheInfo",
            Reply::SlabInfo(_) => "SlabInfo",
            Reply::Owner(_) => "Owner",
            Reply::Stats(_) => "Stats",
            Reply::Error(_) => "Error",
            Reply::Clients(_) => "Clients",
            Reply::DmaAddr(_) => "DmaAddr",
            Reply::Validated(_) => "Validated",
            Reply::ShrinkPlan(_) => "ShrinkPlan",
        }
    }
}

/// What one success variant of [`Reply`] carries: the typed value a request returns (the
/// interface in [`api`](crate::api) names, per request, the variant it expects).
pub trait ReplyValue: Sized {
    /// The name of the [`Reply`] variant that carries this value.
    const VARIANT: &'static str;
    /// Wraps the value in its reply.
    fn into_reply(self) -> Reply;
    /// The value, if `reply` is its variant.
    fn from_reply(reply: Reply) -> Option<Self>;
}

/// `Done` carries nothing.
impl ReplyValue for () {
    const VARIANT: &'static str = "Done";
    fn into_reply(self) -> Reply {
        Reply::Done
    }
    fn from_reply(reply: Reply) -> Option<Self> {
        matches!(reply, Reply::Done).then_some(())
    }
}

/// Implements [`ReplyValue`] for the type each `Variant(Type)` of [`Reply`] carries, and
/// names it `payload::Variant` (the interface refers to replies by variant name).
macro_rules! reply_values {
    ($($variant:ident($value:ident),)*) => {
        $(
            impl ReplyValue for $value {
                const VARIANT: &'static str = stringify!($variant);
                fn into_reply(self) -> Reply {
                    Reply::$variant(self)
                }
                fn from_reply(reply: Reply) -> Option<Self> {
                    match reply {
                        Reply::$variant(value) => Some(value),
                        _ => None,
                    }
                }
            }
        )*

        /// The value each success variant of [`Reply`] carries, by variant name
        /// (`payload::Done` is `()`).
        pub mod payload {
            $(
                #[doc = concat!("What `Reply::", stringify!($variant), "` carries.")]
                pub type $variant = super::$value;
            )*
            /// `Reply::Done` carries nothing.
            pub type Done = ();
        }
    };
}

reply_values! {
    Hello(SessionInfo),
    Created(Created),
    Object(Object),
    Shrunk(Shrunk),
    Exchanged(Exchanged),
    CacheInfo(CacheInfo),
    SlabInfo(SlabInfoPage),
    Owner(Owner),
    Stats(Stats),
    Clients(ClientsPage),
    DmaAddr(DmaAddress),
    Validated(ValidationReport),
    ShrinkPlan(ShrinkPlan),
}

impl WireSize for CacheLayout {
    const MAX_ENCODED: usize = 5 * u32::MAX_ENCODED;
}

impl WireSize for CacheInfo {
    const MAX_ENCODED: usize = CacheId::MAX_ENCODED
        + CacheName::MAX_ENCODED
        + u32::MAX_ENCODED
        + bool::MAX_ENCODED
        + CacheLayout::MAX_ENCODED
        + bool::MAX_ENCODED
        + Option::<u16>::MAX_ENCODED
        + u16::MAX_ENCODED
        + 5 * u32::MAX_ENCODED
        + bool::MAX_ENCODED;
}

impl WireSize for Track {
    const MAX_ENCODED: usize = u16::MAX_ENCODED + u64::MAX_ENCODED;
}

impl WireSize for Stats {
    const MAX_ENCODED: usize = 9 * u32::MAX_ENCODED + u16::MAX_ENCODED + 14 * u64::MAX_ENCODED;
}

impl WireSize for ClientEntry {
    const MAX_ENCODED: usize = ClientId::MAX_ENCODED + ClientName::MAX_ENCODED;
}

impl WireSize for SessionInfo {
    const MAX_ENCODED: usize = ClientId::MAX_ENCODED + u64::MAX_ENCODED + u32::MAX_ENCODED + 2 * u16::MAX_ENCODED;
}

impl WireSize for Created {
    const MAX_ENCODED: usize = CacheId::MAX_ENCODED
        + CacheLayout::MAX_ENCODED
        + bool::MAX_ENCODED
        + Option::<u16>::MAX_ENCODED
        + u16::MAX_ENCODED;
}

impl WireSize for Object {
    const MAX_ENCODED: usize = Handle::MAX_ENCODED + bool::MAX_ENCODED;
}

impl WireSize for Shrunk {
    const MAX_ENCODED: usize = u32::MAX_ENCODED;
}

impl WireSize for Exchanged {
    const MAX_ENCODED: usize = u16::MAX_ENCODED + u64::MAX_ENCODED;
}

impl WireSize for SlabInfoPage {
    const MAX_ENCODED: usize = u16::MAX_ENCODED + bool::MAX_ENCODED + SlabInfoRows::MAX_ENCODED;
}

impl WireSize for Owner {
    const MAX_ENCODED: usize = 2 * Option::<Track>::MAX_ENCODED;
}

impl WireSize for ClientsPage {
    const MAX_ENCODED: usize = u16::MAX_ENCODED + bool::MAX_ENCODED + ClientList::MAX_ENCODED;
}

impl WireSize for DmaAddress {
    const MAX_ENCODED: usize = u64::MAX_ENCODED + u32::MAX_ENCODED;
}

impl WireSize for Finding {
    const MAX_ENCODED: usize = ENUM_TAG + Corruption::MAX_ENCODED;
}

impl WireSize for ValidationReport {
    const MAX_ENCODED: usize = 3 * u32::MAX_ENCODED + Option::<Finding>::MAX_ENCODED;
}

impl WireSize for ShrinkPlan {
    const MAX_ENCODED: usize = u32::MAX_ENCODED + bool::MAX_ENCODED + SlabList::MAX_ENCODED;
}

impl WireSize for Reply {
    const MAX_ENCODED: usize = ENUM_TAG
        + max_of(&[
            SessionInfo::MAX_ENCODED,
            Created::MAX_ENCODED,
            Object::MAX_ENCODED,
            0, // Done
            Shrunk::MAX_ENCODED,
            Exchanged::MAX_ENCODED,
            CacheInfo::MAX_ENCODED,
            SlabInfoPage::MAX_ENCODED,
            Owner::MAX_ENCODED,
            Stats::MAX_ENCODED,
            Error::MAX_ENCODED,
            ClientsPage::MAX_ENCODED,
            DmaAddress::MAX_ENCODED,
            ValidationReport::MAX_ENCODED,
            ShrinkPlan::MAX_ENCODED,
        ]);
}

//! The interface: every request defined once, and what comes from that definition.
//!
//! The list below is the one place a request is defined: its name, fields, the reply it
//! expects on success and the errors it may return. The `interface!` macro (its doc comment in
//! `api/idl.rs` explains the syntax) derives from it the [`Request`] enum, the
//! server-side [`Service`] trait with its router [`route`], the typed methods of [`Client`],
//! and the metadata in [`REQUESTS`]. Adding a request is one entry here (at the end: entry
//! order is wire order) plus its handler in the dispatch (the compiler asks for it); as for
//! any wire change, it also takes a `PROTOCOL_VERSION` bump with a golden example, and a row
//! in `docs/protocol.md`'s request table, which `tests/docs_table.rs` checks against
//! [`REQUESTS`].
//!
//! Errors every request may get at the door, before it reaches its handler, are not listed
//! per request: `Malformed` (the bytes do not decode) and `PermissionDenied` (the session is
//! not open: any request but `Hello` before `Hello`). See [`DOOR_ERRORS`].

#[macro_use]
mod idl;
mod client;

pub use client::{CallError, Client};

use crate::request::{CacheName, ClientName, ExchangeOp};
use crate::{CacheId, ClientId, ErrorCode, Handle};

/// What the interface declares about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// The request's name, as in [`Request`] (`"CacheCreate"`).
    pub name: &'static str,
    /// The method name in [`Service`] and [`Client`] (`"cache_create"`).
    pub method: &'static str,
    /// The [`Reply`](crate::Reply) variant it expects on success (`"Created"`).
    pub reply: &'static str,
    /// Its fields, in wire order.
    pub fields: &'static [&'static str],
    /// The errors its handler may return.
    pub errors: &'static [ErrorCode],
}

impl RequestInfo {
    /// Whether `error` is one this request declares.
    pub fn declares(&self, error: &crate::Error) -> bool {
        self.errors.contains(&error.code())
    }
}

/// Errors any request may get from the door of the dispatch, before its handler runs:
/// `Malformed` (bytes that do not decode) and `PermissionDenied` (the session is not open).
pub const DOOR_ERRORS: &[ErrorCode] = &[ErrorCode::Malformed, ErrorCode::PermissionDenied];

interface! {
    /// Opens the session; must be the first request. On the host the server admits the
    /// connection only if `client_name` is a client task of `system.toml`; on seL4 the badge
    /// identifies the client and the name must match it. `PermissionDenied`: another task's
    /// name, or `Hello` in an open session.
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the client.
        version: u16,
        /// The client task's name in `system.toml`.
        client_name: ClientName,
    } => fn hello -> Hello, errors [VersionMismatch, PermissionDenied];

    /// Corresponds to `kmem_cache_create()`. `InvalidArgument`: size 0 or above
    /// `OBJECT_SIZE_MAX`, align not 0 and not a power of two up to `ALIGN_MAX`, unknown flag
    /// bit, empty name. `OutOfMemory`: no cache slot left. A name matching the client's
    /// `slub_debug` setting (`system.toml`) gets its debug flags added.
    CacheCreate {
        /// Shown in slabinfo; unique per client.
        name: CacheName,
        /// Object size in bytes.
        size: u32,
        /// Object address alignment; 0 lets the server decide.
        align: u32,
        /// `flags::SLAB_*` bits.
        flags: u32,
        /// Whether the client has a constructor (objects of new slabs are then reported as
        /// fresh, and `Zalloc` is refused).
        ctor: bool,
        /// Whether the client has a destructor (Linux 2.4's `dtor`): the cache's slabs then
        /// leave it only through `ShrinkBegin`/`ShrinkCommit`, which let the client run the
        /// dtor first; memory pressure never reaps it; plain `Shrink` is refused.
        dtor: bool,
    } => fn cache_create -> Created, errors [InvalidArgument, NameTaken, OutOfMemory];

    /// Corresponds to `kmem_cache_alloc()`. `PoisonCorrupted`, `RedZoneCorrupted`: a debug
    /// cache found the free object written after its last free (repaired; it stays free).
    Alloc {
        /// The cache.
        cache: CacheId,
    } => fn alloc -> Object, errors [NoSuchCache, OutOfMemory, QuotaExceeded, PoisonCorrupted, RedZoneCorrupted];

    /// Corresponds to `kmem_cache_zalloc()`: like `Alloc`, and the server zeroes the object.
    /// `InvalidArgument`: the cache has a ctor.
    Zalloc {
        /// The cache.
        cache: CacheId,
    } => fn zalloc -> Object,
        errors [NoSuchCache, OutOfMemory, QuotaExceeded, PoisonCorrupted, InvalidArgument, RedZoneCorrupted];

    /// Corresponds to `kmem_cache_free()`.
    Free {
        /// The cache the client believes the object belongs to.
        cache: CacheId,
        /// The object.
        handle: Handle,
    } => fn free -> Done, errors [NoSuchCache, InvalidObject, WrongCache, DoubleFree, RedZoneCorrupted];

    /// Corresponds to `kmem_cache_destroy()`. `CacheBusy { live }`: live objects; the cache
    /// is left intact. `InvalidArgument`: one of the client's `kmalloc-<n>` caches, which
    /// live as long as the session, or a cache with a dtor that still has slabs (they leave
    /// through `ShrinkBegin`/`ShrinkCommit` first, so the dtor runs on their objects).
    Destroy {
        /// The cache.
        cache: CacheId,
    } => fn destroy -> Done, errors [NoSuchCache, CacheBusy, InvalidArgument];

    /// Corresponds to `kmem_cache_shrink()`: empty slabs go back to the frame pool.
    /// `InvalidArgument`: a cache with a dtor (use `ShrinkBegin`/`ShrinkCommit`).
    Shrink {
        /// The cache.
        cache: CacheId,
    } => fn shrink -> Shrunk, errors [NoSuchCache, InvalidArgument];

    /// Corresponds to `kmalloc()`: served from this client's `kmalloc-<n>` cache of the
    /// smallest size class that fits (8 … 8192); larger sizes take whole pages from the pool,
    /// contiguous in the window, up to 4 MiB. A power-of-two size is aligned to itself (whole
    /// pages: to that many pages). On a red-zoned kmalloc cache the bytes between `size` and
    /// the class size are red zone too. `InvalidArgument`: 0 (the library answers `kmalloc(0)`
    /// with `ZERO_SIZE_PTR` without asking) or above 4 MiB. `PoisonCorrupted`: a poisoned
    /// kmalloc cache found the object written after its last free.
    Kmalloc {
        /// Bytes wanted.
        size: u32,
    } => fn kmalloc -> Object, errors [InvalidArgument, OutOfMemory, QuotaExceeded, PoisonCorrupted, RedZoneCorrupted];

    /// Corresponds to `kfree()`: an object of any cache of the client (it goes back to its
    /// cache, as Linux frees it to the cache its slab belongs to) or a large kmalloc.
    /// `InvalidObject`: not an object; `DoubleFree`: not allocated; `RedZoneCorrupted`: a
    /// red-zoned object's guard bytes (its kmalloc slack included) were overwritten.
    Kfree {
        /// The object.
        handle: Handle,
    } => fn kfree -> Done, errors [InvalidObject, DoubleFree, RedZoneCorrupted];

    /// The magazine slow path, see `docs/protocol.md`. `InvalidArgument`: slot not bound to
    /// that cache, count above capacity, `Refill` of a non-empty magazine. `InvalidObject`,
    /// `WrongCache`, `DoubleFree`: a bad handle in a magazine. `OutOfMemory`,
    /// `QuotaExceeded`: a `Refill` that can hand out nothing.
    MagazineExchange {
        /// The cache.
        cache: CacheId,
        /// The control-region slot the server assigned to the cache in `Created`.
        slot: u16,
        /// What to do.
        op: ExchangeOp,
    } => fn magazine_exchange -> Exchanged,
        errors [NoSuchCache, InvalidArgument, InvalidObject, WrongCache, DoubleFree, OutOfMemory, QuotaExceeded];

    /// Geometry and counters of one cache.
    CacheInfo {
        /// The cache.
        cache: CacheId,
    } => fn cache_info -> CacheInfo, errors [NoSuchCache];

    /// One page of `/proc/slabinfo` rows (`SLABINFO_ROWS_PER_PAGE` per page, page 0 first).
    /// A page past the end is an empty page with `more: false`. `PermissionDenied`:
    /// `all_clients` without introspection rights.
    SlabInfo {
        /// Page number.
        page: u16,
        /// Every client's caches (needs introspection rights), not just the caller's.
        all_clients: bool,
    } => fn slab_info -> SlabInfo, errors [PermissionDenied];

    /// The `SLAB_STORE_USER` record of an object: who allocated and freed it last.
    /// `NotSupported`: a cache without `STORE_USER`.
    ObjectOwner {
        /// The object.
        handle: Handle,
    } => fn object_owner -> Owner, errors [InvalidObject, NotSupported];

    /// The frame pool and this client's frames, quota and counters.
    Stats => fn stats -> Stats, errors [];

    /// Ends the session: the server reclaims everything the client holds.
    Goodbye => fn goodbye -> Done, errors [];

    /// The frame pool and one client's frames, quota and counters, as `Stats` gives them for
    /// the caller (`memctl stats`). The caller's own id needs no rights. `PermissionDenied`:
    /// another client without introspection rights. `InvalidArgument`: no client with that id
    /// has an open session.
    ClientStats {
        /// The client.
        client: ClientId,
    } => fn client_stats -> Stats, errors [PermissionDenied, InvalidArgument];

    /// One page of the clients with an open session, by id (`CLIENTS_PER_PAGE` per page,
    /// page 0 first). A page past the end is an empty page with `more: false`.
    /// `PermissionDenied`: no introspection rights.
    Clients {
        /// Page number.
        page: u16,
    } => fn clients -> Clients, errors [PermissionDenied];

    /// The physical (bus) address of an object of a `SLAB_CACHE_DMA` cache, as a user-level
    /// driver needs it to program a DMA engine: the address of its first byte and how many
    /// bytes from there are physically contiguous (the whole object when the frames behind
    /// its pages follow each other). `NotSupported`: the platform does not know physical
    /// addresses (the host runner). `InvalidArgument`: the object's cache is not a DMA cache
    /// (a large kmalloc neither). `InvalidObject`: not an allocated object of the caller.
    DmaAddr {
        /// The object.
        handle: Handle,
    } => fn dma_addr -> DmaAddr, errors [NotSupported, InvalidArgument, InvalidObject];

    /// Corresponds to writing `/sys/kernel/slab/<cache>/validate` (`validate_slab_cache()`):
    /// checks every object of every slab of the cache named `name` of client `client` (red
    /// zones of allocated objects, their kmalloc slack included; poison of free objects;
    /// the slab counts), repairs every corruption it reports, and says how many it found.
    /// The caller's own id needs no rights. `PermissionDenied`: another client's cache without
    /// introspection rights. `InvalidArgument`: no open session with that id.
    /// `NoSuchCache`: no cache of that name.
    Validate {
        /// The client owning the cache.
        client: ClientId,
        /// The cache's name.
        name: CacheName,
    } => fn validate -> Validated, errors [PermissionDenied, InvalidArgument, NoSuchCache];

    /// Corresponds to `krealloc()` for an object the client cannot resize on its own (one of
    /// a red-zoned kmalloc cache, whose requested size only the server knows): in place while
    /// `size` fits the object (the slack red-zoned again, the new bytes zeroed with `zero`),
    /// else a new kmalloc object with the old bytes copied and the old object freed.
    /// `InvalidArgument`: `size` 0 or above 4 MiB. `InvalidObject`, `DoubleFree`: not an
    /// allocated object. `RedZoneCorrupted`: the old object's guard bytes were overwritten
    /// (nothing changes). `OutOfMemory`, `QuotaExceeded`, `PoisonCorrupted`: the new object
    /// could not be allocated (the old one is left as it was).
    Krealloc {
        /// The object.
        handle: Handle,
        /// Bytes wanted.
        size: u32,
        /// `__GFP_ZERO`: bytes beyond the old requested size read as zero.
        zero: bool,
    } => fn krealloc -> Object,
        errors [InvalidArgument, InvalidObject, DoubleFree, RedZoneCorrupted, OutOfMemory, QuotaExceeded, PoisonCorrupted];

    /// First step of a shrink that lets the client run its destructor: the server takes the
    /// cache's empty slabs (up to `SHRINK_PLAN_SLABS`) out of use and names them. The client
    /// runs its dtor on every object of those slabs, then sends `ShrinkCommit` with the
    /// plan's token. Asked again before the commit, it names the same slabs with the same
    /// token.
    ShrinkBegin {
        /// The cache.
        cache: CacheId,
    } => fn shrink_begin -> ShrinkPlan, errors [NoSuchCache];

    /// Second step: the slabs of the plan `token` go back to the frame pool.
    /// `InvalidArgument`: no plan is pending, or `token` is not its token (nothing changes).
    ShrinkCommit {
        /// The cache.
        cache: CacheId,
        /// The token of the pending plan.
        token: u32,
    } => fn shrink_commit -> Shrunk, errors [NoSuchCache, InvalidArgument];
}

const _: () = assert!(REQUESTS.len() <= 128, "a request tag must stay one byte (wire_size::ENUM_TAG)");

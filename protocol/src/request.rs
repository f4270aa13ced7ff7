//! What a client asks: the [`Request`] enum.
//!
//! Variant order is wire format (postcard encodes the variant index): new variants go at the
//! end, and any change needs a `PROTOCOL_VERSION` bump and a new golden file.

use serde::{Deserialize, Serialize};

use crate::wire_size::{ENUM_TAG, WireSize, max_of};
use crate::{CACHE_NAME_MAX, CacheId, ClientId, Error, Handle};

/// Longest client task name in `Hello`, in bytes (the names of `system.toml`).
pub const CLIENT_NAME_MAX: usize = 31;

/// A cache name as carried on the wire (at most [`CACHE_NAME_MAX`] bytes of UTF-8).
pub type CacheName = heapless::String<CACHE_NAME_MAX>;

/// A client task name as carried in `Hello` (at most [`CLIENT_NAME_MAX`] bytes of UTF-8).
pub type ClientName = heapless::String<CLIENT_NAME_MAX>;

/// Copies `name` into a [`CacheName`]; `InvalidArgument` if it is longer than 31 bytes or not
/// printable ASCII without spaces (what slabinfo shows unambiguously; the server checks the same).
pub fn cache_name(name: &str) -> Result<CacheName, Error> {
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidArgument);
    }
    CacheName::try_from(name).map_err(|_| Error::InvalidArgument)
}

/// Copies `name` into a [`ClientName`]; `InvalidArgument` if it is longer than 31 bytes.
pub fn client_name(name: &str) -> Result<ClientName, Error> {
    ClientName::try_from(name).map_err(|_| Error::InvalidArgument)
}

/// What a `MagazineExchange` does with the magazines of one control-region slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeOp {
    /// The loaded magazine is empty (its count must be 0): the server writes up to the slot's
    /// capacity handles into it and sets its count. The reply's `fresh_mask` says which of
    /// them are fresh (the client runs its ctor on those).
    Refill,
    /// The loaded magazine is full: the server copies it out, validates every handle, takes
    /// them all back and sets its count to 0. A bad handle rejects the whole magazine and
    /// changes nothing.
    Drain,
    /// Both magazines of the slot go back (the loaded one first, then the previous one), as
    /// `Drain` does, and both counts become 0. Used before `Destroy` and `Shrink`, and when the
    /// client exits.
    Flush,
}

/// A request from a client to the server.
///
/// Every request gets exactly one [`Reply`](crate::Reply); the reply each variant expects on
/// success is named in its doc. Any request may also get `Reply::Error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Opens the session; must be the first request. On the host the server admits the
    /// connection only if `client_name` is a client task of `system.toml`; on seL4 the badge
    /// identifies the client and the name must match it.
    /// Reply: `Hello`. Errors: `VersionMismatch`, `PermissionDenied` (unknown name, or
    /// `Hello` twice).
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the client.
        version: u16,
        /// The client task's name in `system.toml`.
        client_name: ClientName,
    },
    /// Corresponds to `kmem_cache_create()`. Reply: `Created`. Errors: `InvalidArgument`
    /// (size 0 or above `OBJECT_SIZE_MAX`, align not 0 and not a power of two up to
    /// `ALIGN_MAX`, unknown flag bit, empty name), `NameTaken`, `OutOfMemory` (no cache slot).
    CacheCreate {
        /// Shown in slabinfo; unique per client.
        name: CacheName,
        /// Object size in bytes.
        size: u32,
        /// Object address alignment; 0 lets the server decide.
        align: u32,
        /// `flags::SLAB_*` bits.
        flags: u32,
        /// Whether the client has a constructor (fresh objects are then reported as such, and
        /// `Zalloc` is refused).
        ctor: bool,
    },
    /// Corresponds to `kmem_cache_alloc()`. Reply: `Object`. Errors: `NoSuchCache`,
    /// `OutOfMemory`, `QuotaExceeded`, `PoisonCorrupted` (debug caches).
    Alloc {
        /// The cache.
        cache: CacheId,
    },
    /// Corresponds to `kmem_cache_zalloc()`: like `Alloc`, and the server zeroes the object.
    /// Reply: `Object`. Errors: as `Alloc`, and `InvalidArgument` on a cache with a ctor.
    Zalloc {
        /// The cache.
        cache: CacheId,
    },
    /// Corresponds to `kmem_cache_free()`. Reply: `Done`. Errors: `NoSuchCache`,
    /// `InvalidObject`, `WrongCache`, `DoubleFree`, `RedZoneCorrupted`.
    Free {
        /// The cache the client believes the object belongs to.
        cache: CacheId,
        /// The object.
        handle: Handle,
    },
    /// Corresponds to `kmem_cache_destroy()`. Reply: `Done`. Errors: `NoSuchCache`,
    /// `CacheBusy { live }` (the cache is left intact).
    Destroy {
        /// The cache.
        cache: CacheId,
    },
    /// Corresponds to `kmem_cache_shrink()`: empty slabs go back to the frame pool.
    /// Reply: `Shrunk`. Errors: `NoSuchCache`.
    Shrink {
        /// The cache.
        cache: CacheId,
    },
    /// Corresponds to `kmalloc()`: served from this client's `kmalloc-<n>` cache of the
    /// smallest size class that fits (8 … 8192); larger sizes take whole pages from the pool,
    /// contiguous in the window, up to 4 MiB. Reply: `Object`. Errors: `InvalidArgument`
    /// (0 or above 4 MiB), `OutOfMemory`, `QuotaExceeded`.
    Kmalloc {
        /// Bytes wanted.
        size: u32,
    },
    /// Corresponds to `kfree()`. Reply: `Done`. Errors: `InvalidObject` (not a kmalloc
    /// object), `DoubleFree`.
    Kfree {
        /// The object.
        handle: Handle,
    },
    /// The magazine slow path, see `docs/protocol.md`. Reply: `Exchanged`. Errors:
    /// `NoSuchCache`, `InvalidArgument` (slot not bound to that cache, count above capacity,
    /// `Refill` of a non-empty magazine), `InvalidObject`, `WrongCache`, `DoubleFree` (a bad
    /// handle in a magazine), `OutOfMemory`, `QuotaExceeded` (`Refill`).
    MagazineExchange {
        /// The cache.
        cache: CacheId,
        /// The control-region slot the server assigned to the cache in `Created`.
        slot: u16,
        /// What to do.
        op: ExchangeOp,
    },
    /// Geometry and counters of one cache. Reply: `CacheInfo`. Errors: `NoSuchCache`.
    CacheInfo {
        /// The cache.
        cache: CacheId,
    },
    /// One page of `/proc/slabinfo` rows (`SLABINFO_ROWS_PER_PAGE` per page, page 0 first).
    /// Reply: `SlabInfo`. Errors: `PermissionDenied` (`all_clients` without introspection
    /// rights). A page past the end is an empty page with `more: false`.
    SlabInfo {
        /// Page number.
        page: u16,
        /// Every client's caches (needs introspection rights), not just the caller's.
        all_clients: bool,
    },
    /// The `SLAB_STORE_USER` record of an object: who allocated and freed it last.
    /// Reply: `Owner`. Errors: `InvalidObject`, `NotSupported` (cache without `STORE_USER`).
    ObjectOwner {
        /// The object.
        handle: Handle,
    },
    /// The frame pool and this client's frames, quota and counters. Reply: `Stats`.
    Stats,
    /// Ends the session: the server reclaims everything the client holds. Reply: `Done`.
    Goodbye,
    /// The frame pool and one client's frames, quota and counters, as `Stats` gives them for
    /// the caller (`memctl stats`). The caller's own id needs no rights.
    /// Reply: `Stats`. Errors: `PermissionDenied` (another client without introspection
    /// rights), `InvalidArgument` (no client with that id has an open session).
    ClientStats {
        /// The client.
        client: ClientId,
    },
    /// One page of the clients with an open session, by id (`CLIENTS_PER_PAGE` per page,
    /// page 0 first). Reply: `Clients`. Errors: `PermissionDenied` (no introspection
    /// rights). A page past the end is an empty page with `more: false`.
    Clients {
        /// Page number.
        page: u16,
    },
}

impl WireSize for ExchangeOp {
    const MAX_ENCODED: usize = ENUM_TAG;
}

impl WireSize for Request {
    const MAX_ENCODED: usize = ENUM_TAG
        + max_of(&[
            u16::MAX_ENCODED + ClientName::MAX_ENCODED,                        // Hello
            CacheName::MAX_ENCODED + 3 * u32::MAX_ENCODED + bool::MAX_ENCODED, // CacheCreate
            CacheId::MAX_ENCODED,                       // Alloc, Zalloc, Destroy, Shrink, CacheInfo
            CacheId::MAX_ENCODED + Handle::MAX_ENCODED, // Free
            u32::MAX_ENCODED,                           // Kmalloc
            Handle::MAX_ENCODED,                        // Kfree, ObjectOwner
            CacheId::MAX_ENCODED + u16::MAX_ENCODED + ExchangeOp::MAX_ENCODED, // MagazineExchange
            u16::MAX_ENCODED + bool::MAX_ENCODED,       // SlabInfo
            0,                                          // Stats, Goodbye
            ClientId::MAX_ENCODED,                      // ClientStats
            u16::MAX_ENCODED,                           // Clients
        ]);
}

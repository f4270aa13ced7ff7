//! `kmem_cache_create()` flag bits, with the values Linux gives them (`include/linux/slab.h`).

/// Full slab consistency checks on every operation (`SLAB_CONSISTENCY_CHECKS`).
pub const SLAB_CONSISTENCY_CHECKS: u32 = 0x0000_0100;
/// Guard bytes on both sides of each object, checked on free (`SLAB_RED_ZONE`).
pub const SLAB_RED_ZONE: u32 = 0x0000_0400;
/// Free objects filled with `0x6b` (last byte `0xa5`), checked on reuse (`SLAB_POISON`).
pub const SLAB_POISON: u32 = 0x0000_0800;
/// Align objects on cache lines (`SLAB_HWCACHE_ALIGN`).
pub const SLAB_HWCACHE_ALIGN: u32 = 0x0000_2000;
/// Objects for DMA (`SLAB_CACHE_DMA`): accepted, stored and reported.
pub const SLAB_CACHE_DMA: u32 = 0x0000_4000;
/// Record the last allocating and freeing user of each object (`SLAB_STORE_USER`).
pub const SLAB_STORE_USER: u32 = 0x0001_0000;
/// Allocation failure is fatal to the caller (`SLAB_PANIC`): the client library panics.
pub const SLAB_PANIC: u32 = 0x0004_0000;

/// Every flag bit a `CacheCreate` may carry; any other bit is `InvalidArgument`.
pub const SLAB_ALL: u32 = SLAB_CONSISTENCY_CHECKS
    | SLAB_RED_ZONE
    | SLAB_POISON
    | SLAB_HWCACHE_ALIGN
    | SLAB_CACHE_DMA
    | SLAB_STORE_USER
    | SLAB_PANIC;

/// Flags that make a cache a debug cache: it bypasses magazines so every check is exact.
pub const SLAB_DEBUG: u32 = SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE | SLAB_POISON | SLAB_STORE_USER;

/// Linux's poison byte for a free object (`POISON_FREE`).
pub const POISON_FREE: u8 = 0x6b;
/// Linux's poison byte ending a free object (`POISON_END`).
pub const POISON_END: u8 = 0xa5;
/// Red-zone byte while the object is free (`SLUB_RED_INACTIVE`).
pub const RED_INACTIVE: u8 = 0xbb;
/// Red-zone byte while the object is allocated (`SLUB_RED_ACTIVE`).
pub const RED_ACTIVE: u8 = 0xcc;

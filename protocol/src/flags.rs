//! `kmem_cache_create()` flag bits, with the values Linux 6.6 gives them
//! (`include/linux/slab.h`; from 6.8 on Linux computes them from an enum, so 6.6, the last
//! long-term kernel with fixed values, is the reference). One bit is this server's own:
//! [`SLAB_NO_REAP`]. What each accepted flag means *here* is documented on it and in
//! `docs/protocol.md`.

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
/// Pages of this cache are counted as reclaimable (`SLAB_RECLAIM_ACCOUNT`, Linux's
/// `SReclaimable`): `Stats::reclaimable_pages`.
pub const SLAB_RECLAIM_ACCOUNT: u32 = 0x0002_0000;
/// Object memory stays of this cache (`SLAB_TYPESAFE_BY_RCU`): a freed object may be reused at
/// once, but its memory is never released by memory pressure, only by an explicit `Shrink`
/// (or `Destroy`). As in Linux, free objects of such a cache are not poisoned.
pub const SLAB_TYPESAFE_BY_RCU: u32 = 0x0008_0000;
/// Spread allocations over memory nodes (`SLAB_MEM_SPREAD`): accepted, no effect (one node).
pub const SLAB_MEM_SPREAD: u32 = 0x0010_0000;
/// Not tracked by kmemleak (`SLAB_NOLEAKTRACE`): accepted, no effect (no leak tracer here).
pub const SLAB_NOLEAKTRACE: u32 = 0x0080_0000;
/// Charge to the memory cgroup (`SLAB_ACCOUNT`): accepted and reported; every cache is charged
/// to its client's quota anyway.
pub const SLAB_ACCOUNT: u32 = 0x0400_0000;
/// This server's own flag (Linux 2.4 had `SLAB_NO_REAP` at 0x1000, a bit Linux 6.x uses for
/// `SLAB_KMALLOC`): the cache is never reaped under memory pressure. Its empty slabs go back
/// only on its own `Shrink` or `Destroy`. 0x40000000 is a bit Linux 6.6 leaves unused.
pub const SLAB_NO_REAP: u32 = 0x4000_0000;

/// Every flag bit a `CacheCreate` may carry; any other bit is `InvalidArgument`.
pub const SLAB_ALL: u32 = SLAB_CONSISTENCY_CHECKS
    | SLAB_RED_ZONE
    | SLAB_POISON
    | SLAB_HWCACHE_ALIGN
    | SLAB_CACHE_DMA
    | SLAB_STORE_USER
    | SLAB_PANIC
    | SLAB_RECLAIM_ACCOUNT
    | SLAB_TYPESAFE_BY_RCU
    | SLAB_MEM_SPREAD
    | SLAB_NOLEAKTRACE
    | SLAB_ACCOUNT
    | SLAB_NO_REAP;

/// Flags that keep a cache's memory from memory pressure: its empty slabs are released only by
/// its own `Shrink` or `Destroy` (a cache with a dtor is never reaped either).
pub const SLAB_NEVER_REAPED: u32 = SLAB_NO_REAP | SLAB_TYPESAFE_BY_RCU;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The accepted flags are distinct bits, and none of them is a debug flag but the four.
    #[test]
    fn flag_bits_are_distinct() {
        let all = [
            SLAB_CONSISTENCY_CHECKS,
            SLAB_RED_ZONE,
            SLAB_POISON,
            SLAB_HWCACHE_ALIGN,
            SLAB_CACHE_DMA,
            SLAB_STORE_USER,
            SLAB_PANIC,
            SLAB_RECLAIM_ACCOUNT,
            SLAB_TYPESAFE_BY_RCU,
            SLAB_MEM_SPREAD,
            SLAB_NOLEAKTRACE,
            SLAB_ACCOUNT,
            SLAB_NO_REAP,
        ];
        let mut seen = 0u32;
        for f in all {
            assert_eq!(f.count_ones(), 1, "{f:#x}");
            assert_eq!(seen & f, 0, "{f:#x} twice");
            seen |= f;
        }
        assert_eq!(seen, SLAB_ALL);
        assert_eq!(SLAB_DEBUG & !SLAB_ALL, 0);
    }
}

//! The `SLAB_*` flags of `kmem_cache_create()` and the `GFP_*` flags of every allocation, with
//! Linux's values (`include/linux/slab.h` of Linux 6.6; `include/linux/gfp.h` of Linux 5.x),
//! and this server's `SLAB_NO_REAP`.
//!
//! Every `gfp_t` is accepted. Only `__GFP_ZERO` changes anything: the object is zeroed. The
//! others describe how the kernel may reclaim memory, which has no counterpart here: every
//! call may block on an IPC to the server (a magazine miss), `GFP_ATOMIC` and `GFP_NOWAIT`
//! included, and `__GFP_NOFAIL` does not make an allocation infallible.
#![allow(non_camel_case_types)]

use core::ffi::c_uint;

/// Allocation flags (Linux's `gfp_t`).
pub type gfp_t = c_uint;
/// `kmem_cache_create()` flags (Linux's `slab_flags_t`).
pub type slab_flags_t = c_uint;

/// Full consistency checks on every operation (a debug flag: no magazines).
pub const SLAB_CONSISTENCY_CHECKS: slab_flags_t = 0x0000_0100;
/// Guard bytes around each object, checked on free (a debug flag).
pub const SLAB_RED_ZONE: slab_flags_t = 0x0000_0400;
/// Free objects poisoned, checked on reuse (a debug flag).
pub const SLAB_POISON: slab_flags_t = 0x0000_0800;
/// Objects aligned on cache lines.
pub const SLAB_HWCACHE_ALIGN: slab_flags_t = 0x0000_2000;
/// Objects for DMA: accepted, recorded, no effect.
pub const SLAB_CACHE_DMA: slab_flags_t = 0x0000_4000;
/// Last allocating and freeing user of each object recorded (a debug flag).
pub const SLAB_STORE_USER: slab_flags_t = 0x0001_0000;
/// Failure is fatal: a failed `kmem_cache_create()` or allocation aborts the process.
pub const SLAB_PANIC: slab_flags_t = 0x0004_0000;
/// Pages counted as reclaimable (shown in the client's statistics).
pub const SLAB_RECLAIM_ACCOUNT: slab_flags_t = 0x0002_0000;
/// Object memory stays of this cache until its own shrink: never released by memory
/// pressure; free objects are not poisoned.
pub const SLAB_TYPESAFE_BY_RCU: slab_flags_t = 0x0008_0000;
/// Spread over memory nodes: accepted, no effect (one node).
pub const SLAB_MEM_SPREAD: slab_flags_t = 0x0010_0000;
/// Not tracked by a leak detector: accepted, no effect.
pub const SLAB_NOLEAKTRACE: slab_flags_t = 0x0080_0000;
/// Charged to the memory cgroup: accepted, reported (every cache is charged to its client).
pub const SLAB_ACCOUNT: slab_flags_t = 0x0400_0000;
/// This server's own flag: the cache is never reaped under memory pressure.
pub const SLAB_NO_REAP: slab_flags_t = 0x4000_0000;

/// Zone bit (no effect).
pub const __GFP_DMA: gfp_t = 0x01;
/// Zone bit (no effect).
pub const __GFP_HIGHMEM: gfp_t = 0x02;
/// Zone bit (no effect).
pub const __GFP_DMA32: gfp_t = 0x04;
/// Mobility bit (no effect).
pub const __GFP_MOVABLE: gfp_t = 0x08;
/// Mobility bit (no effect).
pub const __GFP_RECLAIMABLE: gfp_t = 0x10;
/// Access to emergency reserves (no effect).
pub const __GFP_HIGH: gfp_t = 0x20;
/// May start I/O (no effect).
pub const __GFP_IO: gfp_t = 0x40;
/// May call into the file system (no effect).
pub const __GFP_FS: gfp_t = 0x80;
/// Zero the memory: the one flag with an effect.
pub const __GFP_ZERO: gfp_t = 0x100;
/// The caller cannot sleep (no effect: a magazine miss still blocks on an IPC).
pub const __GFP_ATOMIC: gfp_t = 0x200;
/// May enter direct reclaim (no effect).
pub const __GFP_DIRECT_RECLAIM: gfp_t = 0x400;
/// May wake kswapd (no effect).
pub const __GFP_KSWAPD_RECLAIM: gfp_t = 0x800;
/// Both reclaim bits.
pub const __GFP_RECLAIM: gfp_t = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
/// Page will be written (no effect).
pub const __GFP_WRITE: gfp_t = 0x1000;
/// Suppress failure warnings (no effect: this library prints none for allocations).
pub const __GFP_NOWARN: gfp_t = 0x2000;
/// Retry, may fail (no effect).
pub const __GFP_RETRY_MAYFAIL: gfp_t = 0x4000;
/// Must not fail (not honoured: allocations can still fail).
pub const __GFP_NOFAIL: gfp_t = 0x8000;
/// Do not retry (no effect).
pub const __GFP_NORETRY: gfp_t = 0x10000;
/// Enforce the cpuset's memory (no effect).
pub const __GFP_HARDWALL: gfp_t = 0x10_0000;
/// Charge to the memory cgroup (no effect).
pub const __GFP_ACCOUNT: gfp_t = 0x40_0000;

/// Zero the memory (a short name for `__GFP_ZERO`; not a Linux name).
pub const GFP_ZERO: gfp_t = __GFP_ZERO;
/// Interrupt context, cannot sleep.
pub const GFP_ATOMIC: gfp_t = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM;
/// The usual flags.
pub const GFP_KERNEL: gfp_t = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
/// `GFP_KERNEL`, charged to the memory cgroup.
pub const GFP_KERNEL_ACCOUNT: gfp_t = GFP_KERNEL | __GFP_ACCOUNT;
/// Cannot sleep, no emergency reserves.
pub const GFP_NOWAIT: gfp_t = __GFP_KSWAPD_RECLAIM;
/// No I/O.
pub const GFP_NOIO: gfp_t = __GFP_RECLAIM;
/// No file-system calls.
pub const GFP_NOFS: gfp_t = __GFP_RECLAIM | __GFP_IO;
/// User-space allocations.
pub const GFP_USER: gfp_t = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
/// DMA zone.
pub const GFP_DMA: gfp_t = __GFP_DMA;
/// DMA32 zone.
pub const GFP_DMA32: gfp_t = __GFP_DMA32;

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::flags as wire;

    #[test]
    fn slab_flags_are_the_wire_values() {
        let pairs = [
            ("SLAB_CONSISTENCY_CHECKS", SLAB_CONSISTENCY_CHECKS, wire::SLAB_CONSISTENCY_CHECKS),
            ("SLAB_RED_ZONE", SLAB_RED_ZONE, wire::SLAB_RED_ZONE),
            ("SLAB_POISON", SLAB_POISON, wire::SLAB_POISON),
            ("SLAB_HWCACHE_ALIGN", SLAB_HWCACHE_ALIGN, wire::SLAB_HWCACHE_ALIGN),
            ("SLAB_CACHE_DMA", SLAB_CACHE_DMA, wire::SLAB_CACHE_DMA),
            ("SLAB_STORE_USER", SLAB_STORE_USER, wire::SLAB_STORE_USER),
            ("SLAB_PANIC", SLAB_PANIC, wire::SLAB_PANIC),
            ("SLAB_RECLAIM_ACCOUNT", SLAB_RECLAIM_ACCOUNT, wire::SLAB_RECLAIM_ACCOUNT),
            ("SLAB_TYPESAFE_BY_RCU", SLAB_TYPESAFE_BY_RCU, wire::SLAB_TYPESAFE_BY_RCU),
            ("SLAB_MEM_SPREAD", SLAB_MEM_SPREAD, wire::SLAB_MEM_SPREAD),
            ("SLAB_NOLEAKTRACE", SLAB_NOLEAKTRACE, wire::SLAB_NOLEAKTRACE),
            ("SLAB_ACCOUNT", SLAB_ACCOUNT, wire::SLAB_ACCOUNT),
            ("SLAB_NO_REAP", SLAB_NO_REAP, wire::SLAB_NO_REAP),
        ];
        for (name, c, server) in pairs {
            assert_eq!(c, server, "{name}");
        }
        let all = pairs.iter().fold(0, |all, (_, c, _)| all | c);
        assert_eq!(all, wire::SLAB_ALL, "a flag the server accepts is missing from the C header");
    }

    #[test]
    fn gfp_kernel_and_atomic_have_linux_5_values() {
        assert_eq!(GFP_KERNEL, 0xcc0);
        assert_eq!(GFP_ATOMIC, 0xa20);
        assert_eq!(GFP_NOWAIT, 0x800);
        assert_eq!(__GFP_ZERO, 0x100);
    }
}

//! The one operation enum of the object lifecycle — create (with a dtor too), alloc, free
//! (right, wrong, bogus, twice), destroy, shrink (plain and two-phase), kmalloc, kfree (of any
//! cache's object), krealloc, validate, bulk, reclaim — shared by every random-program test:
//! the engine's model test ([`super::model::Harness`], programs from a proptest strategy) and the
//! dispatch's fuzz targets (`memserver_dispatch::testing::ops::Op::Object`, programs from
//! fuzzer bytes through [`Arbitrary`], each op sent as the requests it corresponds to).
//!
//! Indices (`client`, `cache`, `pick`) select among what the harness currently knows, modulo
//! its length, so random input reaches deep state. Values a random `u32` would almost never
//! make interesting (sizes, alignments, flags, handle offsets) are drawn from the ranges that
//! matter ([`object_size`], [`align`], [`flags`], [`handle_delta`], [`kmalloc_size`]).

extern crate std;

use arbitrary::{Arbitrary, Result, Unstructured};
use protocol::flags::{
    SLAB_CONSISTENCY_CHECKS, SLAB_HWCACHE_ALIGN, SLAB_NO_REAP, SLAB_POISON, SLAB_RECLAIM_ACCOUNT, SLAB_RED_ZONE,
    SLAB_STORE_USER, SLAB_TYPESAFE_BY_RCU,
};

/// One step of a random program.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `kmem_cache_create` of name `c{name % 8}` (with a destructor: Linux 2.4's form).
    Create {
        client: u8,
        name: u8,
        #[arbitrary(with = object_size)]
        size: u32,
        #[arbitrary(with = align)]
        align: u32,
        #[arbitrary(with = flags)]
        flags: u32,
        ctor: bool,
        dtor: bool,
    },
    /// `kmem_cache_alloc` / `zalloc`.
    Alloc { client: u8, cache: u8, zero: bool },
    /// Free of a held object to its own cache (`kfree` for a kmalloc one).
    Free { client: u8, pick: u16 },
    /// Free of a held object to another cache of the client.
    FreeWrongCache { client: u8, pick: u16, cache: u8 },
    /// Free (or `kfree`) of a held object's handle moved by `delta`, or of another client's
    /// (`foreign`): never an object of that cache held by the client.
    FreeBogus {
        client: u8,
        cache: u8,
        pick: u16,
        #[arbitrary(with = handle_delta)]
        delta: u64,
        foreign: bool,
        kfree: bool,
    },
    /// `kfree` of an object freed recently.
    FreeAgain { client: u8, pick: u16 },
    /// `kmem_cache_destroy`.
    Destroy { client: u8, cache: u8 },
    /// `kmem_cache_shrink`.
    Shrink { client: u8, cache: u8 },
    /// `kmalloc`.
    Kmalloc {
        client: u8,
        #[arbitrary(with = kmalloc_size)]
        size: u32,
    },
    /// `kfree` of a held object.
    Kfree { client: u8, pick: u16 },
    /// `kmem_cache_alloc_bulk` of up to `n % 16 + 1` objects (a magazine refill).
    AllocBulk { client: u8, cache: u8, n: u8 },
    /// `kmem_cache_free_bulk` of up to `n % 8 + 1` held objects of one cache, the first
    /// repeated at the end when `dup` (a magazine drain or flush).
    FreeBulk { client: u8, n: u8, dup: bool },
    /// Everything of the client back (a disconnect).
    Reclaim { client: u8 },
    /// `krealloc` of a held object (any cache's, or a large kmalloc) to `size` bytes.
    Krealloc {
        client: u8,
        pick: u16,
        #[arbitrary(with = kmalloc_size)]
        size: u32,
        zero: bool,
    },
    /// `validate_slab_cache()` of a cache.
    Validate { client: u8, cache: u8 },
    /// First step of a two-phase shrink: the empty slabs parked and named.
    ShrinkBegin { client: u8, cache: u8 },
    /// Second step, with the pending plan's token (or, `forged`, another one).
    ShrinkCommit { client: u8, cache: u8, forged: bool },
}

impl Op {
    /// The client the op acts as (before the harness takes it modulo its client count).
    pub fn client(&self) -> u8 {
        match *self {
            Op::Create { client, .. }
            | Op::Alloc { client, .. }
            | Op::Free { client, .. }
            | Op::FreeWrongCache { client, .. }
            | Op::FreeBogus { client, .. }
            | Op::FreeAgain { client, .. }
            | Op::Destroy { client, .. }
            | Op::Shrink { client, .. }
            | Op::Kmalloc { client, .. }
            | Op::Kfree { client, .. }
            | Op::AllocBulk { client, .. }
            | Op::FreeBulk { client, .. }
            | Op::Reclaim { client }
            | Op::Krealloc { client, .. }
            | Op::Validate { client, .. }
            | Op::ShrinkBegin { client, .. }
            | Op::ShrinkCommit { client, .. } => client,
        }
    }
}

/// Flags a `Create` draws from: each debug flag, the plain cases, the flags that keep memory
/// from pressure, and a bit no cache may have.
pub const MODEL_FLAGS: [u32; 10] = [
    0,
    SLAB_HWCACHE_ALIGN,
    SLAB_POISON,
    SLAB_RED_ZONE | SLAB_POISON,
    SLAB_STORE_USER,
    SLAB_CONSISTENCY_CHECKS,
    SLAB_NO_REAP | SLAB_RECLAIM_ACCOUNT,
    SLAB_TYPESAFE_BY_RCU | SLAB_POISON,
    SLAB_RED_ZONE | SLAB_STORE_USER,
    0x8000_0000,
];

/// One of [`MODEL_FLAGS`].
pub fn flags(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(*u.choose(&MODEL_FLAGS)?)
}

/// Mostly small objects, some up to a page and beyond, and the invalid 0 and 65,537.
pub fn object_size(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=4 => u.int_in_range(1..=256)?,
        5 | 6 => u.int_in_range(257..=4096)?,
        7 => u.int_in_range(4097..=65536)?,
        8 => 0,
        _ => 65537,
    })
}

/// "The server decides" mostly, powers of two up to 8 KiB (one too large), and 3.
pub fn align(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(*u.choose(&[0, 0, 0, 0, 8, 16, 64, 4096, 8192, 3])?)
}

/// Mostly slab sizes, some whole pages, and the invalid 0 and above 4 MiB.
pub fn kmalloc_size(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0u8..=9)? {
        0..=6 => u.int_in_range(1..=8192)?,
        7 | 8 => u.int_in_range(8193..=40_000)?,
        _ => *u.choose(&[0, 4 << 20, (4 << 20) + 1])?,
    })
}

/// Mostly a few bytes either way (inside an object, off its boundary, the flag bits), else
/// any offset at all.
pub fn handle_delta(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.ratio(3u8, 4)? {
        true => i64::from(u.arbitrary::<i16>()?) as u64,
        false => u.arbitrary()?,
    })
}

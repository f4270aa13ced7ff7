//! Worst-case postcard encoded sizes, computed at compile time.
//!
//! postcard's own `MaxSize` derive covers heapless 0.7 only, so this crate carries a small
//! equivalent: [`WireSize::MAX_ENCODED`] is the largest number of bytes `postcard::to_slice` can
//! produce for a value of the type. Structs add up their fields, enums take the largest
//! variant plus the variant tag. The numbers follow postcard's wire format (v1):
//!
//! * `u8`, `bool`: one byte; `Option<T>`: one tag byte plus `T`.
//! * `u16`, `u32`, `u64`: LEB128 varints of at most 3, 5 and 10 bytes; `i32` is zigzag
//!   encoded into a `u32` varint.
//! * strings and sequences: a varint length (one byte below 128 elements) and then the
//!   elements.
//! * enum variants: a `u32` varint tag (one byte for the first 128 variants).
//!
//! The tests in `tests/max_size.rs` encode worst-case values of every message and check that
//! they reach these bounds exactly.

use crate::{CacheId, Corruption, Error, Handle};

/// A type whose postcard encoding never exceeds [`WireSize::MAX_ENCODED`] bytes.
pub trait WireSize {
    /// The largest encoded size in bytes.
    const MAX_ENCODED: usize;
}

/// Bytes of a LEB128 varint holding at most `bits` significant bits.
pub const fn varint_max(bits: usize) -> usize {
    bits.div_ceil(7)
}

/// The larger of two sizes (`core::cmp::max` is not `const`).
pub const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// The largest of a list of sizes.
pub const fn max_of(sizes: &[usize]) -> usize {
    let mut best = 0;
    let mut i = 0;
    while i < sizes.len() {
        best = max(best, sizes[i]);
        i += 1;
    }
    best
}

/// Bytes of an enum variant tag, for an enum with up to 128 variants.
pub const ENUM_TAG: usize = varint_max(7);

/// Bytes of a sequence or string length prefix for at most `n` elements.
pub const fn length_prefix(n: usize) -> usize {
    if n == 0 { 1 } else { varint_max((usize::BITS - n.leading_zeros()) as usize) }
}

impl WireSize for u8 {
    const MAX_ENCODED: usize = 1;
}
impl WireSize for bool {
    const MAX_ENCODED: usize = 1;
}
impl WireSize for u16 {
    const MAX_ENCODED: usize = varint_max(16);
}
impl WireSize for u32 {
    const MAX_ENCODED: usize = varint_max(32);
}
impl WireSize for u64 {
    const MAX_ENCODED: usize = varint_max(64);
}
impl WireSize for i32 {
    const MAX_ENCODED: usize = varint_max(32);
}
impl<T: WireSize> WireSize for Option<T> {
    const MAX_ENCODED: usize = 1 + T::MAX_ENCODED;
}
impl<const N: usize> WireSize for heapless::String<N> {
    const MAX_ENCODED: usize = length_prefix(N) + N;
}
impl<T: WireSize, const N: usize> WireSize for heapless::Vec<T, N> {
    const MAX_ENCODED: usize = length_prefix(N) + N * T::MAX_ENCODED;
}

impl WireSize for CacheId {
    const MAX_ENCODED: usize = u32::MAX_ENCODED;
}
impl WireSize for Handle {
    const MAX_ENCODED: usize = u64::MAX_ENCODED;
}

impl WireSize for Corruption {
    const MAX_ENCODED: usize =
        CacheId::MAX_ENCODED + Handle::MAX_ENCODED + i32::MAX_ENCODED + u8::MAX_ENCODED + u8::MAX_ENCODED;
}

impl WireSize for Error {
    const MAX_ENCODED: usize = ENUM_TAG
        + max_of(&[
            0,                       // unit variants
            u32::MAX_ENCODED,        // CacheBusy { live }
            Corruption::MAX_ENCODED, // PoisonCorrupted, RedZoneCorrupted
            u16::MAX_ENCODED,        // VersionMismatch { server }
        ]);
}

impl WireSize for crate::SlabInfoRow {
    const MAX_ENCODED: usize =
        u16::MAX_ENCODED + heapless::String::<{ crate::CACHE_NAME_MAX }>::MAX_ENCODED + 7 * u32::MAX_ENCODED;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_bounds_match_postcard() {
        let mut buf = [0u8; 16];
        assert_eq!(postcard::to_slice(&u16::MAX, &mut buf).unwrap().len(), <u16 as WireSize>::MAX_ENCODED);
        assert_eq!(postcard::to_slice(&u32::MAX, &mut buf).unwrap().len(), <u32 as WireSize>::MAX_ENCODED);
        assert_eq!(postcard::to_slice(&u64::MAX, &mut buf).unwrap().len(), <u64 as WireSize>::MAX_ENCODED);
        assert_eq!(postcard::to_slice(&i32::MIN, &mut buf).unwrap().len(), <i32 as WireSize>::MAX_ENCODED);
        assert_eq!(length_prefix(0), 1);
        assert_eq!(length_prefix(127), 1);
        assert_eq!(length_prefix(128), 2);
    }
}

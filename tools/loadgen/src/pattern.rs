//! The object pattern: every allocated object is filled with a pattern derived from a tag
//! unique to that allocation, and checked before it is freed. Two live objects that overlap
//! (a handle handed out twice, a slab mapped twice) overwrite each other's pattern; an object
//! the allocator scribbled on shows a wrong byte. Either is reported with its offset.
//!
//! Word `i` of an object holds `tag + i`; a tail shorter than 8 bytes holds the low bytes of
//! `tag + words`. The constructor state of the `ctor` workload is every byte `CTOR_BYTE`.

use std::fmt;
use std::ptr::NonNull;

/// Every byte of a constructed object.
pub const CTOR_BYTE: u8 = 0xC7;

/// A byte that differs from what the pattern (or the constructor) put there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset in the object.
    pub offset: usize,
    /// The byte found.
    pub found: u8,
    /// The byte expected.
    pub expected: u8,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {} is {:#04x}, expected {:#04x}", self.offset, self.found, self.expected)
    }
}

/// Writes the pattern of `tag` over `size` bytes at `object`.
///
/// # Safety
/// - `object .. object + size` is writable memory owned by the caller and 8-byte aligned.
pub unsafe fn fill(object: NonNull<u8>, size: usize, tag: u64) {
    let words = size / 8;
    let base = object.as_ptr();
    for i in 0..words {
        // SAFETY: i * 8 + 8 <= size, in the caller's object; aligned as the object is.
        unsafe { base.cast::<u64>().add(i).write(tag.wrapping_add(i as u64)) };
    }
    let tail = tag.wrapping_add(words as u64).to_le_bytes();
    for (k, &byte) in tail.iter().enumerate().take(size % 8) {
        // SAFETY: words * 8 + k < size.
        unsafe { base.add(words * 8 + k).write(byte) };
    }
}

/// Checks that `size` bytes at `object` still hold the pattern of `tag`.
///
/// # Safety
/// - `object .. object + size` is readable memory owned by the caller and 8-byte aligned.
pub unsafe fn check(object: NonNull<u8>, size: usize, tag: u64) -> Result<(), Corruption> {
    let words = size / 8;
    let base = object.as_ptr();
    for i in 0..words {
        let expected = tag.wrapping_add(i as u64);
        // SAFETY: as in `fill`.
        let found = unsafe { base.cast::<u64>().add(i).read() };
        if found != expected {
            return Err(first_difference(i * 8, found, expected));
        }
    }
    let tail = tag.wrapping_add(words as u64).to_le_bytes();
    for (k, &expected) in tail.iter().enumerate().take(size % 8) {
        // SAFETY: words * 8 + k < size.
        let found = unsafe { base.add(words * 8 + k).read() };
        if found != expected {
            return Err(Corruption { offset: words * 8 + k, found, expected });
        }
    }
    Ok(())
}

/// The constructor of the `ctor` workload: every byte `CTOR_BYTE`.
///
/// # Safety
/// - `object .. object + size` is writable memory owned by the caller.
pub unsafe fn construct(object: NonNull<u8>, size: usize) {
    // SAFETY: the caller's object.
    unsafe { object.as_ptr().write_bytes(CTOR_BYTE, size) };
}

/// Checks that an object is in its constructed state.
///
/// # Safety
/// - `object .. object + size` is readable memory owned by the caller.
pub unsafe fn check_constructed(object: NonNull<u8>, size: usize) -> Result<(), Corruption> {
    // SAFETY: the caller's object.
    let bytes = unsafe { std::slice::from_raw_parts(object.as_ptr(), size) };
    match bytes.iter().position(|&b| b != CTOR_BYTE) {
        None => Ok(()),
        Some(offset) => Err(Corruption { offset, found: bytes[offset], expected: CTOR_BYTE }),
    }
}

fn first_difference(word_offset: usize, found: u64, expected: u64) -> Corruption {
    let (f, e) = (found.to_le_bytes(), expected.to_le_bytes());
    let k = (0..8).find(|&k| f[k] != e[k]).unwrap_or(0);
    Corruption { offset: word_offset + k, found: f[k], expected: e[k] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(buf: &mut [u64]) -> NonNull<u8> {
        NonNull::new(buf.as_mut_ptr().cast()).unwrap()
    }

    #[test]
    fn a_filled_object_checks_clean_at_every_size() {
        let mut buf = [0u64; 64];
        for size in [1, 7, 8, 9, 54, 64, 511] {
            let p = object(&mut buf);
            // SAFETY: buf has 512 bytes, 8-byte aligned.
            unsafe {
                fill(p, size, 0xABCD_0000 + size as u64);
                assert_eq!(check(p, size, 0xABCD_0000 + size as u64), Ok(()));
            }
        }
    }

    #[test]
    fn a_corrupted_byte_is_found_with_its_offset() {
        let mut buf = [0u64; 8];
        for offset in [0, 5, 8, 40, 60] {
            let p = object(&mut buf);
            // SAFETY: 64 bytes, aligned; offset < 61.
            unsafe {
                fill(p, 61, 42);
                let byte = p.as_ptr().add(offset);
                let before = byte.read();
                byte.write(before ^ 0x10);
                assert_eq!(check(p, 61, 42), Err(Corruption { offset, found: before ^ 0x10, expected: before }));
            }
        }
    }

    #[test]
    fn a_shared_object_is_detected() {
        // Two live allocations handed the same memory: the second fill overwrites the first.
        let mut buf = [0u64; 4];
        let p = object(&mut buf);
        // SAFETY: 32 bytes, aligned.
        unsafe {
            fill(p, 32, 1);
            fill(p, 32, 2);
            assert!(check(p, 32, 1).is_err());
            assert_eq!(check(p, 32, 2), Ok(()));
        }
    }

    #[test]
    fn constructed_state_is_checked() {
        let mut buf = [0u64; 2];
        let p = object(&mut buf);
        // SAFETY: 16 bytes.
        unsafe {
            construct(p, 16);
            assert_eq!(check_constructed(p, 16), Ok(()));
            p.as_ptr().add(3).write(0);
            assert_eq!(check_constructed(p, 16), Err(Corruption { offset: 3, found: 0, expected: CTOR_BYTE }));
        }
    }
}

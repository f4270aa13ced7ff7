//! peer-memory: memory that another party may write at any moment, reached only by copying.
//!
//! # Design
//! A [`PeerMemory`] is a mapped range shared with a peer that is not trusted to leave it alone:
//! a client's window and control region as the server sees them, the control region as the
//! client library sees it (the server writes its tables there while another thread waits for a
//! reply). Rust must never hold a reference into such memory (the compiler may assume the bytes
//! behind a `&T` do not change, and re-read or cache them), so every access here is a copy made
//! with volatile reads or writes: a copy in, then validation of the private copy, then action
//! (STYLE rule 6, ARCHITECTURE rule 10). Bulk copies move aligned 8-byte words (bytes at the
//! unaligned ends); values of `zerocopy` types go through byte copies, so any bit pattern the
//! peer left is a valid value and a torn copy is only ever something to validate. Every access
//! is bounds-checked against the range and answers `false` / `None` out of range, never panics.
//!
//! rust-sel4's `sel4-shared-memory` (volatile "distrustful" operations over `zerocopy` types)
//! is the model; this crate is the small part of it this project needs, `no_std` and
//! dependency-free apart from `zerocopy`, so the server, the seL4 task and the client library
//! share one implementation. The only `unsafe` of shared-memory access in the project is
//! here and in the constructors' callers' promise ([`PeerMemory::new`]).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

use zerocopy::{FromBytes, Immutable, IntoBytes};

const WORD: usize = size_of::<u64>();

/// A range of memory a peer may read and write concurrently. Accessed only through volatile
/// copies; cheap to copy around as a description of the range (it owns no mapping).
#[derive(Clone, Copy, Debug)]
pub struct PeerMemory {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a PeerMemory is an address range; all access is by volatile copies that are sound
// whatever any other thread or process writes at the same time (no reference is formed).
unsafe impl Send for PeerMemory {}
// SAFETY: as above: `&PeerMemory` only allows volatile copies and address arithmetic.
unsafe impl Sync for PeerMemory {}

impl PeerMemory {
    /// The `len` bytes at `base`.
    ///
    /// # Safety
    /// - `base .. base + len` is mapped readable and writable for as long as this value (or any
    ///   copy or sub-range of it) is used, and `base + len` does not wrap;
    /// - no Rust reference to any of those bytes exists or is created while it is used (they
    ///   are reached only through `PeerMemory` or other raw, volatile or atomic access).
    pub const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        PeerMemory { base, len }
    }

    /// Size in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first byte (for address arithmetic only).
    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The bytes `offset .. offset + len` as a range of their own, if they lie inside.
    pub fn sub(&self, offset: usize, len: usize) -> Option<PeerMemory> {
        let start = self.start(offset, len)?;
        // SAFETY: `start + len <= self.len`, so the sub-range is inside this one (which
        // `new`'s contract covers) and the result is non-null.
        Some(PeerMemory { base: unsafe { self.base.add(start) }, len })
    }

    /// `offset` if `offset .. offset + len` lies inside.
    #[inline]
    fn start(&self, offset: usize, len: usize) -> Option<usize> {
        (offset.checked_add(len)? <= self.len).then_some(offset)
    }

    /// Pointer to byte `offset`; the caller checked the range.
    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(offset)
    }

    /// Copies `dst.len()` bytes at `offset` out; `false` (and `dst` untouched) if out of range.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        let Some(start) = self.start(offset, dst.len()) else { return false };
        let src = self.at(start);
        // Bytes up to the first aligned word, whole words, then the bytes left.
        let lead = src.addr().wrapping_neg() % WORD;
        let (head, rest) = dst.split_at_mut(lead.min(dst.len()));
        for (i, out) in head.iter_mut().enumerate() {
            // SAFETY: inside the range (checked by `start`); one byte needs no alignment; a
            // volatile read of shared memory is defined whatever the peer writes.
            *out = unsafe { src.wrapping_add(i).read_volatile() };
        }
        let words = src.wrapping_add(head.len());
        let mut chunks = rest.chunks_exact_mut(WORD);
        let mut done = 0;
        for out in &mut chunks {
            // SAFETY: `words + done .. + 8` lies inside the range and is aligned for u64.
            let word = unsafe { words.wrapping_add(done).cast::<u64>().read_volatile() };
            out.copy_from_slice(&word.to_ne_bytes());
            done += WORD;
        }
        for (i, out) in chunks.into_remainder().iter_mut().enumerate() {
            // SAFETY: inside the range; one byte.
            *out = unsafe { words.wrapping_add(done + i).read_volatile() };
        }
        true
    }

    /// Copies `src` in at `offset`; `false` (nothing written) if out of range.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        let Some(start) = self.start(offset, src.len()) else { return false };
        let dst = self.at(start);
        let lead = dst.addr().wrapping_neg() % WORD;
        let (head, rest) = src.split_at(lead.min(src.len()));
        for (i, &byte) in head.iter().enumerate() {
            // SAFETY: inside the range (checked by `start`), mapped writable (`new`); no
            // reference to it exists.
            unsafe { dst.wrapping_add(i).write_volatile(byte) };
        }
        let words = dst.wrapping_add(head.len());
        let mut chunks = rest.chunks_exact(WORD);
        let mut done = 0;
        for bytes in &mut chunks {
            let mut word = [0u8; WORD];
            word.copy_from_slice(bytes);
            // SAFETY: `words + done .. + 8` lies inside the range, aligned for u64, writable.
            unsafe { words.wrapping_add(done).cast::<u64>().write_volatile(u64::from_ne_bytes(word)) };
            done += WORD;
        }
        for (i, &byte) in chunks.remainder().iter().enumerate() {
            // SAFETY: inside the range, writable.
            unsafe { words.wrapping_add(done + i).write_volatile(byte) };
        }
        true
    }

    /// Sets `len` bytes at `offset` to `byte`; `false` (nothing written) if out of range.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> bool {
        let Some(start) = self.start(offset, len) else { return false };
        let dst = self.at(start);
        let pattern = u64::from_ne_bytes([byte; WORD]);
        let mut i = 0;
        while i < len {
            let p = dst.wrapping_add(i);
            if p.addr().is_multiple_of(WORD) && len - i >= WORD {
                // SAFETY: inside the range, aligned, writable (as in `write`).
                unsafe { p.cast::<u64>().write_volatile(pattern) };
                i += WORD;
            } else {
                // SAFETY: inside the range, writable.
                unsafe { p.write_volatile(byte) };
                i += 1;
            }
        }
        true
    }

    /// A copy of the `T` at `offset` (any alignment): whatever bytes are there, as a `T`.
    pub fn read_value<T: FromBytes + IntoBytes>(&self, offset: usize) -> Option<T> {
        let mut value = T::new_zeroed();
        self.read(offset, value.as_mut_bytes()).then_some(value)
    }

    /// Writes `value` at `offset` (any alignment); `false` if out of range.
    pub fn write_value<T: IntoBytes + Immutable>(&self, offset: usize, value: &T) -> bool {
        self.write(offset, value.as_bytes())
    }

    /// The aligned u64 at `offset`, read with one volatile load; `None` if out of range or
    /// misaligned.
    #[inline]
    pub fn load_u64(&self, offset: usize) -> Option<u64> {
        let start = self.start(offset, WORD)?;
        let p = self.at(start);
        if !p.addr().is_multiple_of(WORD) {
            return None;
        }
        // SAFETY: inside the range and aligned (checked above); a volatile load is defined
        // whatever the peer writes.
        Some(unsafe { p.cast::<u64>().read_volatile() })
    }

    /// The aligned u32 at `offset`, read with one volatile load; `None` if out of range or
    /// misaligned.
    #[inline]
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        let start = self.start(offset, 4)?;
        let p = self.at(start);
        if !p.addr().is_multiple_of(4) {
            return None;
        }
        // SAFETY: inside the range and aligned (checked above); a volatile load is defined
        // whatever the peer writes.
        Some(unsafe { p.cast::<u32>().read_volatile() })
    }

    /// Stores `value` into the aligned u32 at `offset` with one volatile store; `false` if out
    /// of range or misaligned.
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32) -> bool {
        let Some(start) = self.start(offset, 4) else { return false };
        let p = self.at(start);
        if !p.addr().is_multiple_of(4) {
            return false;
        }
        // SAFETY: inside the range, aligned, writable (checked above and by `new`).
        unsafe { p.cast::<u32>().write_volatile(value) };
        true
    }

    /// The u64 at `offset`, read with one volatile load and no check: for a hot path that
    /// proved the range once (a table that covers every index it can be asked for).
    ///
    /// # Safety
    /// `offset + 8 <= self.len()`, and `self.addr() + offset` is 8-byte aligned.
    #[inline(always)]
    pub unsafe fn load_u64_unchecked(&self, offset: usize) -> u64 {
        // SAFETY: inside the range and aligned (the caller's promise); a volatile load is
        // defined whatever the peer writes.
        unsafe { self.at(offset).cast::<u64>().read_volatile() }
    }

    /// Stores `value` into the aligned u64 at `offset` with one volatile store; `false` if out
    /// of range or misaligned.
    #[inline]
    pub fn store_u64(&self, offset: usize, value: u64) -> bool {
        let Some(start) = self.start(offset, WORD) else { return false };
        let p = self.at(start);
        if !p.addr().is_multiple_of(WORD) {
            return false;
        }
        // SAFETY: inside the range, aligned, writable (checked above and by `new`).
        unsafe { p.cast::<u64>().write_volatile(value) };
        true
    }

    /// The aligned u64 at `offset` as an atomic, for counters both parties update in place
    /// (an atomic is the one kind of reference that is sound to shared, concurrently written
    /// memory); `None` if out of range or misaligned.
    pub fn atomic_u64(&self, offset: usize) -> Option<&AtomicU64> {
        let start = self.start(offset, WORD)?;
        let p = self.at(start);
        if !p.addr().is_multiple_of(align_of::<AtomicU64>()) {
            return None;
        }
        // SAFETY: inside the range, aligned for AtomicU64 (checked above); mapped for as long
        // as `self` is used (`new`), which the returned lifetime is tied to; every access
        // through it is atomic, so a peer's concurrent atomic or plain writes cannot make a
        // Rust read undefined (at worst it sees the peer's value).
        Some(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }
}

#[cfg(test)]
mod tests;

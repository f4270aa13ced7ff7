//! A `MAP_SHARED` mapping of a memfd the server passed, unmapped on drop.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::os::fd::AsFd;
use std::ptr::{self, NonNull};

use peer_memory::PeerMemory;
use rustix::mm::{MapFlags, ProtFlags};

/// A shared mapping of a whole memfd. The server may write it at any time, so it is exposed
/// only as a raw pointer and by copying ([`read`](Mapping::read), [`write`](Mapping::write)),
/// never as a Rust reference.
#[derive(Debug)]
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is a plain address range owned by this value; nothing in it is
// thread-affine, and all access goes through raw pointers whose synchronisation is the
// caller's business.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps all of `fd` (its size from `fstat`) read-write and shared.
    pub fn of(fd: impl AsFd) -> io::Result<Mapping> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        let len = usize::try_from(size).ok().filter(|&l| l > 0).ok_or(io::ErrorKind::InvalidData)?;
        // SAFETY: a fresh kernel-chosen mapping (null hint, no MAP_FIXED) overlaps no Rust
        // object. The server sealed the memfd against shrinking, so no page of it can vanish
        // under the mapping.
        let base = unsafe {
            rustix::mm::mmap(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, &fd, 0)?
        };
        let base = NonNull::new(base.cast::<u8>()).ok_or(io::ErrorKind::OutOfMemory)?;
        Ok(Mapping { base, len })
    }

    /// Maps all of `fd` like [`of`](Mapping::of), at an address that is a multiple of `align`
    /// (a power of two): reserves `len + align` bytes of address space without access, maps
    /// the memfd over the aligned part of it (`MAP_FIXED`) and gives the rest back. The
    /// client's window is mapped so, at [`protocol::WINDOW_BASE_ALIGN`], so that the natural
    /// alignment of power-of-two kmallocs (an offset property) holds for addresses.
    pub fn of_aligned(fd: impl AsFd, align: usize) -> io::Result<Mapping> {
        if !align.is_power_of_two() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let size = rustix::fs::fstat(&fd)?.st_size;
        let len = usize::try_from(size).ok().filter(|&l| l > 0).ok_or(io::ErrorKind::InvalidData)?;
        let reserve = len.checked_add(align).ok_or(io::ErrorKind::OutOfMemory)?;
        // SAFETY: a fresh kernel-chosen anonymous mapping without access (null hint, no
        // MAP_FIXED) overlaps no Rust object.
        let area =
            unsafe { rustix::mm::mmap_anonymous(ptr::null_mut(), reserve, ProtFlags::empty(), MapFlags::PRIVATE)? };
        let start = area.addr();
        let aligned = start.next_multiple_of(align);
        let head = aligned - start;
        let tail = reserve - head - len;
        // SAFETY: `aligned .. aligned + len` lies inside the reservation just made, which this
        // function owns and nothing else refers to; MAP_FIXED replaces that part of it with the
        // memfd (sealed against shrinking by the server, so no page can vanish under it).
        let mapped = unsafe {
            rustix::mm::mmap(
                area.with_addr(aligned),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED,
                &fd,
                0,
            )
        };
        let base = match mapped {
            Ok(base) => base,
            Err(e) => {
                // SAFETY: the whole reservation is ours and unused.
                let _ = unsafe { rustix::mm::munmap(area, reserve) };
                return Err(e.into());
            }
        };
        // SAFETY: the head and the tail of the reservation are ours, unused, and outside the
        // memfd mapping. Failing to give them back only leaves inaccessible address space.
        unsafe {
            if head > 0 {
                let _ = rustix::mm::munmap(area, head);
            }
            if tail > 0 {
                let _ = rustix::mm::munmap(area.with_addr(aligned + len), tail);
            }
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or(io::ErrorKind::OutOfMemory)?;
        Ok(Mapping { base, len })
    }

    /// The first byte.
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty memfd is refused by [`of`](Mapping::of).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn start(&self, offset: usize, len: usize) -> Option<usize> {
        (offset.checked_add(len)? <= self.len).then_some(offset)
    }

    /// Copies bytes out at `offset`; `false` (nothing copied) if out of range.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        let Some(start) = self.start(offset, buf.len()) else { return false };
        // SAFETY: `start + buf.len() <= len`, so the source is inside the mapping; `buf` is
        // private memory, disjoint from it.
        unsafe { ptr::copy_nonoverlapping(self.base.as_ptr().add(start), buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// The mapping as distrusted memory (the server writes it concurrently), for word access;
    /// used only while `self` lives.
    fn peer(&self) -> PeerMemory {
        // SAFETY: `base .. base + len` is mapped read-write until `self` is dropped, and the
        // value is used only within a borrow of `self`; nothing here makes a Rust reference
        // into the mapping.
        unsafe { PeerMemory::new(self.base, self.len) }
    }

    /// The aligned u32 at `offset`, read with one volatile load (the server may be writing
    /// it); `None` if out of range or misaligned.
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        self.peer().load_u32(offset)
    }

    /// Stores `value` into the aligned u32 at `offset` with one volatile store; `false` if out
    /// of range or misaligned.
    pub fn store_u32(&self, offset: usize, value: u32) -> bool {
        self.peer().store_u32(offset, value)
    }

    /// Copies `data` in at `offset`; `false` (nothing copied) if out of range.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        let Some(start) = self.start(offset, data.len()) else { return false };
        // SAFETY: as in `read`, the destination is inside the mapping and disjoint from `data`.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(start), data.len()) };
        true
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `of`, owned by this value and unmapped only here. Pointers
        // handed out by `base()` must not be used after the Mapping is dropped (documented on
        // `Connection::window_base`).
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast::<c_void>(), self.len) };
    }
}

//! The two shared mappings a client has: its window (objects) and its control region
//! (magazines, and the server's cache and page-owner tables). All raw-pointer access of the
//! library lives here.

use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU64;

use protocol::Handle;
use protocol::control::{
    self, CACHE_ENTRY_SIZE, CacheEntry, ControlLayout, MAGAZINE_MAX, Magazine, MagazineRole, PAGE_OWNER_SIZE, PageOwner,
};
use zerocopy::{FromBytes, IntoBytes};

/// The client's window: objects live at `base + handle`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a Window is an address range; the memory behind it is shared memory that the
// library only accesses through objects the server handed out, and every object is used by
// one owner at a time (the kmem_cache contract).
unsafe impl Send for Window {}
// SAFETY: as above; &Window only exposes address arithmetic.
unsafe impl Sync for Window {}

impl Window {
    /// A window of `len` bytes at `base`.
    ///
    /// # Safety
    /// - `base .. base + len` is mapped readable and writable for as long as the window (or any
    ///   pointer derived from it) is used.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Window { base, len }
    }

    /// The window's first byte.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the object `handle` (of `size` bytes), if it lies in the window.
    pub fn ptr(&self, handle: Handle, size: usize) -> Option<NonNull<u8>> {
        let offset = usize::try_from(handle.0).ok()?;
        if offset.checked_add(size)? > self.len {
            return None;
        }
        // SAFETY: offset + size <= len, so the result stays inside the mapping (in bounds of
        // the same allocation) and is non-null.
        Some(unsafe { self.base.add(offset) })
    }

    /// Zeroes `len` bytes of an object at `ptr` (`kmem_cache_zalloc()` on the magazine path);
    /// `false` if the range is not inside the window.
    pub fn zero(&self, ptr: NonNull<u8>, len: usize) -> bool {
        self.fill(ptr, len, 0)
    }

    /// Fills `len` bytes at `ptr` with `byte`; `false` if the range is not inside the window.
    pub fn fill(&self, ptr: NonNull<u8>, len: usize, byte: u8) -> bool {
        let Some(handle) = self.handle(ptr) else { return false };
        if (handle.0 as usize).checked_add(len).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: ptr .. ptr + len lies inside the mapping (checked just above).
        unsafe { ptr.as_ptr().write_bytes(byte, len) };
        true
    }

    /// Copies `dst.len()` bytes at `ptr` out; `false` if the range is not inside the window.
    pub fn read(&self, ptr: NonNull<u8>, dst: &mut [u8]) -> bool {
        let Some(handle) = self.handle(ptr) else { return false };
        if (handle.0 as usize).checked_add(dst.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: the source lies inside the mapping (checked just above); `dst` is private.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies `len` bytes from the object at `from` to the object at `to` (`krealloc`);
    /// `false` if either range is not inside the window.
    pub fn copy(&self, from: NonNull<u8>, to: NonNull<u8>, len: usize) -> bool {
        let inside = |p: NonNull<u8>| {
            self.handle(p).is_some_and(|h| (h.0 as usize).checked_add(len).is_some_and(|end| end <= self.len))
        };
        if !inside(from) || !inside(to) {
            return false;
        }
        // SAFETY: both ranges lie inside the mapping (checked just above); `ptr::copy` allows
        // them to overlap.
        unsafe { ptr::copy(from.as_ptr(), to.as_ptr(), len) };
        true
    }

    /// The handle of an address in the window.
    pub fn handle(&self, ptr: NonNull<u8>) -> Option<Handle> {
        let offset = (ptr.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        (offset < self.len).then_some(Handle(offset as u64))
    }
}

/// The control region: magazine slots shared with the server.
#[derive(Clone, Copy, Debug)]
pub struct Control {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is only touched under the owning cache's lock (see `Cache`), and the
// server only writes a slot while the client waits for that slot's exchange reply.
unsafe impl Send for Control {}
// SAFETY: as above.
unsafe impl Sync for Control {}

impl Control {
    /// A control region of `len` bytes at `base`.
    ///
    /// # Safety
    /// - `base .. base + len` is mapped readable and writable, 8-byte aligned, for as long as
    ///   the region is used.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Control { base, len }
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies bytes out of the region (the header check, tests).
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(dst.len()) else { return false };
        if end > self.len {
            return false;
        }
        // SAFETY: offset..end is inside the mapping; u8 has no alignment needs.
        unsafe { ptr::copy_nonoverlapping(self.base.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies bytes into the region.
    pub fn write(&self, offset: usize, src: &[u8]) -> bool {
        let Some(end) = offset.checked_add(src.len()) else { return false };
        if end > self.len {
            return false;
        }
        // SAFETY: offset..end is inside the mapping.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(offset), src.len()) };
        true
    }

    /// The library's magazine counters in the region's header (`ControlHeader::alloc_hits`,
    /// `free_hits`, `magazine_misses`), as atomics the fast path increments in place and the
    /// server copies into `Stats`. `None` if the region is shorter than its header.
    pub fn published_counters(&self) -> Option<PublishedCounters<'_>> {
        if self.len < control::HEADER_SIZE {
            return None;
        }
        let at = |offset: usize| {
            // SAFETY: offset + 8 <= HEADER_SIZE <= len, so the u64 lies inside the mapping;
            // the base is 8-byte aligned (`Control::new`) and the offsets are multiples of 8,
            // so it is aligned for AtomicU64. The memory stays mapped while `self` is used,
            // and is only ever accessed atomically by this process (the server copies it
            // with plain reads, which can at worst see a stale value: it is informational).
            unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast::<u64>()) }
        };
        Some(PublishedCounters {
            alloc_hits: at(control::ALLOC_HITS_OFFSET),
            free_hits: at(control::FREE_HITS_OFFSET),
            misses: at(control::MAGAZINE_MISSES_OFFSET),
        })
    }

    /// Whether `slot` lies wholly inside the region (checked once, when a cache gets it).
    pub fn has_slot(&self, slot: u16) -> bool {
        control::slot_offset(slot.saturating_add(1)) <= self.len
    }

    /// The magazine `role` of `slot`. The caller checked [`Control::has_slot`].
    fn magazine(&self, slot: u16, role: MagazineRole) -> *mut Magazine {
        // SAFETY: has_slot(slot) held when the slot was bound, so the offset is inside the
        // mapping; offsets are multiples of 8 and the base is page aligned.
        unsafe { self.base.as_ptr().add(control::magazine_offset(slot, role)).cast::<Magazine>() }
    }

    /// Pops the top handle of the loaded magazine of `slot`, if it has one.
    #[inline]
    pub fn pop(&self, slot: u16) -> Option<u64> {
        let m = self.magazine(slot, MagazineRole::Loaded);
        // SAFETY: `m` points at a Magazine inside the mapping (see `magazine`); only this
        // client writes it outside an exchange, and the cache lock is held.
        unsafe {
            let count = ptr::addr_of!((*m).count).read() as usize;
            let top = count.checked_sub(1).filter(|&t| t < MAGAZINE_MAX)?;
            ptr::addr_of_mut!((*m).count).write(top as u32);
            Some(ptr::addr_of!((*m).handles).cast::<u64>().add(top).read())
        }
    }

    /// Pushes a handle onto the loaded magazine of `slot` unless it holds `capacity`.
    #[inline]
    pub fn push(&self, slot: u16, capacity: u16, handle: u64) -> bool {
        let m = self.magazine(slot, MagazineRole::Loaded);
        // SAFETY: as in `pop`; `count < capacity <= MAGAZINE_MAX` keeps the write in bounds.
        unsafe {
            let count = ptr::addr_of!((*m).count).read() as usize;
            if count >= usize::from(capacity) || count >= MAGAZINE_MAX {
                return false;
            }
            ptr::addr_of_mut!((*m).handles).cast::<u64>().add(count).write(handle);
            ptr::addr_of_mut!((*m).count).write(count as u32 + 1);
            true
        }
    }

    /// Handles in a magazine of `slot`.
    #[inline]
    pub fn count(&self, slot: u16, role: MagazineRole) -> u32 {
        // SAFETY: as in `pop`.
        unsafe { ptr::addr_of!((*self.magazine(slot, role)).count).read() }
    }

    /// Handle `index` of a magazine (for running ctors on fresh objects after a refill).
    pub fn handle(&self, slot: u16, role: MagazineRole, index: usize) -> Option<u64> {
        if index >= MAGAZINE_MAX {
            return None;
        }
        // SAFETY: index < MAGAZINE_MAX keeps the read inside the magazine.
        Some(unsafe { ptr::addr_of!((*self.magazine(slot, role)).handles).cast::<u64>().add(index).read() })
    }

    /// Copies `W` 8-byte words at `offset` (a multiple of 8) with volatile reads: the server
    /// may write its tables while another thread of this client waits for a reply, so they are
    /// never read through Rust references. `None` if the words are outside the region.
    #[inline]
    fn read_words<const W: usize>(&self, offset: usize) -> Option<[u64; W]> {
        if !offset.is_multiple_of(8) || offset.checked_add(W * 8)? > self.len {
            return None;
        }
        let mut out = [0u64; W];
        for (i, word) in out.iter_mut().enumerate() {
            // SAFETY: offset + 8 i + 8 <= len: inside the mapping; the base is 8-byte aligned
            // (`Control::new`) and so is the offset. A volatile read of shared memory is
            // defined whatever the peer writes.
            *word = unsafe { self.base.as_ptr().add(offset + 8 * i).cast::<u64>().read_volatile() };
        }
        Some(out)
    }

    /// The server's cache-table entry `index` (its description of the client's cache slot
    /// `index`), if the index lies in the table.
    pub fn cache_entry(&self, layout: &ControlLayout, index: u16) -> Option<CacheEntry> {
        if index >= layout.caches {
            return None;
        }
        let words = self.read_words::<{ CACHE_ENTRY_SIZE / 8 }>(layout.cache_entry_offset(index))?;
        CacheEntry::read_from_bytes(words.as_bytes()).ok()
    }

    /// The server's page-owner entry of window page `page`, if the page lies in the window.
    #[inline]
    pub fn page_owner(&self, layout: &ControlLayout, page: u32) -> Option<PageOwner> {
        if page >= layout.window_pages {
            return None;
        }
        let [word] = self.read_words::<{ PAGE_OWNER_SIZE / 8 }>(layout.page_owner_offset(page))?;
        PageOwner::read_from_bytes(&word.to_ne_bytes()).ok()
    }

    /// Exchanges the loaded and previous magazines of `slot` (Bonwick's swap).
    pub fn swap(&self, slot: u16) {
        let a = self.magazine(slot, MagazineRole::Loaded);
        let b = self.magazine(slot, MagazineRole::Previous);
        // SAFETY: both point at distinct, non-overlapping Magazines inside the mapping.
        unsafe { ptr::swap_nonoverlapping(a, b, 1) };
    }
}

/// The magazine counters a client publishes in its control-region header (see
/// [`Control::published_counters`]).
#[derive(Clone, Copy, Debug)]
pub struct PublishedCounters<'a> {
    /// Allocations served from a magazine without IPC.
    pub alloc_hits: &'a AtomicU64,
    /// Frees absorbed by a magazine without IPC.
    pub free_hits: &'a AtomicU64,
    /// Allocations and frees that needed an IPC.
    pub misses: &'a AtomicU64,
}

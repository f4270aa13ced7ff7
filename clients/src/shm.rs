//! The two shared mappings a client has: its window (objects) and its control region
//! (magazines, and the server's cache and page-owner tables). The control region is
//! [`PeerMemory`] (the server writes it concurrently); the window holds the client's own
//! objects, reached by address. All raw-pointer access of the library's core lives here.

use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU64;

use peer_memory::PeerMemory;
use protocol::Handle;
use protocol::control::{
    self, CacheEntry, ControlLayout, HANDLES_OFFSET, MAGAZINE_MAX, MAGAZINE_SIZE, MagazineRole, PAGE_OWNER_SIZE,
    PageOwner,
};
use zerocopy::FromBytes;

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

    /// Sets the first 8 bytes of the object at `handle`; `false` if outside or misaligned.
    #[inline]
    pub(crate) fn set_word(&self, handle: u64, value: u64) -> bool {
        let Some(at) = self.word_at(handle) else { return false };
        // SAFETY: as in `word`; the mapping is writable (`Window::new`).
        unsafe { at.write_volatile(value) };
        true
    }

    #[inline]
    fn word_at(&self, handle: u64) -> Option<*mut u64> {
        let offset = usize::try_from(handle).ok()?;
        if offset.checked_add(8)? > self.len || !offset.is_multiple_of(8) {
            return None;
        }
        Some(self.base.as_ptr().wrapping_add(offset).cast::<u64>())
    }

    /// The handle of an address in the window.
    pub fn handle(&self, ptr: NonNull<u8>) -> Option<Handle> {
        let offset = (ptr.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        (offset < self.len).then_some(Handle(offset as u64))
    }
}

/// The control region: magazine slots shared with the server, and the server's tables.
///
/// The server writes its tables here at any time (while another thread of this client waits
/// for a reply), and every thread of the client may reach the region, so it is
/// [`PeerMemory`]: read and written only by volatile copies. The safe methods copy out (the
/// header, the server's cache and page-owner tables) or update the header's counters
/// atomically; the magazines are reached only through a [`SlotView`], which the library gives
/// to the cache bound to the slot and uses under that slot's lock.
#[derive(Debug)]
pub struct Control {
    memory: PeerMemory,
}

impl Control {
    /// A control region of `len` bytes at `base`.
    ///
    /// # Safety
    /// - `base .. base + len` is mapped readable and writable, 8-byte aligned, for as long as
    ///   the region is used, and nothing forms a Rust reference into it (the peer and this
    ///   library reach it only by volatile or atomic access).
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        // SAFETY: the caller's promise is `PeerMemory::new`'s.
        Control { memory: unsafe { PeerMemory::new(base, len) } }
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.memory.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.memory.is_empty()
    }

    /// Copies bytes out of the region (the header check, tests).
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> bool {
        self.memory.read(offset, dst)
    }

    /// The library's magazine counters in the region's header (`ControlHeader::alloc_hits`,
    /// `free_hits`, `magazine_misses`), as atomics the library adds to in place and the
    /// server copies into `Stats`. `None` if the region is shorter than its header.
    pub fn published_counters(&self) -> Option<PublishedCounters<'_>> {
        Some(PublishedCounters {
            alloc_hits: self.memory.atomic_u64(control::ALLOC_HITS_OFFSET)?,
            free_hits: self.memory.atomic_u64(control::FREE_HITS_OFFSET)?,
            misses: self.memory.atomic_u64(control::MAGAZINE_MISSES_OFFSET)?,
        })
    }

    /// Whether `slot` lies wholly inside the region (checked once, when a cache gets it).
    pub fn has_slot(&self, slot: u16) -> bool {
        control::slot_offset(slot.saturating_add(1)) <= self.len()
    }

    /// The server's page-owner table (one 8-byte [`PageOwner`] per window page) as a range of
    /// its own, so the hardened free's lookup is one bounds check and one load.
    pub(crate) fn page_owner_table(&self, layout: &ControlLayout) -> Option<PeerMemory> {
        self.memory.sub(layout.page_owners_offset(), layout.window_pages as usize * PAGE_OWNER_SIZE)
    }

    /// The magazines of `slot`, for the cache bound to it (crate-private: only a cache's
    /// [`Magazines`](crate::cache) hold one, and use it under the slot's lock).
    pub(crate) fn slot(&self, slot: u16) -> Option<SlotView> {
        Some(SlotView {
            loaded: self.memory.sub(control::magazine_offset(slot, MagazineRole::Loaded), MAGAZINE_SIZE)?,
            previous: self.memory.sub(control::magazine_offset(slot, MagazineRole::Previous), MAGAZINE_SIZE)?,
        })
    }

    /// The server's cache-table entry `index` (its description of the client's cache slot
    /// `index`), if the index lies in the table.
    pub fn cache_entry(&self, layout: &ControlLayout, index: u16) -> Option<CacheEntry> {
        if index >= layout.caches {
            return None;
        }
        self.memory.read_value::<CacheEntry>(layout.cache_entry_offset(index))
    }

    /// The server's page-owner entry of window page `page`, if the page lies in the window
    /// (one volatile load: it is on the hardened free's path).
    #[inline]
    pub fn page_owner(&self, layout: &ControlLayout, page: u32) -> Option<PageOwner> {
        if page >= layout.window_pages {
            return None;
        }
        let word = self.memory.load_u64(layout.page_owner_offset(page))?;
        PageOwner::read_from_bytes(&word.to_ne_bytes()).ok()
    }
}

/// The two magazines of one slot in the control region (Bonwick's *loaded* and *previous*),
/// reached by volatile copies. Held by the cache bound to the slot; every user holds the slot's
/// lock, and the server writes the slot only while the lock holder waits for its exchange.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotView {
    loaded: PeerMemory,
    previous: PeerMemory,
}

/// `Magazine::count` out of the magazine's first word (`count`, then `pad`, native order).
#[inline]
fn count_of(word: u64) -> usize {
    let b = word.to_ne_bytes();
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// The first word of a magazine holding `count` handles (`pad` zero).
#[inline]
fn count_word(count: usize) -> u64 {
    let c = (count as u32).to_ne_bytes();
    u64::from_ne_bytes([c[0], c[1], c[2], c[3], 0, 0, 0, 0])
}

/// Offset of handle `index` in a magazine.
#[inline]
fn handle_offset(index: usize) -> usize {
    HANDLES_OFFSET + 8 * index
}

impl SlotView {
    fn magazine(&self, role: MagazineRole) -> &PeerMemory {
        match role {
            MagazineRole::Loaded => &self.loaded,
            MagazineRole::Previous => &self.previous,
        }
    }

    /// Pops the top handle of the loaded magazine, if it has one.
    #[inline]
    pub(crate) fn pop(&self) -> Option<u64> {
        let count = count_of(self.loaded.load_u64(0)?);
        let top = count.checked_sub(1).filter(|&t| t < MAGAZINE_MAX)?;
        let handle = self.loaded.load_u64(handle_offset(top))?;
        self.loaded.store_u64(0, count_word(top));
        Some(handle)
    }

    /// Pushes a handle onto the loaded magazine unless it holds `capacity`.
    #[inline]
    pub(crate) fn push(&self, capacity: u16, handle: u64) -> bool {
        let Some(word) = self.loaded.load_u64(0) else { return false };
        let count = count_of(word);
        if count >= usize::from(capacity) || count >= MAGAZINE_MAX {
            return false;
        }
        self.loaded.store_u64(handle_offset(count), handle) && self.loaded.store_u64(0, count_word(count + 1))
    }

    /// Handles in a magazine.
    #[inline]
    pub(crate) fn count(&self, role: MagazineRole) -> u32 {
        self.magazine(role).load_u64(0).map_or(0, |w| count_of(w) as u32)
    }

    /// Handle `index` of a magazine (for running ctors on fresh objects after a refill).
    pub(crate) fn handle(&self, role: MagazineRole, index: usize) -> Option<u64> {
        if index >= MAGAZINE_MAX {
            return None;
        }
        self.magazine(role).load_u64(handle_offset(index))
    }

    /// Exchanges the loaded and previous magazines (Bonwick's swap): copies both out, writes
    /// them back the other way round.
    pub(crate) fn swap(&self) {
        let mut a = [0u8; MAGAZINE_SIZE];
        let mut b = [0u8; MAGAZINE_SIZE];
        if self.loaded.read(0, &mut a) && self.previous.read(0, &mut b) {
            self.loaded.write(0, &b);
            self.previous.write(0, &a);
        }
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

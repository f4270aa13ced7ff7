//! The two tables the server keeps in a client's control region for the client's own use: the
//! **cache table** (one [`CacheEntry`] per cache slot of the client: id, geometry, magazine
//! slot, kmalloc class) and the **page-owner table** (one [`PageOwner`] per window page: a page
//! of which cache's slab, or of a large kmalloc). With them the client library finds the cache
//! of any object it holds without IPC: `kfree` and `ksize` of any pointer (Linux's
//! `virt_to_slab()`), a hardened free check.
//!
//! Both are **written by the server and never read back**: its own truth (frame descriptors,
//! cache descriptors) stays private, and it writes an entry whenever that truth changes (a
//! cache is created or destroyed, a slab or a large kmalloc takes or releases window pages).
//! A client that scribbles on them only misleads itself: every handle that comes back to the
//! server (a `Free`, a `Kfree`, a drained magazine) is validated against private state.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{ControlLayout, ControlMemory};
use crate::Error;

/// `CacheEntry::slot` of a cache without a magazine slot (a debug cache, or none was free).
pub const NO_SLOT: u16 = u16::MAX;
/// `CacheEntry::kmalloc_class` of a cache that is not a kmalloc cache.
pub const NOT_KMALLOC: u8 = u8::MAX;

/// One cache of the client, as the server describes it (entry `i` is the client's cache slot
/// `i`; `cache` 0 marks an empty entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CacheEntry {
    /// The cache's id (`CacheId.0`), 0 when the slot holds no cache.
    pub cache: u32,
    /// Usable bytes of each object (the size asked for; a kmalloc class's size).
    pub object_size: u32,
    /// Bytes from one object to the next.
    pub stride: u32,
    /// Offset of the first object from the start of its slab (the left red zone).
    pub obj_offset: u32,
    /// The cache's `flags::SLAB_*` bits (debug bits: every operation is an IPC).
    pub flags: u32,
    /// Alignment of every object address.
    pub align: u32,
    /// Objects in one slab.
    pub objects_per_slab: u16,
    /// The magazine slot of the cache, or [`NO_SLOT`].
    pub slot: u16,
    /// Handles per magazine of that slot (0 without one).
    pub capacity: u16,
    /// Index of the kmalloc class (`kmalloc-8` is 0 … `kmalloc-8k` is 12), or [`NOT_KMALLOC`].
    pub kmalloc_class: u8,
    /// Slab order: a slab is `2^order` pages, starting at a multiple of its own size in the
    /// window.
    pub order: u8,
}

/// Bytes of one [`CacheEntry`].
pub const CACHE_ENTRY_SIZE: usize = size_of::<CacheEntry>();
const _: () = assert!(CACHE_ENTRY_SIZE == 32);

/// What a window page holds ([`PageOwner::kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageOwnerKind {
    /// Nothing: the page is not backed (or was released).
    None = 0,
    /// A page of a slab of the cache in `PageOwner::cache`; `value` is the page's index in its
    /// slab (the slab starts `value` pages earlier).
    Slab = 1,
    /// The first page of a large kmalloc of `value` pages.
    Large = 2,
    /// A later page of a large kmalloc; its first page is `value` pages earlier.
    LargeTail = 3,
}

impl PageOwnerKind {
    /// The kind of a raw `PageOwner::kind` byte (`None` for unknown values: the client only
    /// misleads itself by writing one).
    pub const fn from_raw(raw: u8) -> Self {
        match raw {
            1 => PageOwnerKind::Slab,
            2 => PageOwnerKind::Large,
            3 => PageOwnerKind::LargeTail,
            _ => PageOwnerKind::None,
        }
    }
}

/// The owner of one window page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PageOwner {
    /// A [`PageOwnerKind`] as a byte.
    pub kind: u8,
    /// For a slab page: the kmalloc class of the slab's cache (0 `kmalloc-8` … 12
    /// `kmalloc-8k`) or [`NOT_KMALLOC`], so `kfree` finds the class in the one word; 0 for the
    /// other kinds.
    pub kmalloc_class: u8,
    /// For a slab page: the cache-table index (the cache slot) of the slab's cache.
    pub cache: u16,
    /// See [`PageOwnerKind`].
    pub value: u32,
}

/// Bytes of one [`PageOwner`].
pub const PAGE_OWNER_SIZE: usize = size_of::<PageOwner>();
const _: () = assert!(PAGE_OWNER_SIZE == 8);

impl PageOwner {
    /// A page that holds nothing.
    pub const NONE: PageOwner = PageOwner { kind: PageOwnerKind::None as u8, kmalloc_class: 0, cache: 0, value: 0 };

    /// Page `index` of a slab of cache slot `cache`, whose kmalloc class is `kmalloc_class`
    /// ([`NOT_KMALLOC`] for a cache that is none).
    pub const fn slab(cache: u16, kmalloc_class: u8, index: u32) -> Self {
        PageOwner { kind: PageOwnerKind::Slab as u8, kmalloc_class, cache, value: index }
    }

    /// The first page of a large kmalloc of `pages` pages.
    pub const fn large(pages: u32) -> Self {
        PageOwner { kind: PageOwnerKind::Large as u8, kmalloc_class: 0, cache: 0, value: pages }
    }

    /// A page `back` pages after the first page of its large kmalloc.
    pub const fn large_tail(back: u32) -> Self {
        PageOwner { kind: PageOwnerKind::LargeTail as u8, kmalloc_class: 0, cache: 0, value: back }
    }

    /// The entry's kind.
    pub const fn kind(&self) -> PageOwnerKind {
        PageOwnerKind::from_raw(self.kind)
    }
}

/// Writes cache-table entry `index` (the server, when a cache is created, gets or loses its
/// magazine slot, or is destroyed: then `CacheEntry::default()`). `InvalidArgument` if the
/// entry lies outside the table or the region.
pub fn write_cache_entry<M: ControlMemory + ?Sized>(
    mem: &mut M,
    layout: &ControlLayout,
    index: u16,
    entry: &CacheEntry,
) -> Result<(), Error> {
    if index >= layout.caches {
        return Err(Error::InvalidArgument);
    }
    mem.write(layout.cache_entry_offset(index), entry.as_bytes())
}

/// Writes the page-owner entry of window page `page`. `InvalidArgument` if the page lies
/// outside the window or the entry outside the region.
pub fn write_page_owner<M: ControlMemory + ?Sized>(
    mem: &mut M,
    layout: &ControlLayout,
    page: u32,
    owner: &PageOwner,
) -> Result<(), Error> {
    if page >= layout.window_pages {
        return Err(Error::InvalidArgument);
    }
    mem.write(layout.page_owner_offset(page), owner.as_bytes())
}

/// Copies cache-table entry `index` out (tests, debuggers: the server never reads it back).
pub fn read_cache_entry<M: ControlMemory + ?Sized>(
    mem: &M,
    layout: &ControlLayout,
    index: u16,
) -> Result<CacheEntry, Error> {
    if index >= layout.caches {
        return Err(Error::InvalidArgument);
    }
    let mut bytes = [0u8; CACHE_ENTRY_SIZE];
    mem.read(layout.cache_entry_offset(index), &mut bytes)?;
    CacheEntry::read_from_bytes(&bytes).map_err(|_| Error::InvalidArgument)
}

/// Copies the page-owner entry of window page `page` out (tests, debuggers).
pub fn read_page_owner<M: ControlMemory + ?Sized>(
    mem: &M,
    layout: &ControlLayout,
    page: u32,
) -> Result<PageOwner, Error> {
    if page >= layout.window_pages {
        return Err(Error::InvalidArgument);
    }
    let mut bytes = [0u8; PAGE_OWNER_SIZE];
    mem.read(layout.page_owner_offset(page), &mut bytes)?;
    PageOwner::read_from_bytes(&bytes).map_err(|_| Error::InvalidArgument)
}

//! `kmalloc`/`kfree`: per-client general caches `kmalloc-8` … `kmalloc-8k`, and whole pages
//! (contiguous in the window, counted against the quota) above 8 KiB.

use protocol::{ClientId, Error, Handle, PAGE_SIZE};

use super::cache::Located;
use super::storage::{FRAME_LARGE_HEAD, FRAME_LARGE_TAIL, KMALLOC_CLASSES, PAGE_FREED_LARGE};
use super::{BROKEN, Engine, Platform};

/// Object sizes of the kmalloc classes.
pub const KMALLOC_SIZES: [u32; KMALLOC_CLASSES] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
/// Names of the kmalloc classes, as Linux names them.
pub const KMALLOC_NAMES: [&str; KMALLOC_CLASSES] = [
    "kmalloc-8",
    "kmalloc-16",
    "kmalloc-32",
    "kmalloc-64",
    "kmalloc-96",
    "kmalloc-128",
    "kmalloc-192",
    "kmalloc-256",
    "kmalloc-512",
    "kmalloc-1k",
    "kmalloc-2k",
    "kmalloc-4k",
    "kmalloc-8k",
];
/// Largest `kmalloc` (Linux `KMALLOC_MAX_SIZE` on 4 KiB pages is 4 MiB); above → `InvalidArgument`.
pub const KMALLOC_MAX: u32 = 4 << 20;

/// The smallest class holding `size` bytes (`size` in 1..=8192).
pub fn kmalloc_class(size: u32) -> Option<usize> {
    KMALLOC_SIZES.iter().position(|&c| c >= size)
}

impl<P: Platform> Engine<'_, P> {
    /// Create the kmalloc caches of a newly attached (or reclaimed) client.
    pub(crate) fn kmalloc_caches_create(&mut self, client: ClientId) -> Result<(), Error> {
        for (i, (&size, name)) in KMALLOC_SIZES.iter().zip(KMALLOC_NAMES).enumerate() {
            let gi = self.cache_create_inner(client, name, size, 0, 0, false, true)?;
            let slot = (gi % u32::from(self.config.max_caches_per_client)) as u16;
            *self.client_mut(client)?.kmalloc.get_mut(i).ok_or(BROKEN)? = slot;
        }
        Ok(())
    }

    /// Allocate `size` bytes. Corresponds to `kmalloc()`: size 0 → `InvalidArgument`; up to
    /// 8 KiB from the smallest kmalloc class that fits; up to 4 MiB whole pages.
    pub fn kmalloc(&mut self, client: ClientId, size: u32) -> Result<Handle, Error> {
        self.client(client)?;
        if size == 0 || size > KMALLOC_MAX {
            return Err(Error::InvalidArgument);
        }
        match kmalloc_class(size) {
            Some(class) => {
                let slot = *self.client(client)?.kmalloc.get(class).ok_or(BROKEN)?;
                let gi = self.cache_slot(client, slot);
                Ok(self.alloc_one(client, gi, false, true)?.handle)
            }
            None => self.kmalloc_large(client, size.div_ceil(PAGE_SIZE as u32)),
        }
    }

    fn kmalloc_large(&mut self, client: ClientId, pages: u32) -> Result<Handle, Error> {
        self.quota_check(client, pages, 0)?;
        let first = self.window_find(client, pages, 1)?;
        self.pool_check(client, pages)?;
        self.pages_take(client, first, pages, |i| {
            if i == 0 { (FRAME_LARGE_HEAD, pages) } else { (FRAME_LARGE_TAIL, first) }
        })?;
        Ok(Handle(u64::from(first) * PAGE_SIZE as u64))
    }

    /// Free what `kmalloc` returned. Corresponds to `kfree()`: an object of a non-kmalloc
    /// cache → `WrongCache`; not an object → `InvalidObject`; not allocated → `DoubleFree`
    /// (for a large allocation: until its first page is reused).
    pub fn kfree(&mut self, client: ClientId, handle: Handle) -> Result<(), Error> {
        match self.locate(client, handle)? {
            Located::Slab { gi, .. } => {
                if !self.cache(gi)?.is_kmalloc {
                    return Err(Error::WrongCache);
                }
                let (s, idx) = self.validate_free(client, gi, handle)?;
                self.free_prepare(client, gi, s, idx)?;
                self.free_commit(client, gi, s, idx)
            }
            Located::Large { page, pages } => {
                self.pages_release(client, page, pages)?;
                self.page_map_set(client, page, PAGE_FREED_LARGE)
            }
            Located::FreedLarge => Err(Error::DoubleFree),
        }
    }
}

//! `kmalloc`/`kfree`/`krealloc`: per-client general caches `kmalloc-8` … `kmalloc-8k`, and
//! whole pages (contiguous in the window, counted against the quota) above 8 KiB.
//!
//! Linux's rules: a power-of-two size is aligned to itself (the classes of power-of-two sizes
//! are created with that alignment, so red zones cannot shift them; whole pages start at a
//! window page that is a multiple of the largest power of two dividing the size), every other
//! size to at least the largest power of two dividing it. `kfree` takes an object of any cache
//! of the client back to its cache. On a red-zoned kmalloc cache the engine keeps the size each
//! allocation asked for (Linux's `orig_size`, here in the object's private record) and the
//! bytes between it and the class size are red zone too: written while the object is
//! allocated, they are caught on free and by validation.

use protocol::flags::{RED_ACTIVE, SLAB_RED_ZONE};
use protocol::{ClientId, Corruption, Error, Handle, KMALLOC_MAX_SIZE, PAGE_SIZE};

use super::cache::Located;
use super::storage::{CacheDesc, FRAME_LARGE_HEAD, FRAME_LARGE_TAIL, KMALLOC_CLASSES, PAGE_FREED_LARGE};
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
pub const KMALLOC_MAX: u32 = KMALLOC_MAX_SIZE;

/// The smallest class holding `size` bytes (`size` in 1..=8192).
pub fn kmalloc_class(size: u32) -> Option<usize> {
    KMALLOC_SIZES.iter().position(|&c| c >= size)
}

/// The alignment Linux guarantees a `kmalloc` of `size` bytes: the largest power of two
/// dividing it (for a power of two, the size itself).
pub const fn kmalloc_align(size: u32) -> u32 {
    if size == 0 { 1 } else { 1 << size.trailing_zeros() }
}

/// Whether the engine keeps the requested size of the objects of cache `c`: a red-zoned
/// kmalloc cache (its slack past the requested size is red zone).
pub(crate) fn tracks_orig_size(c: &CacheDesc) -> bool {
    c.is_kmalloc && c.flags & SLAB_RED_ZONE != 0
}

impl<P: Platform> Engine<'_, P> {
    /// Create the kmalloc caches of a newly attached (or reclaimed) client, with the debug
    /// flags its `slub_debug` setting gives each class. A class is aligned to the largest
    /// power of two dividing its size (`kmalloc-96` to 32), so a red zone never breaks the
    /// natural alignment of a power-of-two `kmalloc`.
    pub(crate) fn kmalloc_caches_create(&mut self, client: ClientId) -> Result<(), Error> {
        let flags = self.client(client)?.kmalloc_flags;
        for (i, (&size, name)) in KMALLOC_SIZES.iter().zip(KMALLOC_NAMES).enumerate() {
            let class_flags = flags.get(i).copied().unwrap_or(0);
            let gi = self.cache_create_inner(client, name, size, 0, class_flags, false, true)?;
            let slot = (gi % u32::from(self.config.max_caches_per_client)) as u16;
            *self.client_mut(client)?.kmalloc.get_mut(i).ok_or(BROKEN)? = slot;
        }
        Ok(())
    }

    /// The kmalloc cache of class `class` (0: `kmalloc-8` … 12: `kmalloc-8k`) of `client`.
    pub fn kmalloc_cache(&self, client: ClientId, class: usize) -> Option<super::CacheId> {
        let slot = *self.client(client).ok()?.kmalloc.get(class)?;
        self.cache_id(self.cache_slot(client, slot)).ok()
    }

    /// The cache `handle` is an object of (allocated or not), if it is a slab object of
    /// `client`.
    pub fn object_cache(&self, client: ClientId, handle: Handle) -> Option<super::CacheId> {
        match self.locate(client, handle) {
            Ok(Located::Slab { gi, .. }) => self.cache_id(gi).ok(),
            _ => None,
        }
    }

    /// Allocate `size` bytes. Corresponds to `kmalloc()`: size 0 → `InvalidArgument` (the
    /// client library answers `kmalloc(0)` with `ZERO_SIZE_PTR` itself); up to 8 KiB from the
    /// smallest kmalloc class that fits; up to 4 MiB whole pages.
    pub fn kmalloc(&mut self, client: ClientId, size: u32) -> Result<Handle, Error> {
        self.client(client)?;
        if size == 0 || size > KMALLOC_MAX {
            return Err(Error::InvalidArgument);
        }
        match kmalloc_class(size) {
            Some(class) => {
                let slot = *self.client(client)?.kmalloc.get(class).ok_or(BROKEN)?;
                let gi = self.cache_slot(client, slot);
                let handle = self.alloc_one(client, gi, false, true)?.handle;
                if tracks_orig_size(self.cache(gi)?)
                    && let Located::Slab { slab, idx, .. } = self.locate(client, handle)?
                {
                    self.orig_size_set(client, gi, slab, idx, size)?;
                }
                Ok(handle)
            }
            None => self.kmalloc_large(client, size),
        }
    }

    fn kmalloc_large(&mut self, client: ClientId, size: u32) -> Result<Handle, Error> {
        let pages = size.div_ceil(PAGE_SIZE as u32);
        let align = (kmalloc_align(size) / PAGE_SIZE as u32).max(1);
        self.quota_check(client, pages, 0)?;
        let first = self.window_find(client, pages, align)?;
        self.pool_check(client, pages)?;
        self.pages_take(client, first, pages, |i| {
            if i == 0 { (FRAME_LARGE_HEAD, pages) } else { (FRAME_LARGE_TAIL, first) }
        })?;
        Ok(Handle(u64::from(first) * PAGE_SIZE as u64))
    }

    /// Free what `kmalloc` (or `kmem_cache_alloc` of any cache of the client) returned.
    /// Corresponds to `kfree()`: the object goes back to its own cache; not an object →
    /// `InvalidObject`; not allocated → `DoubleFree` (for a large allocation: until its first
    /// page is reused).
    pub fn kfree(&mut self, client: ClientId, handle: Handle) -> Result<(), Error> {
        match self.locate(client, handle)? {
            Located::Slab { gi, .. } => {
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

    /// Resize an object. Corresponds to `krealloc()` (Linux's `__do_krealloc()`), for objects
    /// whose requested size only the engine knows: while `size` fits the object (its object
    /// size, or a large kmalloc's pages) it stays in place: with `zero` the bytes from the old
    /// requested size (or from `size`, when shrinking) to the end are zeroed, and on a
    /// red-zoned kmalloc cache the slack past `size` becomes red zone. Otherwise a new
    /// `kmalloc(size)` gets the old requested bytes (the whole object where none is kept), is
    /// zeroed past them with `zero`, and the old object is freed. `InvalidArgument`: `size` 0
    /// or above 4 MiB. On any error nothing changes.
    pub fn krealloc(&mut self, client: ClientId, handle: Handle, size: u32, zero: bool) -> Result<Handle, Error> {
        self.client(client)?;
        if size == 0 || size > KMALLOC_MAX {
            return Err(Error::InvalidArgument);
        }
        let (object_size, orig) = match self.locate(client, handle)? {
            Located::Slab { gi, slab, idx } => {
                let (s, i) = self.validate_free(client, gi, handle)?;
                debug_assert_eq!((s, i), (slab, idx));
                let c = self.cache(gi)?;
                let tracked = tracks_orig_size(c);
                let object_size = c.size;
                let orig = if tracked { self.orig_size_get(slab, idx)? } else { object_size };
                if size <= object_size {
                    if zero {
                        let from = if orig < size { orig } else { size };
                        self.fill(client, handle.0 + u64::from(from), (object_size - from) as usize, 0)?;
                    }
                    if tracked {
                        self.orig_size_set(client, gi, slab, idx, size)?;
                    }
                    return Ok(handle);
                }
                (object_size, orig)
            }
            Located::Large { pages, .. } => {
                let bytes = pages.saturating_mul(PAGE_SIZE as u32);
                if size <= bytes {
                    if zero {
                        self.fill(client, handle.0 + u64::from(size), (bytes - size) as usize, 0)?;
                    }
                    return Ok(handle);
                }
                (bytes, bytes)
            }
            Located::FreedLarge => return Err(Error::DoubleFree),
        };
        let new = self.kmalloc(client, size)?;
        let copied = self.krealloc_copy(client, handle, new, orig.min(object_size), zero.then_some(size));
        if let Err(e) = copied {
            // The old object stays as it was; the new one goes back.
            self.kfree(client, new)?;
            return Err(e);
        }
        self.kfree(client, handle)?;
        Ok(new)
    }

    /// The copy of a moving `krealloc`: `new` zeroed up to `zero_to` (with `__GFP_ZERO`), then
    /// the first `len` bytes of `old` copied into it.
    fn krealloc_copy(
        &mut self,
        client: ClientId,
        old: Handle,
        new: Handle,
        len: u32,
        zero_to: Option<u32>,
    ) -> Result<(), Error> {
        if let Some(size) = zero_to {
            self.fill(client, new.0, size as usize, 0)?;
        }
        let mut buf = [0u8; 512];
        let mut done = 0u32;
        while done < len {
            let n = (len - done).min(buf.len() as u32);
            let chunk = buf.get_mut(..n as usize).ok_or(BROKEN)?;
            self.read(client, old.0 + u64::from(done), chunk)?;
            self.write(client, new.0 + u64::from(done), chunk)?;
            done += n;
        }
        Ok(())
    }

    /// The requested size kept for object `idx` of slab `s` (a red-zoned kmalloc cache).
    pub(crate) fn orig_size_get(&mut self, s: u32, idx: u32) -> Result<u32, Error> {
        Ok(u32::from(self.track_record(s, idx)?.orig_size))
    }

    /// Keep `size` as the requested size of allocated object `idx` of slab `s` of cache `gi`
    /// and make the slack past it (to the object size) red zone.
    pub(crate) fn orig_size_set(
        &mut self,
        client: ClientId,
        gi: u32,
        s: u32,
        idx: u32,
        size: u32,
    ) -> Result<(), Error> {
        let object_size = self.cache(gi)?.size;
        let size = size.min(object_size);
        let start = self.obj_stride_start(gi, s, idx)? + u64::from(self.cache(gi)?.obj_offset);
        self.fill(client, start + u64::from(size), (object_size - size) as usize, RED_ACTIVE)?;
        self.track_orig_size(s, idx, size)
    }

    /// The first byte of allocated object `idx`'s kmalloc slack (between its requested size and
    /// its object size) that is not red zone, as a corruption; `None` when the slack is intact
    /// or the cache keeps no requested sizes.
    pub(crate) fn slack_check(
        &mut self,
        client: ClientId,
        gi: u32,
        s: u32,
        idx: u32,
    ) -> Result<Option<Corruption>, Error> {
        if !tracks_orig_size(self.cache(gi)?) {
            return Ok(None);
        }
        let orig = self.orig_size_get(s, idx)?;
        let c = self.cache(gi)?;
        let object_size = c.size;
        let obj = self.obj_stride_start(gi, s, idx)? + u64::from(c.obj_offset);
        let bad =
            self.mismatch(client, obj + u64::from(orig), object_size.saturating_sub(orig), RED_ACTIVE, RED_ACTIVE)?;
        Ok(match bad {
            Some((at, found, expected)) => Some(Corruption {
                cache: self.cache_id(gi)?,
                object: Handle(obj),
                offset: (orig + at) as i32,
                found,
                expected,
            }),
            None => None,
        })
    }

    /// Make the kmalloc slack of allocated object `idx` red zone again (after a report).
    pub(crate) fn slack_repair(&mut self, client: ClientId, gi: u32, s: u32, idx: u32) -> Result<(), Error> {
        let orig = self.orig_size_get(s, idx)?;
        self.orig_size_set(client, gi, s, idx, orig)
    }
}

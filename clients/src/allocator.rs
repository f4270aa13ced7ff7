//! The `allocator-api2` [`Allocator`] trait for caches, so `allocator_api2::boxed::Box<X, &KmemCache<X, _>>`
//! and the `allocator_api2` collections allocate from a slab cache.
//!
//! # Design
//! A cache serves one object size: a request fits if its size is at most the object size and
//! its alignment at most the cache's object alignment; any other is `AllocError` (the block
//! returned is the whole object, so its length is the object size). Size 0 is served without
//! touching the cache (an aligned dangling pointer, as `Vec` does). Caches with a ctor refuse
//! every request: the trait hands out memory for the caller to initialise and drop, while a
//! constructed object must go back in its constructed state (use a
//! [`CtorCache`](crate::boxed::CtorCache) for those). `deallocate` cannot report an error; a
//! free the server refuses is dropped silently (it would be a bug of the caller).

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::cache::{Cache, KmemCache};
use crate::transport::Transport;

impl<T: Transport> Cache<'_, T> {
    /// Whether `layout` is a request this cache serves (size > 0).
    fn fits(&self, layout: Layout) -> bool {
        let cache = self.layout();
        !self.has_ctor() && layout.size() <= cache.object_size as usize && layout.align() <= cache.align as usize
    }

    /// Whether the block at `ptr` (an object) can stay where it is for `layout`.
    fn keeps(&self, ptr: NonNull<u8>, layout: Layout) -> bool {
        self.fits(layout) && ptr.as_ptr().addr() & (layout.align() - 1) == 0
    }

    /// One object for `layout` (size > 0), zeroed or not.
    fn allocate_object(&self, layout: Layout, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
        if !self.fits(layout) {
            return Err(AllocError);
        }
        let object = if zeroed { self.zalloc() } else { self.alloc() }.map_err(|_| AllocError)?;
        // The cache's alignment is of window offsets; the window base is page aligned, so
        // addresses follow up to a page. Checked, not assumed, for larger alignments.
        if !self.keeps(object, layout) {
            let _ = self.free(object);
            return Err(AllocError);
        }
        Ok(NonNull::slice_from_raw_parts(object, self.layout().object_size as usize))
    }

    /// A new block for `new_layout` holding the first `keep` bytes of `ptr`, which is freed.
    ///
    /// # Safety
    /// `ptr` is a block of this allocator for `old_layout`, and `keep` ≤ both sizes.
    unsafe fn move_block(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
        keep: usize,
        zeroed: bool,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let new = if zeroed { self.allocate_zeroed(new_layout) } else { self.allocate(new_layout) }?;
        // SAFETY: both blocks hold at least `keep` bytes and are distinct (the old one is still
        // allocated); the old block is freed once, with its layout (the caller's guarantee).
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.cast::<u8>().as_ptr(), keep);
            self.deallocate(ptr, old_layout);
        }
        Ok(new)
    }
}

/// An aligned, non-null address that is no object (for size-0 requests).
fn dangling(layout: Layout) -> NonNull<[u8]> {
    let ptr = NonNull::new(ptr::without_provenance_mut::<u8>(layout.align())).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(ptr, 0)
}

// SAFETY: a block is a whole object of the cache (at least `layout.size()` bytes, aligned as
// checked), owned by the caller until `deallocate` frees it; objects stay valid while the
// cache lives (it cannot be destroyed while borrowed). Size-0 blocks are never objects and are
// never freed. Grow/shrink keep the block when the new layout still fits, else move it.
unsafe impl<T: Transport> Allocator for Cache<'_, T> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        self.allocate_object(layout, false)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        self.allocate_object(layout, true)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            let _ = self.free(ptr);
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old_layout.size() != 0 && self.keeps(ptr, new_layout) {
            return Ok(NonNull::slice_from_raw_parts(ptr, self.layout().object_size as usize));
        }
        // SAFETY: the caller's guarantees; old_layout.size() ≤ new_layout.size().
        unsafe { self.move_block(ptr, old_layout, new_layout, old_layout.size(), false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old_layout.size() != 0 && self.keeps(ptr, new_layout) {
            // SAFETY: the object holds `object_size` ≥ new_layout.size() bytes, owned by the
            // caller; the bytes past the old size are zeroed as the trait requires.
            unsafe {
                ptr.as_ptr().add(old_layout.size()).write_bytes(0, new_layout.size() - old_layout.size());
            }
            return Ok(NonNull::slice_from_raw_parts(ptr, self.layout().object_size as usize));
        }
        // SAFETY: the caller's guarantees; old_layout.size() ≤ new_layout.size().
        unsafe { self.move_block(ptr, old_layout, new_layout, old_layout.size(), true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if new_layout.size() == 0 {
            // SAFETY: the caller's guarantees.
            unsafe { self.deallocate(ptr, old_layout) };
            return Ok(dangling(new_layout));
        }
        if self.keeps(ptr, new_layout) {
            return Ok(NonNull::slice_from_raw_parts(ptr, self.layout().object_size as usize));
        }
        // SAFETY: the caller's guarantees; new_layout.size() ≤ old_layout.size().
        unsafe { self.move_block(ptr, old_layout, new_layout, new_layout.size(), false) }
    }
}

// SAFETY: every method forwards to the untyped cache's implementation above (`Allocator::shrink`
// named in full: `Cache::shrink` is kmem_cache_shrink).
unsafe impl<X, T: Transport> Allocator for KmemCache<'_, X, T> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.cache().allocate(layout)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.cache().allocate_zeroed(layout)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.cache().deallocate(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.cache().grow(ptr, old_layout, new_layout) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.cache().grow_zeroed(ptr, old_layout, new_layout) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { Allocator::shrink(self.cache(), ptr, old_layout, new_layout) }
    }
}

//! `kmalloc` and its family, with Linux's rules: `kmalloc(0)` is `ZERO_SIZE_PTR` (not NULL, not
//! dereferenceable, accepted by `kfree`), `kfree(NULL)` and `kfree(ZERO_SIZE_PTR)` do nothing,
//! `krealloc(p, 0)` frees and returns `ZERO_SIZE_PTR`, `kmalloc_array`/`kcalloc` check the
//! multiplication, `ksize` is the usable size (the size class), `kmalloc_size_roundup` the size
//! `kmalloc` would give. The allocations themselves are the session's `kmalloc`/`kfree`.

use alloc::format;
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use crate::error::{self, errno};
use crate::flags::{__GFP_ZERO, gfp_t};
use crate::{counters, session};

/// Linux's `ZERO_SIZE_PTR`: what `kmalloc(0)` returns.
pub const ZERO_SIZE_PTR_ADDRESS: usize = 16;

/// Object sizes of the kmalloc classes (`kmalloc-8` … `kmalloc-8k`), as the server has them.
pub const KMALLOC_SIZES: [usize; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
/// Largest size served by a class; larger ones take whole pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;
/// Largest kmalloc (Linux's `KMALLOC_MAX_SIZE` with 4 KiB pages).
pub const KMALLOC_MAX_SIZE: usize = 4 << 20;

/// `ZERO_OR_NULL_PTR()`.
fn zero_or_null(p: *const c_void) -> bool {
    p.addr() <= ZERO_SIZE_PTR_ADDRESS
}

fn zero_size_ptr() -> *mut c_void {
    ptr::without_provenance_mut(ZERO_SIZE_PTR_ADDRESS)
}

/// The size `kmalloc(size)` really gives: its class up to 8 KiB, whole pages above (Linux
/// rounds those to a power of two of pages; this server takes just the pages needed), `size`
/// itself for 0 and for sizes kmalloc refuses.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc_size_roundup(size: usize) -> usize {
    if size == 0 || size > KMALLOC_MAX_SIZE {
        return size;
    }
    if size <= KMALLOC_MAX_CACHE_SIZE {
        return KMALLOC_SIZES.iter().copied().find(|&class| class >= size).unwrap_or(size);
    }
    size.next_multiple_of(protocol::PAGE_SIZE)
}

/// Allocates `size` bytes (zeroed with `__GFP_ZERO`): `ZERO_SIZE_PTR` for 0, NULL on failure.
/// Sizes that are powers of two are aligned to their size (up to a page today), others to 8.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: gfp_t) -> *mut c_void {
    const WHAT: &str = "kmalloc";
    if size == 0 {
        return zero_size_ptr();
    }
    let Some(state) = session::state(WHAT) else { return ptr::null_mut() };
    let Ok(request) = u32::try_from(size) else {
        error::set(errno::EINVAL, format_args!("{WHAT}({size}): larger than KMALLOC_MAX_SIZE"));
        return ptr::null_mut();
    };
    match state.server.kmalloc(request) {
        Ok(object) => {
            let usable = kmalloc_size_roundup(size);
            state.record_size(object, u32::try_from(usable).unwrap_or(request));
            if flags & __GFP_ZERO != 0 {
                // SAFETY: a fresh object of `usable` bytes (its class or its pages), owned here.
                unsafe { object.as_ptr().write_bytes(0, usable) };
            }
            counters::object_allocated();
            object.as_ptr().cast()
        }
        Err(e) => {
            error::set_error(&format!("{WHAT}({size})"), &e);
            ptr::null_mut()
        }
    }
}

/// `kmalloc(size, flags | __GFP_ZERO)`.
#[unsafe(no_mangle)]
pub extern "C" fn kzalloc(size: usize, flags: gfp_t) -> *mut c_void {
    kmalloc(size, flags | __GFP_ZERO)
}

/// `kmalloc(n * size, flags)`, or NULL if the product overflows.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc_array(n: usize, size: usize, flags: gfp_t) -> *mut c_void {
    match n.checked_mul(size) {
        Some(bytes) => kmalloc(bytes, flags),
        None => {
            error::set(errno::EOVERFLOW, format_args!("kmalloc_array({n}, {size}): the size overflows"));
            ptr::null_mut()
        }
    }
}

/// `kmalloc_array(n, size, flags | __GFP_ZERO)`.
#[unsafe(no_mangle)]
pub extern "C" fn kcalloc(n: usize, size: usize, flags: gfp_t) -> *mut c_void {
    kmalloc_array(n, size, flags | __GFP_ZERO)
}

/// Frees what `kmalloc` returned; NULL and `ZERO_SIZE_PTR` are ignored. A pointer the server
/// refuses (not a kmalloc object, a double free) is reported on stderr and left as it was.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or a kmalloc object not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kfree(object: *const c_void) {
    const WHAT: &str = "kfree";
    if zero_or_null(object) {
        return;
    }
    let Some(state) = session::state(WHAT) else { return };
    let Some(ptr) = NonNull::new(object.cast_mut().cast::<u8>()) else { return };
    match state.server.kfree(ptr) {
        Ok(()) => counters::object_freed(),
        Err(e) => {
            error::set_error(&format!("{WHAT}({object:p})"), &e);
            crate::cache::report_last_error();
        }
    }
}

/// The usable size of an object this library handed out (`kmalloc` & co., or
/// `kmem_cache_alloc`); 0 for NULL and `ZERO_SIZE_PTR`, and (with the error set) for pointers
/// it did not hand out.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or an object that is still allocated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ksize(object: *const c_void) -> usize {
    if zero_or_null(object) {
        return 0;
    }
    let size = NonNull::new(object.cast_mut().cast::<u8>())
        .and_then(|ptr| session::ready_state().and_then(|state| state.size_of(ptr)));
    match size {
        Some(size) => size as usize,
        None => {
            error::set(errno::EINVAL, format_args!("ksize({object:p}): not an object of this client"));
            0
        }
    }
}

/// Resizes a kmalloc object: the same pointer while `new_size` fits its usable size (the
/// slack beyond `new_size` zeroed with `__GFP_ZERO`), else a new object with the contents
/// copied and the old one freed. `krealloc(NULL or ZERO_SIZE_PTR, n)` is `kmalloc(n)`;
/// `krealloc(p, 0)` frees `p` and returns `ZERO_SIZE_PTR`. On failure returns NULL and `p` is
/// untouched.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or a kmalloc object; if another pointer comes back, the
/// old one is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn krealloc(object: *const c_void, new_size: usize, flags: gfp_t) -> *mut c_void {
    if zero_or_null(object) {
        return kmalloc(new_size, flags);
    }
    if new_size == 0 {
        // SAFETY: the caller's guarantee.
        unsafe { kfree(object) };
        return zero_size_ptr();
    }
    // SAFETY: the caller's guarantee.
    let usable = unsafe { ksize(object) };
    if usable == 0 {
        return ptr::null_mut();
    }
    if new_size <= usable {
        if flags & __GFP_ZERO != 0 {
            // SAFETY: new_size..usable lies inside the object, which the caller owns.
            unsafe { object.cast_mut().cast::<u8>().add(new_size).write_bytes(0, usable - new_size) };
        }
        return object.cast_mut();
    }
    let new = kmalloc(new_size, flags);
    if !new.is_null() {
        // SAFETY: the old object has `usable` readable bytes, the new one at least
        // new_size > usable; they are distinct objects. The old one is freed once.
        unsafe {
            ptr::copy_nonoverlapping(object.cast::<u8>(), new.cast::<u8>(), usable);
            kfree(object);
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundup_gives_the_class_then_pages() {
        assert_eq!(kmalloc_size_roundup(0), 0);
        assert_eq!(kmalloc_size_roundup(1), 8);
        assert_eq!(kmalloc_size_roundup(54), 64);
        assert_eq!(kmalloc_size_roundup(65), 96);
        assert_eq!(kmalloc_size_roundup(97), 128);
        assert_eq!(kmalloc_size_roundup(129), 192);
        assert_eq!(kmalloc_size_roundup(8192), 8192);
        assert_eq!(kmalloc_size_roundup(8193), 12288);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE), KMALLOC_MAX_SIZE);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE + 1), KMALLOC_MAX_SIZE + 1);
    }

    #[test]
    fn zero_size_is_zero_size_ptr_and_needs_no_server() {
        assert_eq!(kmalloc(0, 0).addr(), ZERO_SIZE_PTR_ADDRESS);
        assert_eq!(kcalloc(0, 8, 0).addr(), ZERO_SIZE_PTR_ADDRESS);
        // SAFETY: NULL and ZERO_SIZE_PTR are the two values kfree ignores.
        unsafe {
            kfree(ptr::null());
            kfree(zero_size_ptr());
            assert_eq!(ksize(zero_size_ptr()), 0);
        }
    }

    #[test]
    fn kmalloc_array_overflow_is_null_with_eoverflow() {
        assert!(kmalloc_array(usize::MAX / 2, 3, 0).is_null());
        assert_eq!(error::memclient_last_error(), errno::EOVERFLOW);
    }
}

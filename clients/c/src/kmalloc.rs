//! `kmalloc` and its family, with Linux's rules, as `memclient` has them (its `kmalloc`
//! module): small sizes through the magazines of the kmalloc caches, `kmalloc(0)` is
//! `ZERO_SIZE_PTR` (not NULL, not dereferenceable, accepted by `kfree`), `kfree(NULL)` and
//! `kfree(ZERO_SIZE_PTR)` do nothing, `kfree` takes an object of any cache back to its cache,
//! `krealloc(p, 0)` frees and returns `ZERO_SIZE_PTR`, `krealloc` with `__GFP_ZERO` zeroes as
//! Linux's `__do_krealloc()` does, `kmalloc_array`/`kcalloc` check the multiplication, `ksize`
//! is the usable size, `kmalloc_size_roundup` the size `kmalloc` would give. Here only the C
//! calling convention and the thread's error are added.

use alloc::format;
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use crate::error::{self, errno};
use crate::flags::gfp_t;
use crate::{counters, session};

/// Linux's `ZERO_SIZE_PTR`: what `kmalloc(0)` returns.
pub const ZERO_SIZE_PTR_ADDRESS: usize = memclient::ZERO_SIZE_PTR;

/// Object sizes of the kmalloc classes (`kmalloc-8` … `kmalloc-8k`), as the server has them.
pub const KMALLOC_SIZES: [usize; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
/// Largest size served by a class; larger ones take whole pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = memclient::kmalloc::KMALLOC_MAX_CACHE_SIZE;
/// Largest kmalloc (Linux's `KMALLOC_MAX_SIZE` with 4 KiB pages).
pub const KMALLOC_MAX_SIZE: usize = memclient::kmalloc::KMALLOC_MAX_SIZE;

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
    memclient::kmalloc_size_roundup(size)
}

/// Allocates `size` bytes (zeroed with `__GFP_ZERO`): `ZERO_SIZE_PTR` for 0, NULL on failure.
/// Power-of-two sizes are aligned to their size; others to the largest power of two dividing
/// them.
#[unsafe(no_mangle)]
pub extern "C" fn kmalloc(size: usize, flags: gfp_t) -> *mut c_void {
    const WHAT: &str = "kmalloc";
    if size == 0 {
        return zero_size_ptr();
    }
    let Some(state) = session::state(WHAT) else { return ptr::null_mut() };
    match state.server.kmalloc_gfp(size, flags) {
        Ok(object) => {
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
    kmalloc(size, flags | memclient::__GFP_ZERO)
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
    kmalloc_array(n, size, flags | memclient::__GFP_ZERO)
}

/// Frees what `kmalloc` (or `kmem_cache_alloc` of any cache) returned; NULL and
/// `ZERO_SIZE_PTR` are ignored. A pointer the server refuses (not an object, a double free) is
/// reported on stderr and left as it was.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or an object not used after this call.
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

/// The usable size of an object of this client (`kmalloc` & co., or `kmem_cache_alloc`); 0 for
/// NULL and `ZERO_SIZE_PTR`, and (with the error set) for pointers that are no object.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or an object that is still allocated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ksize(object: *const c_void) -> usize {
    if zero_or_null(object) {
        return 0;
    }
    let size = NonNull::new(object.cast_mut().cast::<u8>())
        .and_then(|ptr| session::ready_state().map(|state| state.server.ksize(ptr)));
    match size {
        Some(Ok(size)) => size,
        Some(Err(e @ memclient::Error::Transport(_))) => {
            error::set_error(&format!("ksize({object:p})"), &e);
            0
        }
        _ => {
            error::set(errno::EINVAL, format_args!("ksize({object:p}): not an object of this client"));
            0
        }
    }
}

/// Resizes a kmalloc object: the same pointer while `new_size` fits it (with `__GFP_ZERO` the
/// bytes past the old requested size read as zero), else a new object with the contents
/// copied and the old one freed. `krealloc(NULL or ZERO_SIZE_PTR, n)` is `kmalloc(n)`;
/// `krealloc(p, 0)` frees `p` and returns `ZERO_SIZE_PTR`. On failure returns NULL and `p` is
/// untouched.
///
/// # Safety
/// `object` is NULL, `ZERO_SIZE_PTR` or a kmalloc object; if another pointer comes back, the
/// old one is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn krealloc(object: *const c_void, new_size: usize, flags: gfp_t) -> *mut c_void {
    const WHAT: &str = "krealloc";
    if zero_or_null(object) {
        return kmalloc(new_size, flags);
    }
    let Some(state) = session::state(WHAT) else { return ptr::null_mut() };
    let ptr = NonNull::new(object.cast_mut().cast::<u8>());
    match state.server.krealloc(ptr, new_size, flags) {
        Ok(new) => {
            let new: *mut c_void = new.as_ptr().cast();
            if new != object.cast_mut() {
                // The object moved (or, for size 0, went away and ZERO_SIZE_PTR came back).
                counters::object_freed();
                if !zero_or_null(new) {
                    counters::object_allocated();
                }
            }
            new
        }
        Err(e) => {
            error::set_error(&format!("{WHAT}({object:p}, {new_size})"), &e);
            ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The C call is the library's rule (memclient tests the rule itself).
    #[test]
    fn roundup_is_the_librarys() {
        for size in (0..=20_000).chain([KMALLOC_MAX_SIZE, KMALLOC_MAX_SIZE + 1]) {
            assert_eq!(kmalloc_size_roundup(size), memclient::kmalloc_size_roundup(size), "{size}");
        }
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

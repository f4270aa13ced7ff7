//! `struct kmem_cache` and its calls: `kmem_cache_create`, `kmem_cache_alloc`,
//! `kmem_cache_zalloc`, `kmem_cache_free`, `kmem_cache_shrink`, `kmem_cache_destroy`,
//! `kmem_cache_size`.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::ptr::{self, NonNull};

use memclient::Cache;

use crate::ctor::CtorSlot;
use crate::error::{self, errno};
use crate::flags::{__GFP_ZERO, SLAB_PANIC, gfp_t, slab_flags_t};
use crate::session::{self, SessionTransport, State};
use crate::{console, counters};

/// A slab cache (opaque to C). Corresponds to Linux's `struct kmem_cache`.
#[allow(non_camel_case_types)]
pub struct kmem_cache {
    /// `None` only while `kmem_cache_destroy` runs.
    cache: Option<Cache<'static, SessionTransport>>,
    state: &'static State,
    name: String,
    /// The C ctor's slot, given back when the cache is destroyed.
    _ctor: Option<CtorSlot>,
}

impl kmem_cache {
    /// The cache behind a C pointer, or the calling thread's error set.
    ///
    /// # Safety
    /// `cache` is NULL or a pointer from `kmem_cache_create` not yet destroyed.
    unsafe fn get<'a>(
        cache: *const kmem_cache,
        what: &str,
    ) -> Option<(&'a kmem_cache, &'a Cache<'static, SessionTransport>)> {
        // SAFETY: NULL or a live kmem_cache (the caller's guarantee), used shared.
        let Some(this) = (unsafe { cache.as_ref() }) else {
            error::set(errno::EINVAL, format_args!("{what}: NULL cache"));
            return None;
        };
        match &this.cache {
            Some(inner) => Some((this, inner)),
            None => {
                error::set(errno::EINVAL, format_args!("{what}({}): the cache is being destroyed", this.name));
                None
            }
        }
    }
}

/// Creates a cache of `size`-byte objects aligned to `align` (0: the server chooses; else a
/// power of two), with `SLAB_*` `flags` and an optional constructor, run once per object when
/// it is first handed out (never again on reuse). `name` (at most 31 bytes) is copied.
/// Returns NULL on failure (with `SLAB_PANIC`: aborts the process).
///
/// # Safety
/// `name` is a NUL-terminated string (or NULL, refused); `ctor`, if given, may be called on
/// any object of the cache, from any thread that allocates from it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_create(
    name: *const c_char,
    size: c_uint,
    align: c_uint,
    flags: slab_flags_t,
    ctor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> *mut kmem_cache {
    const WHAT: &str = "kmem_cache_create";
    let created = (|| {
        if name.is_null() {
            error::set(errno::EINVAL, format_args!("{WHAT}: NULL name"));
            return None;
        }
        // SAFETY: a non-null NUL-terminated string (the caller's guarantee).
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            error::set(errno::EINVAL, format_args!("{WHAT}: the name is not UTF-8"));
            return None;
        };
        let state = session::state(WHAT)?;
        let slot = match ctor {
            Some(ctor) => match CtorSlot::claim(ctor) {
                Some(slot) => Some(slot),
                None => {
                    error::set(errno::ENOSPC, format_args!("{WHAT}({name}): too many caches with a ctor"));
                    return None;
                }
            },
            None => None,
        };
        let rust_ctor = slot.as_ref().and_then(CtorSlot::rust_ctor);
        match Cache::create(state.server, name, size, align, flags, rust_ctor) {
            Ok(cache) => Some(kmem_cache { cache: Some(cache), state, name: name.to_owned(), _ctor: slot }),
            Err(e) => {
                error::set_error(&format!("{WHAT}({name})"), &e);
                None
            }
        }
    })();
    match created {
        Some(cache) => {
            counters::cache_created();
            Box::into_raw(Box::new(cache))
        }
        None if flags & SLAB_PANIC != 0 => {
            console::fatal(format_args!("memclient: SLAB_PANIC: {}", last_error_message()))
        }
        None => ptr::null_mut(),
    }
}

/// Allocates an object (zeroed if `flags` has `__GFP_ZERO`). Returns NULL on failure; a
/// cache with a ctor refuses `__GFP_ZERO` (NULL, `EINVAL`), as its objects are constructed.
///
/// # Safety
/// `cache` is NULL (refused) or a cache from `kmem_cache_create` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc(cache: *mut kmem_cache, flags: gfp_t) -> *mut c_void {
    const WHAT: &str = "kmem_cache_alloc";
    // SAFETY: the caller's guarantee.
    let Some((this, inner)) = (unsafe { kmem_cache::get(cache, WHAT) }) else { return ptr::null_mut() };
    let result = if flags & __GFP_ZERO != 0 { inner.zalloc() } else { inner.alloc() };
    match result {
        Ok(object) => {
            counters::object_allocated();
            object.as_ptr().cast()
        }
        Err(e) => {
            error::set_error(&format!("{WHAT}({})", this.name), &e);
            ptr::null_mut()
        }
    }
}

/// `kmem_cache_alloc(cache, flags | __GFP_ZERO)`.
///
/// # Safety
/// As `kmem_cache_alloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_zalloc(cache: *mut kmem_cache, flags: gfp_t) -> *mut c_void {
    // SAFETY: the caller's guarantee.
    unsafe { kmem_cache_alloc(cache, flags | __GFP_ZERO) }
}

/// Frees an object of `cache` (NULL: nothing). An object of another cache, a double free or
/// a pointer inside an object is refused by the server and reported on stderr, as Linux
/// reports slab errors; the object stays as it was.
///
/// # Safety
/// `cache` is a cache from `kmem_cache_create` not yet destroyed; `object` is NULL or was
/// returned by `kmem_cache_alloc` and is not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free(cache: *mut kmem_cache, object: *mut c_void) {
    const WHAT: &str = "kmem_cache_free";
    let Some(object) = NonNull::new(object.cast::<u8>()) else { return };
    // SAFETY: the caller's guarantee.
    let Some((this, inner)) = (unsafe { kmem_cache::get(cache, WHAT) }) else { return };
    match inner.free(object) {
        Ok(()) => counters::object_freed(),
        Err(e) => {
            error::set_error(&format!("{WHAT}({}, {object:p})", this.name), &e);
            report_last_error();
        }
    }
}

/// Allocates `size` objects into `p[0..size]`, all or nothing, as Linux's
/// `kmem_cache_alloc_bulk()`: returns `size`, or 0 with nothing allocated (the reason in
/// `memclient_last_error`). Through the magazines, one exchange with the server moves a whole
/// magazine. `__GFP_ZERO` zeroes every object (refused, `EINVAL`, on a cache with a ctor).
///
/// # Safety
/// `cache` is NULL (refused) or a cache from `kmem_cache_create` not yet destroyed; `p` has
/// room for `size` pointers (it may be NULL when `size` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_alloc_bulk(
    cache: *mut kmem_cache,
    flags: gfp_t,
    size: usize,
    p: *mut *mut c_void,
) -> c_int {
    const WHAT: &str = "kmem_cache_alloc_bulk";
    // SAFETY: the caller's guarantee.
    let Some((this, inner)) = (unsafe { kmem_cache::get(cache, WHAT) }) else { return 0 };
    let Ok(count) = c_int::try_from(size) else {
        error::set(errno::EINVAL, format_args!("{WHAT}({}): {size} objects", this.name));
        return 0;
    };
    if size == 0 || p.is_null() {
        return 0;
    }
    let zero = flags & __GFP_ZERO != 0;
    if zero && inner.has_ctor() {
        error::set(errno::EINVAL, format_args!("{WHAT}({}): __GFP_ZERO on a cache with a ctor", this.name));
        return 0;
    }
    let mut objects = vec![NonNull::<u8>::dangling(); size];
    if let Err(e) = inner.alloc_bulk(&mut objects) {
        error::set_error(&format!("{WHAT}({}, {size})", this.name), &e);
        return 0;
    }
    let object_size = inner.layout().object_size as usize;
    for (i, object) in objects.into_iter().enumerate() {
        if zero {
            // SAFETY: a fresh object of `object_size` bytes, the caller's now.
            unsafe { object.as_ptr().write_bytes(0, object_size) };
        }
        // SAFETY: `p` has room for `size` pointers (the caller's guarantee), `i < size`.
        unsafe { p.add(i).write(object.as_ptr().cast()) };
        counters::object_allocated();
    }
    count
}

/// Frees `p[0..size]`, as Linux's `kmem_cache_free_bulk()` (NULL entries are skipped). With a
/// NULL `cache` each object goes back to its own cache, as `kfree` does (Linux allows that
/// for kmalloc objects). An object the server refuses is reported on stderr, and the objects
/// after it are still freed.
///
/// # Safety
/// `cache` is NULL or a cache from `kmem_cache_create` not yet destroyed; `p` holds `size`
/// pointers, each NULL or an object of `cache` (of any cache when `cache` is NULL) not used
/// after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_free_bulk(cache: *mut kmem_cache, size: usize, p: *mut *mut c_void) {
    if p.is_null() {
        return;
    }
    for i in 0..size {
        // SAFETY: `p` holds `size` pointers (the caller's guarantee).
        let object = unsafe { p.add(i).read() };
        if cache.is_null() {
            // SAFETY: NULL or a live object of this client (the caller's guarantee).
            unsafe { crate::kmalloc::kfree(object) };
        } else {
            // SAFETY: as above, an object of `cache`.
            unsafe { kmem_cache_free(cache, object) };
        }
    }
}

/// Gives the cache's empty slabs back to the server's frame pool (its magazines first).
/// Returns 0 if the cache holds no slab afterwards, 1 if some remain (objects in use) or the
/// call failed.
///
/// # Safety
/// `cache` is NULL (refused) or a cache from `kmem_cache_create` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_shrink(cache: *mut kmem_cache) -> c_int {
    const WHAT: &str = "kmem_cache_shrink";
    // SAFETY: the caller's guarantee.
    let Some((this, inner)) = (unsafe { kmem_cache::get(cache, WHAT) }) else { return 1 };
    match inner.shrink().and_then(|_| this.state.server.cache_info(inner.id())) {
        Ok(info) => c_int::from(info.num_slabs > 0),
        Err(e) => {
            error::set_error(&format!("{WHAT}({})", this.name), &e);
            1
        }
    }
}

/// Destroys a cache (NULL: nothing). As Linux, returns nothing; if objects are still
/// allocated, the server refuses and the library warns on stderr ("Slab cache still has
/// objects"), and the cache stays as it was: usable, its objects valid. Free them and call
/// `kmem_cache_destroy` again to destroy it.
///
/// # Safety
/// `cache` is NULL or a cache from `kmem_cache_create` not yet destroyed, that no other
/// thread uses during the call; once destroyed, it is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_destroy(cache: *mut kmem_cache) {
    const WHAT: &str = "kmem_cache_destroy";
    // SAFETY: NULL or a live kmem_cache that nobody else uses now (the caller's guarantee).
    let Some(this) = (unsafe { cache.as_mut() }) else { return };
    let Some(inner) = this.cache.take() else { return };
    match inner.destroy() {
        Ok(()) => {
            counters::cache_destroyed();
            // SAFETY: from Box::into_raw in kmem_cache_create, destroyed once (its inner
            // cache was present), and not used again (the caller's guarantee).
            drop(unsafe { Box::from_raw(cache) });
        }
        Err((inner, e)) => {
            this.cache = Some(inner);
            match e {
                memclient::Error::Server(protocol::Error::CacheBusy { live }) => error::set(
                    errno::EBUSY,
                    format_args!("{WHAT} {}: Slab cache still has objects ({live} live); the cache is kept", this.name),
                ),
                _ => error::set_error(&format!("{WHAT} {}", this.name), &e),
            }
            report_last_error();
        }
    }
}

/// The usable size of the cache's objects (0 for NULL). Corresponds to `kmem_cache_size()`.
///
/// # Safety
/// `cache` is NULL or a cache from `kmem_cache_create` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kmem_cache_size(cache: *mut kmem_cache) -> c_uint {
    // SAFETY: the caller's guarantee.
    unsafe { kmem_cache::get(cache, "kmem_cache_size") }.map_or(0, |(_, inner)| inner.layout().object_size)
}

/// Writes the calling thread's last error to stderr (the library's slab-error report).
pub(crate) fn report_last_error() {
    console::line(format_args!("memclient: {}", last_error_message()));
}

fn last_error_message() -> String {
    // SAFETY: the message is a NUL-terminated string owned by this thread, alive until its
    // next failure; it is copied before anything else runs.
    unsafe { CStr::from_ptr(error::memclient_last_error_message()) }.to_string_lossy().into_owned()
}

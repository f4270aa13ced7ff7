//! [`KBox`]: an owned object of a typed cache, made and dropped like `Box`, so safe code never
//! handles the raw pointers of `kmem_cache_alloc`/`kmem_cache_free`.
//!
//! # Design: two kinds of object
//! A `KBox<X>` always points at a valid `X`, and frees its object when dropped.
//! - From a cache **without a ctor** ([`KmemCache::new_object`]): the object is memory, the
//!   value is moved in, and dropping the box drops the value, then frees the object (`Box`).
//! - From a **[`CtorCache`]** (its ctor is `X::default()`, run once per fresh object, as a
//!   Linux ctor): the object's state belongs to the cache. [`CtorCache::alloc`] hands it out
//!   as its ctor or its last user left it, and dropping the box frees it **without** dropping
//!   the `X`: the next user gets it in that state (Linux's rule: a freed object is left in its
//!   constructed state). The `X`'s destructor never runs, not even when a shrink or destroy
//!   releases the slab (the library has no dtor), so an `X` that owns other memory leaks it.
//!
//! `new_object` on a cache with a ctor is refused (`InvalidArgument`, as `zalloc` is): moving
//! a new value in would overwrite constructed state without dropping it. A `KmemCache` made
//! with an untyped ctor (`KmemCache::new(.., Some(ctor))`) has no safe boxes at all: nothing
//! says that ctor leaves a valid `X`.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use crate::cache::{Cache, KmemCache};
use crate::error::Error;
use crate::server::Memserver;
use crate::transport::Transport;

/// An owned `X` in an object of a slab cache; freed when dropped.
pub struct KBox<'c, X, T: Transport> {
    object: NonNull<X>,
    cache: &'c Cache<'c, T>,
    /// A constructed object (from a [`CtorCache`]): the `X` is not dropped with the box.
    constructed: bool,
    _owns: PhantomData<X>,
}

// SAFETY: a KBox owns its X as a Box does; the cache it frees into is shared by reference, so
// sending the box sends a `&Cache`, which is Sync when the transport is Send (the session
// keeps it behind a lock).
unsafe impl<X: Send, T: Transport + Send> Send for KBox<'_, X, T> {}
// SAFETY: `&KBox` gives only `&X` (and `&Cache`, as above).
unsafe impl<X: Sync, T: Transport + Send> Sync for KBox<'_, X, T> {}

impl<'c, X, T: Transport> KBox<'c, X, T> {
    /// The object's address (valid while the box lives).
    pub fn as_ptr(this: &Self) -> NonNull<X> {
        this.object
    }
}

impl<X, T: Transport> Deref for KBox<'_, X, T> {
    type Target = X;

    fn deref(&self) -> &X {
        // SAFETY: the object holds a valid X (moved in, or left valid by the ctor and every
        // previous box) and is owned by this box until it is dropped.
        unsafe { self.object.as_ref() }
    }
}

impl<X, T: Transport> DerefMut for KBox<'_, X, T> {
    fn deref_mut(&mut self) -> &mut X {
        // SAFETY: as in `deref`, and `&mut self` makes the access unique.
        unsafe { self.object.as_mut() }
    }
}

impl<X, T: Transport> Drop for KBox<'_, X, T> {
    fn drop(&mut self) {
        if !self.constructed {
            // SAFETY: the object holds a valid X that this box owns; it is dropped once, here,
            // and the memory is freed right after without being read again.
            unsafe { self.object.as_ptr().drop_in_place() };
        }
        // Freeing an object this box owns fails only if the session is gone; nothing to do then.
        let _ = self.cache.free(self.object.cast());
    }
}

impl<X: fmt::Debug, T: Transport> fmt::Debug for KBox<'_, X, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<X: fmt::Display, T: Transport> fmt::Display for KBox<'_, X, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<'m, X, T: Transport> KmemCache<'m, X, T> {
    /// Corresponds to `kmem_cache_alloc()` followed by initialising the object with `value`:
    /// an owned [`KBox`], dropped and freed like a `Box`. Refused (`InvalidArgument`) on a
    /// cache with a ctor (see the [module documentation](crate::boxed)).
    pub fn new_object(&self, value: X) -> Result<KBox<'_, X, T>, Error> {
        if self.cache().has_ctor() {
            return Err(Error::Server(protocol::Error::InvalidArgument));
        }
        let object = self.alloc()?;
        // SAFETY: a fresh object of size_of::<X>() bytes aligned to align_of::<X>() (the
        // cache's geometry), owned here; writing does not read the uninitialised memory.
        unsafe { object.as_ptr().write(value) };
        Ok(KBox { object, cache: self.cache(), constructed: false, _owns: PhantomData })
    }
}

/// The ctor of a [`CtorCache`]: writes `X::default()` into a fresh object.
fn construct<X: Default>(object: NonNull<u8>) {
    // SAFETY: the library calls a ctor once on each fresh object of the cache it was given
    // to, and a CtorCache<X> gives it only to a cache of size_of::<X>()-byte objects aligned
    // to align_of::<X>(); the object is not yet handed out, so nothing else accesses it.
    unsafe { object.cast::<X>().as_ptr().write(X::default()) };
}

/// A typed cache whose ctor is `X::default()`: its objects are handed out constructed, as
/// [`KBox`]es that go back to the cache in their current state (see the
/// [module documentation](crate::boxed)).
pub struct CtorCache<'m, X: Default, T: Transport> {
    cache: KmemCache<'m, X, T>,
}

impl<'m, X: Default, T: Transport> CtorCache<'m, X, T> {
    /// Corresponds to `kmem_cache_create()` with a ctor that constructs an `X::default()`.
    pub fn new(server: &'m Memserver<T>, name: &str, flags: u32) -> Result<Self, Error> {
        Ok(CtorCache { cache: KmemCache::new(server, name, flags, Some(construct::<X>))? })
    }

    /// Corresponds to `kmem_cache_alloc()`: a constructed object (fresh: `X::default()`;
    /// reused: as its last box left it).
    pub fn alloc(&self) -> Result<KBox<'_, X, T>, Error> {
        let object = self.cache.alloc()?;
        Ok(KBox { object, cache: self.cache.cache(), constructed: true, _owns: PhantomData })
    }

    /// The typed cache (raw `alloc`/`free`, `shrink`, its layout).
    pub fn cache(&self) -> &KmemCache<'m, X, T> {
        &self.cache
    }

    /// Corresponds to `kmem_cache_destroy()`; see [`Cache::destroy`].
    // The refused cache comes back whole (Linux's caller keeps its `kmem_cache *`); a destroy
    // is rare, so its size in the `Err` costs nothing that matters.
    #[allow(clippy::result_large_err)]
    pub fn destroy(self) -> Result<(), (Self, Error)> {
        self.cache.destroy().map_err(|(cache, e)| (CtorCache { cache }, e))
    }
}

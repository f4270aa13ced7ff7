//! [`CacheGuard`]: one thread's run of operations on a [`Cache`], from [`Cache::lock`].

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::{Cache, Pending};
use crate::error::Error;
use crate::transport::Transport;

/// One thread's run of operations on a [`Cache`] (from [`Cache::lock`]): `alloc` and `free`
/// on this thread's magazine of the cache without looking it up each time, or, where the cache
/// has none, under the cache's lock held for the guard's life. Not `Send`: it stands for the
/// thread that made it. Counters are published when it is dropped.
pub struct CacheGuard<'c, 'm, T: Transport> {
    pub(super) cache: &'c Cache<'m, T>,
    pub(super) hold: Hold<'c>,
    pub(super) pending: Pending,
    pub(super) _thread: PhantomData<*const ()>,
}

/// What a [`CacheGuard`] holds.
pub(super) enum Hold<'c> {
    /// This thread's stripe of the cache's per-thread magazines.
    #[cfg(feature = "std")]
    Stripe(usize),
    /// The lock of the cache's slot (or its IPC lock).
    Locked(#[allow(dead_code)] spin::MutexGuard<'c, ()>),
}

impl<T: Transport> CacheGuard<'_, '_, T> {
    /// Corresponds to `kmem_cache_alloc()`.
    #[inline]
    pub fn alloc(&mut self) -> Result<NonNull<u8>, Error> {
        let cache = self.cache;
        let result = match (&cache.magazines, &self.hold) {
            #[cfg(feature = "std")]
            (Some(m), Hold::Stripe(stripe)) => match cache.stripe_pop(m, *stripe) {
                Some(ptr) => return Ok(ptr),
                None => cache.stripe_refill(m, *stripe),
            },
            (Some(m), _) => m.alloc(cache.server, &mut self.pending).and_then(|h| cache.object(h)),
            (None, _) => cache.ipc_alloc_locked(false),
        };
        cache.check_panic(result)
    }

    /// Corresponds to `kmem_cache_free()` (hardened as [`Cache::free`]).
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        let cache = self.cache;
        let Some(m) = &cache.magazines else { return cache.ipc_free(ptr) };
        let handle = cache.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        match &self.hold {
            #[cfg(feature = "std")]
            Hold::Stripe(stripe) => match cache.stripe_push(m, *stripe, handle.0) {
                Ok(true) => Ok(()),
                Ok(false) => cache.stripe_drain(m, *stripe, handle.0),
                Err(refusal) => Err(refusal.into()),
            },
            Hold::Locked(_) => m.free(cache.server, &mut self.pending, handle),
        }
    }
}

impl<T: Transport> Drop for CacheGuard<'_, '_, T> {
    fn drop(&mut self) {
        self.pending.publish(self.cache.server);
        #[cfg(feature = "std")]
        if let Hold::Stripe(stripe) = self.hold {
            self.cache.server.publish_stripe(stripe);
        }
    }
}

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
    /// This thread's magazine of the cache (its stripe of the per-thread magazines).
    #[cfg(feature = "std")]
    Stripe(super::stripes::StripeHold<'c>),
    /// The lock of the cache's slot (or its IPC lock).
    Locked(#[allow(dead_code)] spin::MutexGuard<'c, ()>),
}

impl<T: Transport> CacheGuard<'_, '_, T> {
    /// Corresponds to `kmem_cache_alloc()`.
    #[inline(always)]
    pub fn alloc(&mut self) -> Result<NonNull<u8>, Error> {
        #[cfg(feature = "std")]
        if let Hold::Stripe(hold) = &self.hold
            && let Some(ptr) = hold.pop()
        {
            return Ok(ptr);
        }
        self.alloc_slow()
    }

    /// `alloc` past the thread magazine's hit: its refill, or the shared layer.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self) -> Result<NonNull<u8>, Error> {
        let cache = self.cache;
        let result = match (&cache.magazines, &self.hold) {
            #[cfg(feature = "std")]
            (Some(m), Hold::Stripe(hold)) => cache.stripe_refill(m, hold.stripe),
            (Some(m), _) => m.alloc(cache.server, &mut self.pending).and_then(|h| cache.object(h)),
            (None, _) => cache.ipc_alloc_locked(false),
        };
        cache.check_panic(result)
    }

    /// Corresponds to `kmem_cache_free()` (hardened as [`Cache::free`]).
    #[inline(always)]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        #[cfg(feature = "std")]
        if let Hold::Stripe(hold) = &self.hold {
            match hold.push(ptr) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(refusal) => return Err(refusal.into()),
            }
        }
        self.free_slow(ptr)
    }

    /// `free` past the thread magazine's hit: its drain, or the shared layer.
    #[cold]
    #[inline(never)]
    fn free_slow(&mut self, ptr: NonNull<u8>) -> Result<(), Error> {
        let cache = self.cache;
        let Some(m) = &cache.magazines else { return cache.ipc_free(ptr) };
        let handle = cache.server.window().handle(ptr).ok_or(Error::NotInWindow)?;
        match &self.hold {
            #[cfg(feature = "std")]
            Hold::Stripe(hold) => cache.stripe_drain(m, hold.stripe, handle.0),
            Hold::Locked(_) => m.free(cache.server, &mut self.pending, handle),
        }
    }
}

impl<T: Transport> Drop for CacheGuard<'_, '_, T> {
    fn drop(&mut self) {
        self.pending.publish(self.cache.server);
        #[cfg(feature = "std")]
        if let Hold::Stripe(hold) = &self.hold {
            self.cache.server.publish_stripe(hold.stripe);
        }
    }
}

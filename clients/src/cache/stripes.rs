//! The per-thread fast path ([`crate::threads`]) of a slot's magazines: `alloc` and `free` on
//! the calling thread's magazine, and the trips to the shared layer (the slot's magazines,
//! under the slot's lock) when it runs empty or full. A [`Cache`] keeps its own
//! [`ThreadMagazines`]; the session keeps those of the kmalloc classes (`kmalloc`/`kfree`).

use core::ptr::NonNull;

use super::{Cache, CacheGuard, Hold, Magazines, Pending};
use crate::error::Error;
use crate::hardened::Refusal;
use crate::server::Memserver;
use crate::threads::{STRIPES, THREAD_BATCH, ThreadMagazine, ThreadMagazines};
use crate::transport::Transport;

impl<T: Transport> Cache<'_, T> {
    /// Every thread magazine of the cache back to the shared layer (destroy, drop: nobody else
    /// can use the cache now). Stops at the first error; what is left stays parked.
    pub(super) fn return_thread_magazines(&mut self) -> Result<(), Error> {
        let (Some(m), Some(threads)) = (&self.magazines, self.threads.as_deref_mut()) else { return Ok(()) };
        let _guard = self.server.slot_lock(m.index).lock();
        let mut pending = Pending::default();
        for magazine in threads.all() {
            while let Some(handle) = magazine.top() {
                m.put(self.server, &mut pending, handle)?;
                magazine.pop();
            }
        }
        Ok(())
    }
}

impl<T: Transport> Drop for Cache<'_, T> {
    fn drop(&mut self) {
        // The objects of other threads' magazines would be lost to this client until its
        // session ends; the shared layer keeps them where `kfree` and the server reach them.
        let _ = self.return_thread_magazines();
    }
}

impl<T: Transport> CacheGuard<'_, '_, T> {
    /// **For `make bench` only**: one `alloc`, `use_object(object)`, one `free`, as
    /// [`CacheGuard::alloc`] and [`CacheGuard::free`] on this thread's magazine but *without*
    /// the hardened free's checks and canary, to measure what they cost per pair
    /// (`hardened_check_ns_per_pair`). Where that fast path cannot serve (an empty magazine, no
    /// per-thread magazines), the checked `alloc` and `free` run instead.
    ///
    /// # Safety
    /// `use_object` must not keep, free or hand on the object: it goes back to the magazine,
    /// unchecked, when `use_object` returns.
    #[doc(hidden)]
    pub unsafe fn bench_only_pair_without_hardened_checks(
        &mut self,
        use_object: impl FnOnce(NonNull<u8>),
    ) -> Result<(), Error> {
        let cache = self.cache;
        let mut use_object = Some(use_object);
        if let (Some(m), Hold::Stripe(threads, stripe)) = (&cache.magazines, &self.hold)
            && m.stripe_pair_unchecked(cache.server, threads, *stripe, |p| use_object.take().map_or((), |f| f(p)))
                .is_some()
        {
            return Ok(());
        }
        let object = self.alloc()?;
        if let Some(f) = use_object.take() {
            f(object);
        }
        self.free(object)
    }
}

impl Magazines {
    fn ptr<T: Transport>(&self, server: &Memserver<T>, handle: protocol::Handle) -> Result<NonNull<u8>, Error> {
        server.object(handle, self.geometry.object_size as usize)
    }

    /// `alloc` on thread magazine `stripe` of `threads` (the calling thread's lease): a pop
    /// ([`Magazines::stripe_pop`]), or the refill when it is empty.
    #[inline]
    pub(crate) fn stripe_alloc<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
    ) -> Result<NonNull<u8>, Error> {
        match self.stripe_pop(server, threads, stripe) {
            Some(ptr) => Ok(ptr),
            None => self.stripe_refill(server, threads, stripe),
        }
    }

    /// `free` (hardened) on thread magazine `stripe` of `threads` (the calling thread's
    /// lease): a push ([`Magazines::stripe_push`]), or the drain when it is full.
    #[inline]
    pub(crate) fn stripe_free<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        handle: u64,
    ) -> Result<(), Error> {
        match self.stripe_push(server, threads, stripe, handle) {
            Ok(true) => Ok(()),
            Ok(false) => self.stripe_drain(server, threads, stripe, handle),
            Err(refusal) => Err(refusal.into()),
        }
    }

    /// The fast path of `alloc`: a pop from thread magazine `stripe` of `threads` (the calling
    /// thread's lease); `None` when it is empty (then [`Magazines::stripe_refill`]).
    #[inline]
    fn stripe_pop<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: `stripe` is this thread's lease (from `threads::stripe()` on this thread, by
        // the caller or the `!Send` guard); `pop` does not reach the magazines again.
        let handle = unsafe { threads.with_own(stripe, ThreadMagazine::pop) }??;
        server.stripe_hit(stripe, true, self.kmalloc);
        server.window().ptr(self.hand_out(server, handle), self.geometry.object_size as usize)
    }

    /// The thread magazine is empty: one handle from the shared layer (refilled by IPC if it
    /// is empty too) to return, and up to half a thread magazine more from what the loaded
    /// magazine holds.
    #[cold]
    #[inline(never)]
    fn stripe_refill<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
    ) -> Result<NonNull<u8>, Error> {
        if !threads.own(stripe) {
            // A flush is emptying this thread's magazine: the shared layer serves.
            return self.alloc_locked(server).and_then(|h| self.ptr(server, h));
        }
        let mut pending = Pending::default();
        let first = {
            let _guard = server.slot_lock(self.index).lock();
            let first = self.take(server, &mut pending)?;
            // SAFETY: this thread's lease and magazine (`own` above, see `stripe_pop`); the
            // closure pops the shared magazine and pushes onto this one, nothing else.
            unsafe {
                threads.with(stripe, |t| {
                    for _ in 1..THREAD_BATCH {
                        let Some(handle) = self.slot.pop() else { break };
                        t.push(handle);
                    }
                })
            };
            first
        };
        if !pending.missed {
            server.stripe_hit(stripe, true, self.kmalloc);
        }
        server.publish_stripe(stripe);
        self.ptr(server, self.hand_out(server, first))
    }

    /// The fast path of `free` (hardened) on thread magazine `stripe` of `threads` (the
    /// calling thread's lease): `Ok(true)` once pushed, `Ok(false)` when the magazine is full
    /// or not this thread's now (then [`Magazines::stripe_drain`]), the refusal otherwise.
    #[inline]
    fn stripe_push<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        handle: u64,
    ) -> Result<bool, Refusal> {
        // SAFETY: this thread's lease (see `stripe_pop`); `admit_and_push` reaches the
        // window and the page-owner table, not the thread magazines.
        let pushed = unsafe { threads.with_own(stripe, |t| self.admit_and_push(server, t, handle)) };
        if !pushed.transpose()?.unwrap_or(false) {
            return Ok(false);
        }
        server.stripe_hit(stripe, false, self.kmalloc);
        Ok(true)
    }

    /// The hardened free's checks of `handle`, then a push onto `magazine` (the calling
    /// thread's) and the canary: whether it was pushed (not full).
    #[inline(always)]
    fn admit_and_push<T: Transport>(
        &self,
        server: &Memserver<T>,
        magazine: &mut ThreadMagazine,
        handle: u64,
    ) -> Result<bool, Refusal> {
        let top = if self.canary { None } else { magazine.top() };
        let canary = self.admit(server, handle, top)?;
        if !magazine.push(handle) {
            return Ok(false);
        }
        Magazines::mark_free(server, handle, canary);
        Ok(true)
    }

    /// The thread magazine is full: half of it goes to the shared layer (drained to the
    /// server by IPC if that is full too), then `handle` goes in (checked again: the
    /// refusal, if any, is the fast path's).
    #[cold]
    #[inline(never)]
    fn stripe_drain<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        handle: u64,
    ) -> Result<(), Error> {
        if !threads.own(stripe) {
            // A flush is emptying this thread's magazine: the shared layer takes the object.
            return self.free_locked(server, protocol::Handle(handle));
        }
        let missed = {
            let _guard = server.slot_lock(self.index).lock();
            self.move_to_shared(server, threads, stripe, THREAD_BATCH)?
        };
        // SAFETY: this thread's lease and magazine (`own` above, see `stripe_pop`);
        // `admit_and_push` does not reach the thread magazines.
        if !unsafe { threads.with(stripe, |t| self.admit_and_push(server, t, handle)) }.transpose()?.unwrap_or(false) {
            return Err(Error::UnexpectedReply);
        }
        if !missed {
            server.stripe_hit(stripe, false, self.kmalloc);
        }
        server.publish_stripe(stripe);
        Ok(())
    }

    /// The fast path's alloc+free pair on thread magazine `stripe` (the calling thread's
    /// lease) *without* the hardened free's checks and canary (for
    /// [`CacheGuard::bench_only_pair_without_hardened_checks`](super::CacheGuard), which
    /// measures what they cost): pop, `use_object`, push. `None` (nothing done) when the
    /// magazine is empty or not this thread's.
    #[inline]
    pub(crate) fn stripe_pair_unchecked<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        use_object: impl FnOnce(NonNull<u8>),
    ) -> Option<()> {
        // SAFETY: this thread's lease (see `stripe_pop`); `pop` does not re-enter.
        let handle = unsafe { threads.with_own(stripe, ThreadMagazine::pop) }??;
        server.stripe_hit(stripe, true, self.kmalloc);
        let object = server.window().ptr(protocol::Handle(handle), self.geometry.object_size as usize);
        if let Some(ptr) = object {
            use_object(ptr);
        }
        let handle = object.and_then(|ptr| server.window().handle(ptr)).map_or(handle, |h| h.0);
        // SAFETY: as above; `push` does not re-enter (and has room: the handle was just popped).
        unsafe { threads.with(stripe, |t| t.push(handle)) };
        server.stripe_hit(stripe, false, self.kmalloc);
        Some(())
    }

    /// Moves up to `n` handles from the top of thread magazine `stripe` into the shared
    /// layer; a handle leaves the thread magazine only once the shared layer took it. The
    /// caller holds the slot's lock and owns the magazine (its own thread's, or a stale one's hold).
    /// Whether the shared layer missed (exchanged).
    fn move_to_shared<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        n: usize,
    ) -> Result<bool, Error> {
        let mut pending = Pending::default();
        for _ in 0..n {
            // SAFETY: the caller owns the magazine (this thread's, `own`, or a `StaleStripe` hold);
            // `top` does not re-enter.
            let Some(top) = (unsafe { threads.with(stripe, |t| t.top()) }).flatten() else { break };
            self.put(server, &mut pending, top)?;
            // SAFETY: as above; `pop` does not re-enter.
            unsafe { threads.with(stripe, ThreadMagazine::pop) };
        }
        Ok(pending.missed)
    }

    /// Everything in the calling thread's magazine (`own`, its lease), and in the magazines
    /// left by threads that exited, back to the shared layer (`flush`). The magazines of other
    /// live threads keep their objects.
    pub(crate) fn stripe_flush<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        own: Option<usize>,
    ) -> Result<(), Error> {
        let _guard = server.slot_lock(self.index).lock();
        if let Some(stripe) = own.filter(|&s| threads.own(s)) {
            self.move_to_shared(server, threads, stripe, usize::MAX)?;
            server.publish_stripe(stripe);
        }
        for stripe in (0..STRIPES).filter(|&s| Some(s) != own) {
            // While the hold lasts no thread can take the magazine over: it is this thread's.
            if let Some(_stale) = threads.take_stale(stripe) {
                self.move_to_shared(server, threads, stripe, usize::MAX)?;
            }
        }
        Ok(())
    }
}

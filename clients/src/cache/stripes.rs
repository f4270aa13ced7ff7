//! The per-thread fast path ([`crate::threads`]) of a slot's magazines: `alloc` and `free` on
//! the calling thread's magazine, and the trips to the shared layer (the slot's magazines,
//! under the slot's lock) when it runs empty or full. A [`Cache`] keeps its own
//! [`ThreadMagazines`]; the session keeps those of the kmalloc classes (`kmalloc`/`kfree`).

use core::ptr::NonNull;

use super::fast::FastPath;
use super::{Cache, CacheGuard, Hold, Magazines, Pending};
use crate::error::Error;
use crate::hardened::ObjectCheck;
use crate::hardened::Refusal;
use crate::server::Memserver;
use crate::threads::{GuardLease, LeaseWord, STRIPES, StripeCounters, THREAD_BATCH, ThreadMagazine, ThreadMagazines};
use crate::transport::Transport;

impl<T: Transport> Cache<'_, T> {
    /// The cache's per-thread magazines, if it has them.
    pub(super) fn threads(&self) -> Option<&ThreadMagazines> {
        self.threads.as_ref().map(|t| &*t.magazines)
    }

    fn thread_magazines(&self) -> Result<&ThreadMagazines, Error> {
        self.threads().ok_or(Error::UnexpectedReply)
    }

    /// [`Magazines::stripe_refill`] on this cache's thread magazines.
    #[cold]
    #[inline(never)]
    pub(super) fn stripe_refill(&self, m: &Magazines, stripe: usize) -> Result<NonNull<u8>, Error> {
        m.stripe_refill(self.server, self.thread_magazines()?, stripe)
    }

    /// [`Magazines::stripe_push`] on this cache's thread magazines.
    #[inline]
    pub(super) fn stripe_push(&self, m: &Magazines, stripe: usize, handle: u64) -> Result<bool, Refusal> {
        let Some(threads) = self.threads() else { return Ok(false) };
        m.stripe_push(self.server, threads, stripe, handle)
    }

    /// [`Magazines::stripe_drain`] on this cache's thread magazines.
    #[cold]
    #[inline(never)]
    pub(super) fn stripe_drain(&self, m: &Magazines, stripe: usize, handle: u64) -> Result<(), Error> {
        m.stripe_drain(self.server, self.thread_magazines()?, stripe, handle)
    }

    /// [`Magazines::stripe_flush`] on this cache's thread magazines.
    pub(super) fn stripe_flush(&self, m: &Magazines, own: Option<usize>) -> Result<(), Error> {
        m.stripe_flush(self.server, self.thread_magazines()?, own)
    }

    /// Every thread magazine of the cache back to the shared layer (destroy, drop: nobody else
    /// can use the cache now). Stops at the first error; what is left stays parked.
    pub(super) fn return_thread_magazines(&mut self) -> Result<(), Error> {
        let (Some(m), Some(threads)) = (&self.magazines, self.threads.as_mut().map(|t| &mut *t.magazines)) else {
            return Ok(());
        };
        let _guard = self.server.slot_lock(m.index).lock();
        let mut pending = Pending::default();
        for magazine in threads.all() {
            while let Some(handle) = magazine.top() {
                m.put(self.server, &mut pending, handle)?;
                magazine.remove_top();
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
    /// **For `make bench` only**: one `alloc`, `use_object(object)`, one `free`, the same code
    /// as [`CacheGuard::alloc`] and [`CacheGuard::free`] on this thread's magazine *without*
    /// the hardened free's checks and canary, to measure what they cost per pair
    /// (`hardened_check_ns_per_pair`). Where that fast path cannot serve (an empty or full
    /// magazine, no per-thread magazines), the checked `alloc` and `free` run instead.
    ///
    /// # Safety
    /// `use_object` must not keep, free or hand on the object: it goes back to the magazine,
    /// unchecked, when `use_object` returns.
    #[doc(hidden)]
    pub unsafe fn bench_only_pair_without_hardened_checks(
        &mut self,
        use_object: impl FnOnce(NonNull<u8>),
    ) -> Result<(), Error> {
        let popped = match &self.hold {
            Hold::Stripe(hold) => hold.pop_checked::<false>(),
            Hold::Locked(_) => None,
        };
        let object = match popped {
            Some(object) => object,
            None => self.alloc()?,
        };
        use_object(object);
        if let Hold::Stripe(hold) = &self.hold {
            match hold.push_checked::<false>(object) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(refusal) => return Err(refusal.into()),
            }
        }
        self.free(object)
    }
}

/// A [`CacheGuard`]'s hold on its thread's magazine of the cache: the stripe (whose lease
/// its [`GuardLease`] keeps), the magazine itself, where the stripe counts its hits, and a copy
/// of the cache's [`FastPath`] and object check.
pub(crate) struct StripeHold<'c> {
    pub(super) stripe: usize,
    magazine: NonNull<ThreadMagazine>,
    counters: &'c StripeCounters,
    fast: FastPath,
    check: ObjectCheck,
    _lease: GuardLease,
}

impl<'c> StripeHold<'c> {
    /// The hold on `stripe` (the calling thread's lease) of `threads`, the thread magazines of
    /// the slot `m`; `None` if the thread does not own that magazine now (a `flush` of another
    /// thread is emptying it) or the cache has no object check.
    pub(super) fn new<T: Transport>(
        server: &'c Memserver<T>,
        m: &Magazines,
        threads: &'c ThreadMagazines,
        stripe: usize,
    ) -> Option<Self> {
        let _lease = GuardLease::new(stripe)?;
        let magazine = threads.owned(stripe)?;
        let (counters, check) = (server.stripe_counters(stripe)?, m.fast.check()?);
        Some(StripeHold { stripe, magazine, counters, fast: m.fast, check, _lease })
    }

    /// `alloc`'s fast path: a pop from the thread's magazine; `None` when it is empty.
    #[inline(always)]
    pub(super) fn pop(&self) -> Option<NonNull<u8>> {
        self.pop_checked::<true>()
    }

    /// [`StripeHold::pop`], clearing the canary if `CHECKED` (see [`StripeHold::push_checked`]).
    #[inline(always)]
    fn pop_checked<const CHECKED: bool>(&self) -> Option<NonNull<u8>> {
        // SAFETY: the thread owns the magazine (`new`) for as long as the lease lasts, which
        // the `GuardLease` makes at least as long as the hold; the guard is not `Send`, so
        // this is that thread, and no other reference to the magazine is live.
        let handle = unsafe { (*self.magazine.as_ptr()).pop() }?;
        // SAFETY: every handle in a thread magazine passed `holds` (see `pop_from`).
        let ptr = unsafe { if CHECKED { self.fast.hand_out(handle) } else { self.fast.object(handle) } };
        self.counters.hit(true, false);
        Some(ptr)
    }

    /// `free`'s fast path: the hardened checks and a push onto the thread's magazine.
    /// `Ok(true)` once pushed; `Ok(false)` when the magazine is full.
    #[inline(always)]
    pub(super) fn push(&self, ptr: NonNull<u8>) -> Result<bool, Refusal> {
        self.push_checked::<true>(ptr)
    }

    /// [`StripeHold::push`], with the hardened checks and the canary if `CHECKED`; without
    /// them only for [`CacheGuard::bench_only_pair_without_hardened_checks`], which measures
    /// what they cost (the same code otherwise).
    #[inline(always)]
    fn push_checked<const CHECKED: bool>(&self, ptr: NonNull<u8>) -> Result<bool, Refusal> {
        let handle = self.fast.held(ptr)?;
        // SAFETY: as in `pop`; the only reference, for this block.
        let magazine = unsafe { &mut *self.magazine.as_ptr() };
        let canary = match CHECKED {
            true => {
                let top = if self.fast.writes_canary() { None } else { magazine.top() };
                self.fast.admit_held(Some(&self.check), handle, top)?
            }
            false => None,
        };
        if !magazine.push(handle, false) {
            return Ok(false);
        }
        self.fast.mark_free(handle, canary);
        self.counters.hit(false, false);
        Ok(true)
    }
}

/// A pointer being freed: its offset in the window and the page-owner word of its page.
pub(crate) struct Freed {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) handle: u64,
    pub(crate) owner: u64,
}

/// The rest of the hardened free of a canary cache's `free` and of `kfree`, once `check` owns
/// the page-owner word of the pointer: the object-start test (`InvalidObject`), the thread's
/// magazine of `threads` (`None`: the slow path, as for a full magazine), the canary test
/// (`DoubleFree`), the push and the canary. `kmalloc`: a kmalloc class's magazines (the free
/// side of two: see [`ThreadMagazine::push`]; a `kfree` hit), else a cache's (one stack).
///
/// # Safety
/// `check` owns `freed.owner`, the page-owner word of `freed.handle`, the offset of
/// `freed.ptr` below the fast path's limit, and its object starts are 8-byte aligned
/// ([`ObjectCheck::starts_aligned`]).
#[inline(always)]
pub(crate) unsafe fn free_owned<T: Transport>(
    server: &Memserver<T>,
    fast: &FastPath,
    check: &ObjectCheck,
    threads: &ThreadMagazines,
    freed: Freed,
    kmalloc: bool,
) -> Option<Result<(), Refusal>> {
    let Freed { ptr, handle, owner } = freed;
    if !check.starts_object(owner, handle) {
        return Some(Err(Refusal::InvalidObject));
    }
    let lease = LeaseWord::current();
    let magazine = threads.owned_by(lease)?;
    let word = ptr.as_ptr().cast::<u64>();
    // SAFETY: an object start of the check's slabs (whose starts are 8-byte aligned, below the
    // limit: the caller's promise): its first word is in the window, aligned.
    let canary = match unsafe { fast.canary_test(handle, word) } {
        Ok(canary) => canary,
        Err(refusal) => return Some(Err(refusal)),
    };
    // SAFETY: the thread owns the magazine (`owned_by`) and nothing else reaches it meanwhile;
    // the only reference, for this statement.
    if !unsafe { (*magazine.as_ptr()).push(handle, kmalloc) } {
        return None;
    }
    // SAFETY: as for the canary test; the object is being freed.
    unsafe { FastPath::mark_free_at(word, Some(canary)) };
    server.lease_hit(lease, false, kmalloc);
    Some(Ok(()))
}

/// Pops a handle from `magazine` and hands its object out.
///
/// # Safety
/// The calling thread owns `magazine` and holds its lease ([`ThreadMagazines::owned`]); no
/// other reference to the magazine is live.
#[inline(always)]
unsafe fn pop_from(fast: &FastPath, magazine: NonNull<ThreadMagazine>) -> Option<NonNull<u8>> {
    // SAFETY: the caller's promise: the only reference, for this call.
    let handle = unsafe { (*magazine.as_ptr()).pop() }?;
    // SAFETY: every handle in a thread magazine passed `FastPath::holds`: it was admitted
    // (`push_onto`) or checked when it came from the shared layer (`stripe_refill`).
    Some(unsafe { fast.hand_out(handle) })
}

/// The hardened free's checks of `handle`, then a push onto `magazine` (`split`: see
/// [`ThreadMagazine::push`]) and the canary: whether it was pushed (not full).
///
/// # Safety
/// As [`pop_from`].
#[inline(always)]
unsafe fn push_onto(
    fast: &FastPath,
    magazine: NonNull<ThreadMagazine>,
    handle: u64,
    split: bool,
) -> Result<bool, Refusal> {
    // SAFETY: the caller's promise: the only reference, for this call.
    let magazine = unsafe { &mut *magazine.as_ptr() };
    let top = if fast.writes_canary() { None } else { magazine.top() };
    let canary = fast.admit(handle, top)?;
    if !magazine.push(handle, split) {
        return Ok(false);
    }
    fast.mark_free(handle, canary);
    Ok(true)
}

/// A [`Cache`]'s per-thread magazines, with a copy of its slot's [`FastPath`]: the fast
/// paths of `alloc` and `free` test one field of the cache (this, present) and need nothing
/// else of it.
pub(crate) struct CacheThreads {
    pub(super) magazines: Box<ThreadMagazines>,
    fast: FastPath,
    /// The object check, where the cache's freed objects carry the canary and its object
    /// starts are 8-byte aligned (every cache without ctor or dtor whose stride is a multiple
    /// of 8): then `free` takes [`CacheThreads::push_checked`].
    checked: Option<ObjectCheck>,
}

impl CacheThreads {
    /// Empty thread magazines in front of the slot `m` (a cache's, never a kmalloc class's).
    pub(super) fn new(m: &Magazines) -> Self {
        debug_assert!(!m.kmalloc, "a Cache's magazines are not a kmalloc class's");
        let checked = m.fast.check().filter(|c| m.fast.writes_canary() && c.starts_aligned());
        CacheThreads { magazines: Box::new(ThreadMagazines::new()), fast: m.fast, checked }
    }

    /// `alloc`'s fast path on the calling thread's magazine: a pop. `None` (nothing done)
    /// when the thread has no stripe yet, does not own its magazine now, or the magazine is
    /// empty: then the caller's slow path. The hit counts as an `alloc` hit (a cache's
    /// magazines are never a kmalloc class's).
    #[inline(always)]
    pub(super) fn pop<T: Transport>(&self, server: &Memserver<T>) -> Option<NonNull<u8>> {
        let lease = LeaseWord::current();
        let magazine = self.magazines.owned_by(lease)?;
        // SAFETY: the magazine of this thread's lease, which it owns (`owned_by`); nothing
        // else reaches it meanwhile.
        let ptr = unsafe { pop_from(&self.fast, magazine) }?;
        server.lease_hit(lease, true, false);
        Some(ptr)
    }

    /// `free`'s fast path (hardened) on the calling thread's magazine: `Some(Ok(()))` once
    /// pushed, `Some(Err(_))` for a refused pointer, `None` (nothing done) when the caller's
    /// slow path must run (no stripe yet, not owned now, a full magazine).
    #[inline(always)]
    pub(super) fn push<T: Transport>(&self, server: &Memserver<T>, ptr: NonNull<u8>) -> Option<Result<(), Refusal>> {
        match &self.checked {
            Some(check) => self.push_checked(server, check, ptr),
            None => self.push_general(server, ptr),
        }
    }

    /// [`CacheThreads::push`] of a cache with canaries and aligned object starts: the steps of
    /// `kfree`'s fast path (`kmalloc/front.rs`; both end in [`free_owned`]) with the cache's
    /// check, one test of the cache's kind instead of one per step. The object-start test
    /// implies the alignment the canary's load needs; a pointer that is no object of this
    /// cache's slabs goes to the slow path (the general rules and errors), except a pointer
    /// into its slabs that is no object start (`InvalidObject`) and a double free
    /// (`DoubleFree`), refused here as there.
    #[inline(always)]
    fn push_checked<T: Transport>(
        &self,
        server: &Memserver<T>,
        check: &ObjectCheck,
        ptr: NonNull<u8>,
    ) -> Option<Result<(), Refusal>> {
        let handle = self.fast.offset(ptr);
        let owner = self.fast.page_owner(handle)?;
        if !check.owns(owner) {
            return None;
        }
        // SAFETY: `check` owns the word of a handle below the limit, and is `checked`, whose
        // object starts are aligned (`CacheThreads::new`).
        unsafe { free_owned(server, &self.fast, check, &self.magazines, Freed { ptr, handle, owner }, false) }
    }

    /// [`CacheThreads::push`] of any other cache, step by step.
    #[inline(always)]
    fn push_general<T: Transport>(&self, server: &Memserver<T>, ptr: NonNull<u8>) -> Option<Result<(), Refusal>> {
        let lease = LeaseWord::current();
        let magazine = self.magazines.owned_by(lease)?;
        let handle = match self.fast.held(ptr) {
            Ok(handle) => handle,
            Err(refusal) => return Some(Err(refusal)),
        };
        // SAFETY: as in `pop`. A cache's magazine is one stack (`split` false: see
        // `ThreadMagazine::push`).
        match unsafe { push_onto(&self.fast, magazine, handle, false) } {
            Ok(true) => {}
            Ok(false) => return None,
            Err(refusal) => return Some(Err(refusal)),
        }
        server.lease_hit(lease, false, false);
        Some(Ok(()))
    }
}

impl Magazines {
    fn ptr<T: Transport>(&self, server: &Memserver<T>, handle: protocol::Handle) -> Result<NonNull<u8>, Error> {
        server.object(handle, self.geometry.object_size as usize)
    }

    /// The fast path of `alloc`: a pop from thread magazine `stripe` of `threads` (the calling
    /// thread's lease); `None` when it is empty (then [`Magazines::stripe_refill`]).
    #[inline(always)]
    pub(crate) fn stripe_pop<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
    ) -> Option<NonNull<u8>> {
        let magazine = threads.owned(stripe)?;
        // SAFETY: `stripe` is this thread's lease (from `threads::stripe()` on this thread, by
        // the caller) and it owns the magazine (`owned`); nothing else reaches it meanwhile.
        let ptr = unsafe { pop_from(&self.fast, magazine) }?;
        server.stripe_hit(stripe, true, self.kmalloc);
        Some(ptr)
    }

    /// `alloc` found no handle on the thread magazine (or the stripe was leased just now: then
    /// it may hold an exited thread's): one handle from the shared layer (refilled by IPC if it
    /// is empty too) to return, and up to half a thread magazine more from what the loaded
    /// magazine holds.
    #[cold]
    #[inline(never)]
    pub(crate) fn stripe_refill<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
    ) -> Result<NonNull<u8>, Error> {
        if !threads.own(stripe) {
            // A flush is emptying this thread's magazine: the shared layer serves.
            let _guard = server.slot_lock(self.index).lock();
            return self.alloc(server, &mut Pending::default()).and_then(|h| self.ptr(server, h));
        }
        // A stripe leased just now may have inherited the objects of a thread that exited.
        if let Some(ptr) = self.stripe_pop(server, threads, stripe) {
            return Ok(ptr);
        }
        let mut batch = [0u64; THREAD_BATCH];
        let mut pending = Pending::default();
        let (first, moved) = {
            let _guard = server.slot_lock(self.index).lock();
            let first = self.take(server, &mut pending)?;
            let mut moved = 0;
            for slot in batch.iter_mut().skip(1) {
                let Some(handle) = self.slot.pop() else { break };
                if !self.fast.holds(handle) {
                    // Not an object of the window: it stays in the shared layer, whose
                    // checked path reports it.
                    self.slot.push(self.capacity, handle);
                    break;
                }
                *slot = handle;
                moved += 1;
            }
            (first, moved)
        };
        // SAFETY: this thread's lease (see `stripe_pop`); the closure only pushes. The
        // magazine is empty (`stripe_pop` found nothing), so the batch fits.
        let unplaced = unsafe {
            threads.with(stripe, |t| batch.iter().skip(1).take(moved).filter(|&&handle| !t.fill(handle)).count())
        };
        if unplaced != Some(0) {
            return Err(Error::UnexpectedReply);
        }
        if !pending.missed {
            server.stripe_hit(stripe, true, self.kmalloc);
        }
        server.publish_stripe(stripe);
        self.ptr(server, self.hand_out(server, first))
    }

    /// The fast path of `free` (hardened) on thread magazine `stripe` of `threads` (the
    /// calling thread's lease): `Ok(true)` once pushed, `Ok(false)` when the magazine is full
    /// or not this thread's now (then [`Magazines::stripe_drain`]), the refusal otherwise.
    /// (Not [`Magazines::thread_push`]'s body: reached from there, with the bounds check first
    /// and the split read from `self`, the `Cache::alloc`+`free` pair measured 4.9 ns, not 4.25.)
    #[inline]
    pub(crate) fn stripe_push<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        handle: u64,
    ) -> Result<bool, Refusal> {
        let Some(magazine) = threads.owned(stripe) else { return Ok(false) };
        // SAFETY: this thread's lease and magazine (`owned`, see `stripe_pop`).
        if !unsafe { push_onto(&self.fast, magazine, handle, self.kmalloc) }? {
            return Ok(false);
        }
        server.stripe_hit(stripe, false, self.kmalloc);
        Ok(true)
    }

    /// The thread magazine is full: half of it goes to the shared layer (drained to the
    /// server by IPC if that is full too), then `handle` goes in (checked again: the
    /// refusal, if any, is the fast path's).
    #[cold]
    #[inline(never)]
    pub(crate) fn stripe_drain<T: Transport>(
        &self,
        server: &Memserver<T>,
        threads: &ThreadMagazines,
        stripe: usize,
        handle: u64,
    ) -> Result<(), Error> {
        if !threads.own(stripe) {
            // A flush is emptying this thread's magazine: the shared layer takes the object.
            let _guard = server.slot_lock(self.index).lock();
            return self.free(server, &mut Pending::default(), protocol::Handle(handle));
        }
        let missed = {
            let _guard = server.slot_lock(self.index).lock();
            self.move_to_shared(server, threads, stripe, THREAD_BATCH)?
        };
        let magazine = threads.owned(stripe).ok_or(Error::UnexpectedReply)?;
        // SAFETY: this thread's lease and magazine (`owned`, see `stripe_pop`).
        if !unsafe { push_onto(&self.fast, magazine, handle, self.kmalloc) }? {
            return Err(Error::UnexpectedReply);
        }
        if !missed {
            server.stripe_hit(stripe, false, self.kmalloc);
        }
        server.publish_stripe(stripe);
        Ok(())
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
            // SAFETY: as above; `remove_top` does not re-enter.
            unsafe { threads.with(stripe, ThreadMagazine::remove_top) };
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

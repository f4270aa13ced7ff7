//! Per-thread magazines: Bonwick's per-CPU layer, with a thread in the role of the CPU.
//!
//! Each thread that uses a cache gets its own small magazine of handles in the cache's private
//! memory ([`ThreadMagazines`], one [`ThreadMagazine`] per *stripe*), reached without a lock or
//! an atomic instruction: `alloc` pops from it and `free` pushes onto it. Only when it runs
//! empty (or full) does the thread take the slot's lock and move half a magazine from (or to)
//! the shared layer: the slot's two magazines in the control region, which exchange whole
//! magazines with the server's depot by IPC. So two threads on one cache meet only once every
//! [`THREAD_BATCH`] operations, and never while one of them waits for the server.
//!
//! A stripe belongs to one thread at a time: a thread *leases* a stripe number (process-wide,
//! the same in every cache) at its first use and gives it back when it exits; the next thread
//! to lease the number inherits the magazines (as a CPU's magazines outlive the thread that
//! filled them). Threads beyond [`STRIPES`] at once, and calls from thread-exit destructors
//! that run after the lease is returned, use the shared layer under the slot's lock. Objects
//! parked in stripes go back to the shared layer when their thread calls `flush`/`shrink`,
//! when the cache is destroyed or dropped (no other thread can use it then), and batch by
//! batch as the stripe overflows.
//!
//! This layer needs thread-local storage, so it exists with the `std` feature; a `no_std`
//! client (an seL4 task is single-threaded) uses the shared layer directly.

use core::cell::{Cell, UnsafeCell};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Stripes (threads with magazines of their own at once, process-wide).
pub(crate) const STRIPES: usize = 16;
/// Handles one side of a thread magazine holds (it has two: [`ThreadMagazine`]). Tried: 14,
/// which makes a stripe 256 bytes (the fast paths reach a magazine with two shifts instead of
/// multiplications by 5; kmalloc+kfree pair ~5 % faster, 20 % less memory per cache), but
/// `make bench`'s exchange rounds then cost the server 67 instructions per object moved
/// instead of 57 (not investigated further; 14 does not divide the shared magazines of 64).
pub(crate) const THREAD_SIDE: usize = 16;
/// Handles moved between a thread magazine and the shared layer at a time: one side.
pub(crate) const THREAD_BATCH: usize = THREAD_SIDE;

/// Bit `i`: stripe `i` is leased by a live thread.
static LEASED: AtomicU64 = AtomicU64::new(0);

/// Per stripe number, the generation of its lease: a new value at every lease and at every
/// release, so the generation of a thread that has exited is never current again.
static GENERATION: [AtomicU32; STRIPES] = [const { AtomicU32::new(1) }; STRIPES];

/// `Stripe::owner` while a `flush` of another thread empties the magazine.
const FLUSHING: u32 = u32::MAX;

const _: () = assert!(STRIPES <= 64 && STRIPES < NO_STRIPE as usize);

/// A lease not taken yet.
const UNASSIGNED: u8 = u8::MAX;
/// No stripe was free: this thread uses the shared layer.
const NO_STRIPE: u8 = u8::MAX - 1;
/// The generation a thread without a stripe reads: no lease is given it, so no stripe's
/// owner ever holds it.
const NO_LEASE: u32 = 1;
/// The stride of a [`ThreadMagazines`]'s stripes and of an [`AllStripeCounters`]' entries.
const STRIPE_BYTES: usize = size_of::<Padded<Stripe>>();

const _: () = assert!(STRIPES * STRIPE_BYTES <= u16::MAX as usize, "a stripe's offset fits LEASE_WORD's 16 bits");

/// Returns this thread's stripe when the thread exits (a thread-local with a destructor,
/// touched once, at the lease; the fast path reads [`LEASE_WORD`], which has none).
struct Lease;

impl Lease {
    /// The [`LEASE_WORD`] of `stripe` (a stripe number, [`UNASSIGNED`] or [`NO_STRIPE`]) and
    /// `generation`; without a stripe, the offset is 0 and the generation [`NO_LEASE`].
    const fn word(stripe: u8, generation: u32) -> u64 {
        let (offset, generation) = match (stripe as usize) < STRIPES {
            true => (stripe as usize * STRIPE_BYTES, generation),
            false => (0, NO_LEASE),
        };
        (generation as u64) << 32 | (stripe as u64) << 16 | offset as u64
    }

    #[cold]
    fn acquire() -> Option<usize> {
        // Registering the destructor may allocate, and an allocation may be a `kmalloc` (the
        // global allocator) that comes back here: meanwhile this thread uses the shared layer.
        set_stripe(NO_STRIPE);
        // Registers the destructor that gives the stripe back; if this thread is already
        // exiting (its thread-locals are being destroyed), it gets no stripe.
        if LEASE.try_with(|_| ()).is_err() {
            return None;
        }
        let mut leased = LEASED.load(Ordering::Relaxed);
        loop {
            let free = (!leased).trailing_zeros() as usize;
            if free >= STRIPES {
                set_stripe(NO_STRIPE);
                return None;
            }
            // Acquire: the stripe's previous owner released it (Release in `drop`) after its
            // last access, so this thread's accesses come after all of those.
            match LEASED.compare_exchange_weak(leased, leased | 1 << free, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => {
                    let generation = GENERATION.get(free).map_or(NO_LEASE, next_generation);
                    LEASE_WORD.set(Lease::word(free as u8, generation));
                    return Some(free);
                }
                Err(now) => leased = now,
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let stripe = stripe_byte();
        // The fast paths stop using the stripe now. A guard holds its magazine on its own and
        // goes on popping and pushing there; its refills and drains use the shared layer.
        set_stripe(NO_STRIPE);
        if GUARDS.get() > 0 {
            // A guard (kept in another thread-local) still uses the stripe: the last one to
            // go gives it back (`GuardLease::drop`).
            RETIRED.set(stripe);
        } else {
            release(stripe);
        }
    }
}

/// Gives the lease of `stripe` back, after this thread's last use of its magazines.
fn release(stripe: u8) {
    if let Some(generation) = GENERATION.get(usize::from(stripe)) {
        // Whoever sees the new generation (a `flush`, Acquire) may empty the magazines.
        next_generation(generation);
        LEASED.fetch_and(!(1u64 << stripe), Ordering::Release);
    }
}

/// A [`CacheGuard`](crate::CacheGuard)'s share of its thread's lease: while one exists, the
/// thread's stripe is not given back, even if the thread's lease ends first (the guard lives
/// in a thread-local that is destroyed after the lease's), so a guard needs no check per
/// operation that its stripe is still its thread's. Not `Send`. A guard that is leaked
/// (`mem::forget`) keeps its thread's stripe leased for good.
pub(crate) struct GuardLease {
    _thread: PhantomData<*const ()>,
}

impl GuardLease {
    /// A share of the calling thread's lease of `stripe` (from [`stripe()`] on this thread).
    pub(crate) fn new(stripe: usize) -> Option<Self> {
        if usize::from(stripe_byte()) != stripe {
            return None;
        }
        GUARDS.set(GUARDS.get().checked_add(1)?);
        Some(GuardLease { _thread: PhantomData })
    }
}

impl Drop for GuardLease {
    fn drop(&mut self) {
        let left = GUARDS.get().saturating_sub(1);
        GUARDS.set(left);
        if left == 0 {
            let retired = RETIRED.replace(NO_STRIPE);
            if retired != NO_STRIPE {
                release(retired);
            }
        }
    }
}

/// Advances a stripe's generation (never 0, "no owner", [`NO_LEASE`], nor [`FLUSHING`]); the
/// new value.
fn next_generation(generation: &AtomicU32) -> u32 {
    loop {
        let next = generation.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
        if next != 0 && next != NO_LEASE && next != FLUSHING {
            return next;
        }
    }
}

std::thread_local! {
    /// This thread's lease, in one word so the fast path reads it with one load (no
    /// destructor, so reading it is one thread-local load), [`Lease::word`]: bits 0-15 the
    /// stripe's byte offset in a [`ThreadMagazines`] (and in [`AllStripeCounters`], which
    /// has the same stride), bits 16-23 the stripe, [`UNASSIGNED`] or [`NO_STRIPE`], the high
    /// half the generation of the lease (`GENERATION` when it leased). Without a stripe the
    /// offset is 0 and the generation [`NO_LEASE`], which no stripe's owner ever holds: the
    /// fast paths need no test of their own that the thread has a stripe.
    static LEASE_WORD: Cell<u64> = const { Cell::new(Lease::word(UNASSIGNED, NO_LEASE)) };
    static LEASE: Lease = const { Lease };
    /// Live [`GuardLease`]s of this thread.
    static GUARDS: Cell<u32> = const { Cell::new(0) };
    /// The stripe whose lease ended while guards still used it ([`NO_STRIPE`]: none).
    static RETIRED: Cell<u8> = const { Cell::new(NO_STRIPE) };
}

/// The stripe byte of [`LEASE_WORD`].
#[inline(always)]
fn stripe_byte() -> u8 {
    (LEASE_WORD.get() >> 16) as u8
}

/// Sets [`LEASE_WORD`] to "no stripe" ([`UNASSIGNED`] or [`NO_STRIPE`]).
fn set_stripe(none: u8) {
    debug_assert!(usize::from(none) >= STRIPES);
    LEASE_WORD.set(Lease::word(none, NO_LEASE));
}

/// The generation of this thread's lease ([`LEASE_WORD`]'s high half).
#[inline(always)]
fn my_generation() -> u32 {
    (LEASE_WORD.get() >> 32) as u32
}

/// This thread's lease as the fast paths read it: one thread-local load, from which the
/// magazine of the thread's stripe in any cache, and where the stripe counts its hits, are an
/// addition away. A thread without a stripe reads offset 0 and generation [`NO_LEASE`]: the
/// test that it owns stripe 0's magazine fails, so it takes the slow path (which leases).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaseWord(u64);

impl LeaseWord {
    /// The calling thread's.
    #[inline(always)]
    pub(crate) fn current() -> LeaseWord {
        LeaseWord(LEASE_WORD.get())
    }

    /// The stripe's byte offset in a [`ThreadMagazines`] and an [`AllStripeCounters`]: below
    /// `STRIPES * STRIPE_BYTES` and a multiple of `STRIPE_BYTES`, as [`Lease::word`] makes
    /// every value of [`LEASE_WORD`].
    #[inline(always)]
    fn offset(self) -> usize {
        usize::from(self.0 as u16)
    }

    /// The lease's generation.
    #[inline(always)]
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The entry of this lease's stripe in `entries`, one per stripe, [`STRIPE_BYTES`] each
    /// (a [`ThreadMagazines`]'s stripes, an [`AllStripeCounters`]' counters): no bounds test.
    #[inline(always)]
    fn entry_of<E>(self, entries: &[E; STRIPES]) -> &E {
        const { assert!(size_of::<E>() == STRIPE_BYTES, "an entry per stripe, STRIPE_BYTES apart") };
        // SAFETY: the offset is a multiple of the stride below `STRIPES` strides
        // (`LeaseWord::offset`), so it is the start of one of the entries.
        unsafe { &*entries.as_ptr().cast::<u8>().add(self.offset()).cast::<E>() }
    }
}

/// The calling thread's stripe, leasing one at its first call; `None` when every stripe is
/// leased or the thread is exiting.
#[inline]
pub(crate) fn stripe() -> Option<usize> {
    match stripe_byte() {
        UNASSIGNED => Lease::acquire(),
        NO_STRIPE => None,
        stripe => Some(usize::from(stripe)),
    }
}

/// A stack of handles.
#[derive(Debug)]
struct Side {
    count: usize,
    handles: [u64; THREAD_SIDE],
}

impl Side {
    const EMPTY: Side = Side { count: 0, handles: [0; THREAD_SIDE] };

    #[inline(always)]
    fn pop(&mut self) -> Option<u64> {
        let top = self.count.checked_sub(1)?;
        let handle = *self.handles.get(top)?;
        self.count = top;
        Some(handle)
    }

    #[inline(always)]
    fn push(&mut self, handle: u64) -> bool {
        let Some(slot) = self.handles.get_mut(self.count) else { return false };
        *slot = handle;
        self.count += 1;
        true
    }

    #[inline(always)]
    fn top(&self) -> Option<u64> {
        self.handles.get(self.count.checked_sub(1)?).copied()
    }
}

/// One thread's magazine of one cache, in private memory: two stacks of handles. For the
/// kmalloc classes, as mimalloc's pages keep a `free` list to allocate from and a `local_free`
/// list that frees go to: `alloc` pops from the *alloc* side and `free` pushes onto the *free*
/// side, so an allocation never waits for the store of the free just before it (whose address the
/// processor learns late: `kfree` finds the magazine through the page-owner word of the
/// object); when the alloc side runs dry the free side's handles move over, newest on top.
/// Measured with `make bench`'s kmalloc+kfree pair: 9.3 ns with one stack, 7.1 with two. A
/// cache's `free` knows its magazine early, and there one stack is faster (4.6 against 5.4 ns
/// for `Cache::alloc`+`free`): it pushes where `alloc` pops ([`ThreadMagazine::push`]).
#[derive(Debug)]
pub(crate) struct ThreadMagazine {
    alloc: Side,
    free: Side,
}

impl ThreadMagazine {
    const EMPTY: ThreadMagazine = ThreadMagazine { alloc: Side::EMPTY, free: Side::EMPTY };

    /// A handle to allocate: the alloc side's top (after taking the free side's handles over if
    /// it is empty).
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<u64> {
        match self.alloc.pop() {
            Some(handle) => Some(handle),
            None => self.take_freed(),
        }
    }

    #[cold]
    fn take_freed(&mut self) -> Option<u64> {
        self.move_freed();
        self.alloc.pop()
    }

    /// Moves the free side's handles onto the (empty) alloc side, in their order, so the one
    /// freed last goes out first. A copy, not a swap of the two sides: `alloc` only ever reads
    /// the alloc side's count, which `free` never writes.
    fn move_freed(&mut self) {
        // The whole array (a fixed-size copy the compiler does in a few vector moves, cheaper
        // than a call to copy just the handles held).
        self.alloc.handles = self.free.handles;
        self.alloc.count = self.free.count.min(THREAD_SIDE);
        self.free.count = 0;
    }

    /// Pushes a freed handle unless both sides are full. `split` (the kmalloc classes, whose
    /// `kfree` learns the magazine late): onto the free side (with an empty alloc side, the
    /// free side's handles move over first when it is full). Else (a cache, whose `free`
    /// knows its magazine from the start): onto the alloc side, as one stack, the next `alloc`
    /// taking it back at once; the free side takes the overflow.
    #[inline(always)]
    pub(crate) fn push(&mut self, handle: u64, split: bool) -> bool {
        match split {
            true => self.free.push(handle) || self.push_full(handle),
            false => self.alloc.push(handle) || self.free.push(handle),
        }
    }

    #[cold]
    fn push_full(&mut self, handle: u64) -> bool {
        if self.alloc.count != 0 {
            return false;
        }
        self.move_freed();
        self.free.push(handle)
    }

    /// Puts a handle from the shared layer on the alloc side, unless it is full.
    pub(crate) fn fill(&mut self, handle: u64) -> bool {
        self.alloc.push(handle)
    }

    /// The handle freed last if the free side has any, else the alloc side's top: every handle
    /// here is a free object, so freeing it again is a double free.
    #[inline(always)]
    pub(crate) fn top(&self) -> Option<u64> {
        self.free.top().or_else(|| self.alloc.top())
    }

    /// Removes the handle [`ThreadMagazine::top`] names (to move it to the shared layer).
    pub(crate) fn remove_top(&mut self) -> Option<u64> {
        self.free.pop().or_else(|| self.alloc.pop())
    }

    /// Handles held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.alloc.count + self.free.count
    }
}

/// Cache-line aligned, so two threads' stripes never share a line.
#[repr(align(64))]
#[derive(Debug)]
struct Padded<T>(T);

/// One stripe of a cache: the generation of the lease whose thread owns the magazine (0:
/// nobody yet; [`FLUSHING`]: a `flush` is emptying it), and the magazine.
struct Stripe {
    owner: AtomicU32,
    magazine: UnsafeCell<ThreadMagazine>,
}

const _: () = assert!(size_of::<Padded<Stripe>>() == 320, "a stripe is 320 bytes (THREAD_SIDE)");

/// A cache's thread magazines, one per stripe.
pub(crate) struct ThreadMagazines {
    stripes: [Padded<Stripe>; STRIPES],
}

// SAFETY: the magazine of stripe `i` is only reached by the thread whose lease generation is
// in its `owner` (set by that thread's compare-exchange, [`ThreadMagazines::own`]), by a
// `flush` that swapped a stale owner for FLUSHING ([`ThreadMagazines::take_stale`]), or
// through `&mut ThreadMagazines`; ownership hands over with Release/Acquire ordering.
unsafe impl Sync for ThreadMagazines {}

impl ThreadMagazines {
    /// Empty magazines for every stripe.
    pub(crate) fn new() -> Self {
        ThreadMagazines {
            stripes: core::array::from_fn(|_| {
                Padded(Stripe { owner: AtomicU32::new(0), magazine: UnsafeCell::new(ThreadMagazine::EMPTY) })
            }),
        }
    }

    /// Whether the calling thread owns the magazine of `stripe` (its lease, from [`stripe()`]
    /// on this thread): one relaxed load on the fast path; the first use of the stripe in this
    /// cache by this lease takes it over from a thread that exited. `false` while a `flush` is
    /// emptying it (then the caller uses the shared layer).
    #[inline]
    pub(crate) fn own(&self, stripe: usize) -> bool {
        self.owned(stripe).is_some()
    }

    /// The magazine of `stripe` if the calling thread owns it ([`ThreadMagazines::own`]). The
    /// pointer may be dereferenced as [`ThreadMagazines::with`] runs its closure: by this
    /// thread, while its lease of `stripe` lasts (or a [`GuardLease`] of it), one reference at a time.
    #[inline]
    pub(crate) fn owned(&self, stripe: usize) -> Option<NonNull<ThreadMagazine>> {
        let s = &self.stripes.get(stripe)?.0;
        let me = my_generation();
        Self::owned_as(s, me)
    }

    /// [`ThreadMagazines::owned`] for the stripe of `lease` (the calling thread's, just read):
    /// no bounds test, and none that the thread has a stripe (then this is `None`).
    #[inline(always)]
    pub(crate) fn owned_by(&self, lease: LeaseWord) -> Option<NonNull<ThreadMagazine>> {
        Self::owned_as(&lease.entry_of(&self.stripes).0, lease.generation())
    }

    #[inline(always)]
    fn owned_as(s: &Stripe, me: u32) -> Option<NonNull<ThreadMagazine>> {
        if s.owner.load(Ordering::Relaxed) == me || Self::take_over(&s.owner, me) {
            return NonNull::new(s.magazine.get());
        }
        None
    }

    /// Makes the thread of generation `me` the owner, unless a `flush` is emptying the
    /// magazine or the thread has no lease ([`NO_LEASE`]).
    #[cold]
    fn take_over(owner: &AtomicU32, me: u32) -> bool {
        let current = owner.load(Ordering::Acquire);
        me != NO_LEASE
            && current != FLUSHING
            && owner.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Takes the magazine of `stripe` for a `flush` if the thread that owns it has exited
    /// (its generation is not current any more); the owner goes back to "nobody" when the
    /// returned guard drops.
    pub(crate) fn take_stale(&self, stripe: usize) -> Option<StaleStripe<'_>> {
        let s = &self.stripes.get(stripe)?.0;
        let owner = s.owner.load(Ordering::Acquire);
        let current = GENERATION.get(stripe)?.load(Ordering::Acquire);
        if owner == FLUSHING || owner == current {
            return None;
        }
        s.owner.compare_exchange(owner, FLUSHING, Ordering::AcqRel, Ordering::Relaxed).ok()?;
        Some(StaleStripe { owner: &s.owner })
    }

    /// Runs `f` on the magazine of `stripe`.
    ///
    /// # Safety
    /// - The calling thread owns the stripe's magazine: [`ThreadMagazines::own`] said so on
    ///   this thread (and the lease is still this thread's), or it holds the stripe's
    ///   [`StaleStripe`];
    /// - `f` does not reach this cache's thread magazines again (no nested call of `with` for
    ///   the same stripe while `f` runs).
    #[inline]
    pub(crate) unsafe fn with<R>(&self, stripe: usize, f: impl FnOnce(&mut ThreadMagazine) -> R) -> Option<R> {
        let cell = &self.stripes.get(stripe)?.0.magazine;
        // SAFETY: only this thread reaches the stripe (its lease), and not re-entrantly (the
        // caller's promise), so this is the only reference to the magazine while `f` runs.
        Some(f(unsafe { &mut *cell.get() }))
    }

    /// Every stripe's magazine, with exclusive access (the cache is being dropped or destroyed).
    pub(crate) fn all(&mut self) -> impl Iterator<Item = &mut ThreadMagazine> {
        self.stripes.iter_mut().map(|p| p.0.magazine.get_mut())
    }
}

/// A `flush`'s hold on the magazine of a stripe whose thread exited.
pub(crate) struct StaleStripe<'a> {
    owner: &'a AtomicU32,
}

impl Drop for StaleStripe<'_> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Release);
    }
}

/// The hits one stripe counted and has not yet added to the control-region header: only the
/// stripe's thread changes them (a load and a store, no read-modify-write instruction), and it
/// publishes them at each trip to the shared layer and when asked for counters. One counter per
/// kind of operation, so a hit is one increment.
#[derive(Debug, Default)]
pub(crate) struct StripeCounters {
    /// `alloc`, `free`, `kmalloc`, `kfree` hits, in [`StripeCounters::index`] order.
    hits: [AtomicU64; 4],
}

/// One [`StripeCounters`] per stripe, each on cache lines of its own, [`STRIPE_BYTES`] apart
/// as a [`ThreadMagazines`]'s stripes are: the fast paths find a thread's counters with the
/// same offset as its magazine ([`LeaseWord`]).
#[derive(Debug)]
pub(crate) struct AllStripeCounters([CounterStripe; STRIPES]);

/// A stripe's counters, padded to [`STRIPE_BYTES`].
#[derive(Debug)]
#[repr(C, align(64))]
struct CounterStripe {
    counters: StripeCounters,
    _stride: [u8; STRIPE_BYTES - size_of::<StripeCounters>()],
}

impl Default for AllStripeCounters {
    fn default() -> Self {
        AllStripeCounters(core::array::from_fn(|_| CounterStripe {
            counters: StripeCounters::default(),
            _stride: [0; STRIPE_BYTES - size_of::<StripeCounters>()],
        }))
    }
}

impl AllStripeCounters {
    /// What every stripe counted and has not published: `(alloc hits, free hits, kmalloc hits)`
    /// (the first two include `kmalloc` and `kfree`).
    pub(crate) fn pending(&self) -> (u64, u64, u64) {
        self.0.iter().fold((0, 0, 0), |(a, f, k), p| {
            let (alloc, free, kmalloc) = p.counters.counts(|c| c.load(Ordering::Relaxed));
            (a + alloc, f + free, k + kmalloc)
        })
    }

    /// The counters of `stripe` (a stripe number below [`STRIPES`]).
    #[inline]
    pub(crate) fn get(&self, stripe: usize) -> Option<&StripeCounters> {
        self.0.get(stripe).map(|p| &p.counters)
    }

    /// The counters of `lease`'s stripe (those of stripe 0 for a thread without one; such a
    /// thread counts no hit: its fast paths fail the ownership test first).
    #[inline(always)]
    pub(crate) fn of(&self, lease: LeaseWord) -> &StripeCounters {
        &lease.entry_of(&self.0).counters
    }
}

impl StripeCounters {
    #[inline(always)]
    const fn index(alloc: bool, kmalloc: bool) -> usize {
        (kmalloc as usize) << 1 | !alloc as usize
    }

    /// Counts one hit (by the stripe's thread); `kmalloc`: of `kmalloc` or `kfree`.
    #[inline(always)]
    pub(crate) fn hit(&self, alloc: bool, kmalloc: bool) {
        if let Some(counter) = self.hits.get(Self::index(alloc, kmalloc)) {
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// `(alloc hits, free hits, kmalloc hits)` as `read` gives each counter.
    fn counts(&self, mut read: impl FnMut(&AtomicU64) -> u64) -> (u64, u64, u64) {
        let [alloc, free, kmalloc, kfree] = self.hits.each_ref().map(&mut read);
        (alloc + kmalloc, free + kfree, kmalloc + kfree)
    }

    /// Takes the counts (by the stripe's thread): `(alloc hits, free hits, kmalloc hits)`.
    pub(crate) fn take(&self) -> (u64, u64, u64) {
        self.counts(|c| {
            let n = c.load(Ordering::Relaxed);
            c.store(0, Ordering::Relaxed);
            n
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_stripe_and_an_exited_thread_gives_it_back() {
        let mine = stripe().expect("a stripe");
        assert_eq!(stripe(), Some(mine), "the same stripe on every call");
        // More threads than stripes, one after another: each gets one, so each exiting thread
        // gave its stripe back.
        for _ in 0..3 * STRIPES {
            let theirs = std::thread::spawn(stripe).join().unwrap();
            assert!(theirs.is_some_and(|t| t != mine), "{theirs:?}");
        }
    }

    #[test]
    fn a_guard_keeps_its_stripe_leased_past_the_threads_lease() {
        std::thread::spawn(|| {
            let mine = stripe().expect("a stripe");
            let leased = || LEASED.load(Ordering::Acquire) >> mine & 1 == 1;
            let generation = GENERATION[mine].load(Ordering::Acquire);
            let guard = GuardLease::new(mine).expect("a guard of this thread's stripe");
            assert!(GuardLease::new(mine + 1).is_none(), "not this thread's stripe");
            // The thread's lease ends (its thread-local destructor) while the guard lives on.
            drop(Lease);
            assert_eq!(stripe(), None, "no new user of the stripe");
            assert!(leased(), "still leased: the guard uses it");
            assert_eq!(GENERATION[mine].load(Ordering::Acquire), generation, "no flush may take it");
            drop(guard);
            // Given back: a new generation (its own release's, or that of a thread of another
            // test that leased the stripe since, which needed it free).
            assert_ne!(GENERATION[mine].load(Ordering::Acquire), generation, "the last guard gave it back");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_without_a_stripe_owns_no_magazine_and_takes_none_over() {
        std::thread::spawn(|| {
            let threads = ThreadMagazines::new();
            let owner = |stripe: usize| threads.stripes[stripe].0.owner.load(Ordering::Acquire);
            // Not leased yet: offset 0, a generation no owner holds; stripe 0 stays nobody's.
            assert_eq!(LeaseWord::current().offset(), 0);
            assert!(threads.owned_by(LeaseWord::current()).is_none());
            assert_eq!(owner(0), 0, "not taken over by a thread without a lease");
            // Every stripe busy (as for a 17th thread): the same.
            set_stripe(NO_STRIPE);
            assert!(threads.owned_by(LeaseWord::current()).is_none());
            assert_eq!(owner(0), 0);
            // Leased: the lease's own stripe, taken over at its first use, then owned.
            set_stripe(UNASSIGNED);
            let mine = stripe().expect("a stripe");
            let lease = LeaseWord::current();
            assert_eq!(lease.offset(), mine * STRIPE_BYTES);
            let magazine = threads.owned_by(lease).expect("its own stripe");
            assert_eq!(magazine, threads.owned(mine).expect("the same magazine"));
            assert_eq!(owner(mine), my_generation());
            assert!((0..STRIPES).filter(|&s| s != mine).all(|s| owner(s) == 0), "no other stripe");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn thread_magazine_allocates_what_was_freed_and_bounds_what_it_holds() {
        let mut m = ThreadMagazine::EMPTY;
        assert_eq!(m.pop(), None);
        for h in 1..=4u64 {
            assert!(m.fill(h * 8));
        }
        assert!(m.push(800, true));
        assert_eq!(m.top(), Some(800), "the handle freed last");
        // Allocation takes the alloc side first, then what was freed, newest first.
        assert_eq!([m.pop(), m.pop(), m.pop(), m.pop()], [Some(32), Some(24), Some(16), Some(8)]);
        assert!(m.push(808, true));
        assert_eq!([m.pop(), m.pop(), m.pop()], [Some(808), Some(800), None]);
        // Full: both sides (the free side moves over while the alloc side is empty).
        for h in 0..2 * THREAD_SIDE as u64 {
            assert!(m.push(h * 8, true), "{h}");
        }
        assert!(!m.push(1, true), "full");
        assert_eq!(m.len(), 2 * THREAD_SIDE);
        assert_eq!(m.top(), Some((2 * THREAD_SIDE as u64 - 1) * 8));
        let mut drained = 0;
        while let Some(top) = m.top() {
            assert_eq!(m.remove_top(), Some(top));
            drained += 1;
        }
        assert_eq!(drained, 2 * THREAD_SIDE);
        assert_eq!(m.pop(), None);
        // One stack (a cache): the object freed last is allocated next.
        assert!(m.fill(8) && m.push(16, false) && m.push(24, false));
        assert_eq!([m.top(), m.pop(), m.pop(), m.pop(), m.pop()], [Some(24), Some(24), Some(16), Some(8), None]);
    }
}

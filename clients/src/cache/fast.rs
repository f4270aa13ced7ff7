//! [`FastPath`]: what a slot's alloc and hardened free need about its objects, worked out once
//! when the slot is bound, so each operation is a few loads, one multiplication and a store.
//!
//! The hardened free ([`crate::hardened`]) of a handle is: in the window and 8-byte aligned
//! (one comparison and one test), the page-owner word of its page (one load from a table that
//! was checked, when the slot was bound, to cover every window page this fast path admits),
//! [`ObjectCheck::check_owner`] on it (one comparison for the cache, one multiplication and a
//! rotation for the object start), and the double-free test (the canary word of the object, or
//! for a ctor cache the object freed last). Handing an object out clears its canary: one store.
//!
//! The handles a thread magazine holds were admitted by this fast path, or checked to lie in
//! the window when they came from the shared layer ([`FastPath::holds`]), so handing one out
//! needs no check ([`FastPath::hand_out`]).

use core::ptr::NonNull;

use peer_memory::PeerMemory;
use protocol::{PAGE_SIZE, control::PAGE_OWNER_SIZE};

use crate::hardened::{Canary, ObjectCheck, Refusal};
use crate::shm::Window;

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastPath {
    /// The window's first byte.
    base: NonNull<u8>,
    /// The window's size.
    #[cfg(feature = "std")]
    window_len: u64,
    /// Handles below this have their whole object (and at least its first word) in the
    /// window and their page's entry in `owners`.
    limit: u64,
    /// The server's page-owner table, 8-byte aligned.
    owners: PeerMemory,
    /// The object-start check (`None` if the server's cache table did not describe the cache:
    /// then only the double-free test runs).
    check: Option<ObjectCheck>,
    canary: Canary,
    /// Whether freed objects carry the canary (caches without ctor or dtor).
    writes_canary: bool,
}

// SAFETY: a FastPath describes address ranges (the window, as `Window` does, and the page-owner
// table, a `PeerMemory`, both Send and Sync); its objects are used by one owner at a time (the
// kmem_cache contract) and the table only through volatile loads.
unsafe impl Send for FastPath {}
// SAFETY: as above; `&FastPath` only reads those descriptions.
unsafe impl Sync for FastPath {}

impl FastPath {
    /// The fast path over objects of `object_size` bytes in `window`, checking frees by
    /// `owners` (the page-owner table) and `check`, with `canary` as the double-free test;
    /// `writes_canary` for a cache whose freed objects are nobody's (no ctor, no dtor).
    pub(crate) fn new(
        window: &Window,
        owners: &PeerMemory,
        object_size: u32,
        check: Option<ObjectCheck>,
        canary: Canary,
        writes_canary: bool,
    ) -> Self {
        let window_len = window.len() as u64;
        // Pages the table describes (none if it is misaligned: then every free is refused).
        let aligned = owners.addr().is_multiple_of(PAGE_OWNER_SIZE);
        let pages = if aligned { (owners.len() / PAGE_OWNER_SIZE) as u64 } else { 0 };
        let described = pages.saturating_mul(PAGE_SIZE as u64);
        FastPath {
            base: window.base(),
            #[cfg(feature = "std")]
            window_len,
            limit: (window_len + 1).saturating_sub(u64::from(object_size.max(8))).min(described),
            owners: *owners,
            check,
            canary,
            writes_canary,
        }
    }

    /// Whether freed objects carry the canary.
    #[inline(always)]
    pub(crate) fn writes_canary(&self) -> bool {
        self.writes_canary
    }

    /// The check of object starts, if the cache has one.
    #[cfg(feature = "std")]
    pub(crate) fn check(&self) -> Option<ObjectCheck> {
        self.check
    }

    /// The handle of `ptr` if [`FastPath::holds`] it; else `NotInWindow` or `InvalidObject`.
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn held(&self, ptr: NonNull<u8>) -> Result<u64, Refusal> {
        let offset = self.offset(ptr);
        if self.holds(offset) { Ok(offset) } else { Err(self.not_held(offset)) }
    }

    #[cfg(feature = "std")]
    #[cold]
    fn not_held(&self, offset: u64) -> Refusal {
        if offset < self.window_len { Refusal::InvalidObject } else { Refusal::NotInWindow }
    }

    /// Whether the object at `handle` lies in the window, 8-byte aligned (what a handle needs
    /// before [`FastPath::hand_out`] may take it).
    #[inline(always)]
    pub(crate) fn holds(&self, handle: u64) -> bool {
        handle < self.limit && handle.is_multiple_of(8)
    }

    /// The hardened free's checks of `handle` ([`crate::hardened`]), `top` being the object
    /// freed last (the double-free test of a cache without canary). The canary to write once
    /// the object is in a magazine ([`FastPath::mark_free`]), if the cache writes one.
    #[inline(always)]
    pub(crate) fn admit(&self, handle: u64, top: Option<u64>) -> Result<Option<u64>, Refusal> {
        if !self.holds(handle) {
            return Err(Refusal::InvalidObject);
        }
        self.admit_held(self.check.as_ref(), handle, top)
    }

    /// [`FastPath::admit`] of a handle that [`FastPath::holds`], with `check` (this fast
    /// path's, which a caller that knows it has one passes as a constant `Some`).
    #[inline(always)]
    pub(crate) fn admit_held(
        &self,
        check: Option<&ObjectCheck>,
        handle: u64,
        top: Option<u64>,
    ) -> Result<Option<u64>, Refusal> {
        match self.writes_canary {
            true => self.admit_held_as::<true>(check, handle, top),
            false => self.admit_held_as::<false>(check, handle, top),
        }
    }

    /// [`FastPath::admit_held`] for a caller that knows whether the cache writes canaries
    /// (`CANARY`, which must be [`FastPath::writes_canary`]): no test of it here.
    #[inline(always)]
    pub(crate) fn admit_held_as<const CANARY: bool>(
        &self,
        check: Option<&ObjectCheck>,
        handle: u64,
        top: Option<u64>,
    ) -> Result<Option<u64>, Refusal> {
        if let Some(check) = check {
            // SAFETY: the handle is held (the caller's promise), so below the limit.
            check.check_owner(unsafe { self.owner_unchecked(handle) }, handle)?;
        }
        // SAFETY: the handle is held, so the object, and its first word, lies in the window,
        // aligned.
        unsafe { self.not_free_as::<CANARY>(handle, self.word(handle), top) }
    }

    /// The offset of `ptr` from the window's first byte (wrapping: a pointer below the window
    /// gives a huge one).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn offset(&self, ptr: NonNull<u8>) -> u64 {
        (ptr.as_ptr().addr() as u64).wrapping_sub(self.base.as_ptr().addr() as u64)
    }

    /// The page-owner word of the page of `handle`, if `handle` is below the limit (whose
    /// first word lies in the window and whose page the table describes; it is not checked
    /// for alignment).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn page_owner(&self, handle: u64) -> Option<u64> {
        // SAFETY: checked just before.
        (handle < self.limit).then(|| unsafe { self.owner_unchecked(handle) })
    }

    /// The page-owner word of the page of `handle`, with no check.
    ///
    /// # Safety
    /// `handle` is below the limit.
    #[inline(always)]
    unsafe fn owner_unchecked(&self, handle: u64) -> u64 {
        // SAFETY: `handle < limit` (the caller's promise), so its page's entry lies in the
        // table (`new`), which is 8-byte aligned (`new`), as is every entry.
        unsafe { self.owners.load_u64_unchecked((handle / PAGE_SIZE as u64) as usize * PAGE_OWNER_SIZE) }
    }

    /// The double-free test of a canary-writing cache's object `handle`, whose first word is
    /// at `word`: its canary, or `DoubleFree` if it carries the canary already.
    ///
    /// # Safety
    /// `word` is the object's first word, in the window and 8-byte aligned.
    #[inline(always)]
    pub(crate) unsafe fn canary_test(&self, handle: u64, word: *mut u64) -> Result<u64, Refusal> {
        let canary = self.canary.of(handle);
        // SAFETY: the caller's promise: the first word lies in the window, aligned.
        match unsafe { word.read_volatile() } == canary {
            true => Err(Refusal::DoubleFree),
            false => Ok(canary),
        }
    }

    /// The double-free test of a handle that [`FastPath::holds`], whose first word is at
    /// `word`: the canary to write (a cache that writes one), `DoubleFree` if the object
    /// carries it already or is `top`.
    ///
    /// # Safety
    /// As [`FastPath::canary_test`].
    #[inline(always)]
    unsafe fn not_free_as<const CANARY: bool>(
        &self,
        handle: u64,
        word: *mut u64,
        top: Option<u64>,
    ) -> Result<Option<u64>, Refusal> {
        if CANARY {
            // SAFETY: the caller's promise, passed on.
            return unsafe { self.canary_test(handle, word) }.map(Some);
        }
        if top == Some(handle) {
            return Err(Refusal::DoubleFree);
        }
        Ok(None)
    }

    /// Marks a freed object (now in a magazine) with its canary, from [`FastPath::admit`].
    #[inline(always)]
    pub(crate) fn mark_free(&self, handle: u64, canary: Option<u64>) {
        // SAFETY: `admit` returns a canary only for a handle whose first word lies in the
        // window, aligned; the object is being freed, so nobody else uses it.
        unsafe { Self::mark_free_at(self.word(handle), canary) };
    }

    /// [`FastPath::mark_free`] of the object whose first word is at `word` (the shared tail of
    /// `kfree`'s fast path writes at the pointer it was given, an address the processor has
    /// early).
    ///
    /// # Safety
    /// With a canary, `word` is the first word of an object being freed, in the window and
    /// 8-byte aligned.
    #[inline(always)]
    pub(crate) unsafe fn mark_free_at(word: *mut u64, canary: Option<u64>) {
        if let Some(canary) = canary {
            // SAFETY: the caller's promise; the object is being freed, so nobody else uses it.
            unsafe { word.write_volatile(canary) };
        }
    }

    /// The object `handle` for its new owner, its canary cleared.
    ///
    /// # Safety
    /// `handle` passed [`FastPath::holds`] (every handle this fast path admitted did).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) unsafe fn hand_out(&self, handle: u64) -> NonNull<u8> {
        // SAFETY: the caller's promise, passed on.
        unsafe { if self.writes_canary { self.hand_out_cleared(handle) } else { self.object(handle) } }
    }

    /// [`FastPath::hand_out`] for a fast path whose caller knows it writes canaries.
    ///
    /// # Safety
    /// As [`FastPath::hand_out`].
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) unsafe fn hand_out_cleared(&self, handle: u64) -> NonNull<u8> {
        // SAFETY: the caller's promise: the object is in the window; its first word aligned.
        let object = unsafe { self.object(handle) };
        // SAFETY: as above; the object is free, so nobody else uses it.
        unsafe { object.as_ptr().cast::<u64>().write_volatile(0) };
        object
    }

    /// The address of the object `handle`, as it is (no canary cleared).
    ///
    /// # Safety
    /// `handle` passed [`FastPath::holds`].
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) unsafe fn object(&self, handle: u64) -> NonNull<u8> {
        // SAFETY: inside the window (the caller's promise), which does not wrap (`Window::new`).
        unsafe { self.base.add(handle as usize) }
    }

    /// The first word of the object at `handle` (the caller checked [`FastPath::holds`]).
    #[inline(always)]
    fn word(&self, handle: u64) -> *mut u64 {
        self.base.as_ptr().wrapping_add(handle as usize).cast::<u64>()
    }
}

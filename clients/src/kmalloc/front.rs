//! `kmalloc`'s and `kfree`'s fast paths: a pop from, and a hardened push onto, the calling
//! thread's magazine of a kmalloc class, with what they need about all classes in one
//! session-wide [`KmallocFront`], worked out once at `Hello`.
//!
//! `kmalloc(size)`: the class of the size, the thread's stripe and its magazine of that class
//! (owned: one thread-local load and one comparison), a pop, the object's canary cleared. A
//! class without magazines never has handles there, so the pop fails and the slow path runs:
//! no test of the class is needed.
//!
//! `kfree(ptr)`: below the window's limit (one comparison), the page-owner word of its page (one
//! load, from a table checked once to cover the window), then the class the word names picks
//! the class's [`ObjectCheck`], and one comparison of the word's low half with the class's
//! (kind `Slab`, this class, its cache) settles at once that the page is a slab page of that
//! kmalloc class, that the class has magazines, and that the word's class byte was a class:
//! anything else (a large kmalloc, an object of another cache, a debug class, a pointer outside
//! every slab) takes the slow path, which gives the general rules and errors. Then the
//! object-start test (a multiplication and a rotation), the canary test, the push and the canary.

use core::ptr::NonNull;

use crate::cache::FastPath;
use crate::hardened::{ObjectCheck, Refusal};
use crate::server::Memserver;
use crate::threads::LeaseWord;
use crate::transport::Transport;

use super::{KMALLOC_CLASSES, KMALLOC_MAX_CACHE_SIZE, SIZE_INDEX, kmalloc_index};

/// Not a class: what [`class_of`] gives for sizes `kmalloc_index` has no class for.
const NO_CLASS: u8 = u8::MAX;

/// The class of sizes 0..=192 by `(size + 7) / 8`: Linux's `size_index` shifted by one, so 0
/// needs no test of its own ([`NO_CLASS`]).
const SMALL: [u8; SIZE_INDEX.len() + 1] = {
    let mut small = [NO_CLASS; SIZE_INDEX.len() + 1];
    let mut i = 0;
    while i < SIZE_INDEX.len() {
        small[i + 1] = SIZE_INDEX[i];
        i += 1;
    }
    small
};

/// [`kmalloc_index`] of `size`, [`NO_CLASS`] where it says `None`.
#[inline(always)]
fn class_of(size: usize) -> usize {
    match size {
        0..=192 => SMALL.get(size.div_ceil(8)).map_or(usize::from(NO_CLASS), |&c| usize::from(c)),
        _ => kmalloc_index(size).filter(|_| size <= KMALLOC_MAX_CACHE_SIZE).unwrap_or(usize::from(NO_CLASS)),
    }
}

/// Entries of [`KmallocFront::checks`]: the classes rounded up to a power of two, so the class
/// byte of any page-owner word, masked, picks one without a bounds check.
const ENTRIES: usize = 16;
const _: () = assert!(KMALLOC_CLASSES <= ENTRIES && ENTRIES.is_power_of_two());

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KmallocFront {
    /// The window, the page-owner table and the canary (with no check of its own: the class's
    /// comes from [`KmallocFront::checks`]); its limit is that of 8-byte objects.
    fast: FastPath,
    /// The object check of each class whose `kfree` may take the fast path: one with
    /// magazines, whose freed objects carry the canary and whose object starts are 8-byte
    /// aligned (every kmalloc class the server makes); [`ObjectCheck::NOTHING`] for the
    /// others.
    checks: [ObjectCheck; ENTRIES],
}

impl KmallocFront {
    /// The front for `fast` (the session's window, table and canary) with no class yet.
    pub(crate) fn new(fast: FastPath) -> Self {
        KmallocFront { fast, checks: [ObjectCheck::NOTHING; ENTRIES] }
    }

    /// Lets class `class`'s `kfree` take the fast path, with the checks of its magazines'
    /// fast path `of` (if it has them, writes canaries and has 8-byte aligned objects).
    pub(crate) fn enable(&mut self, class: usize, of: &FastPath) {
        let check = of.check().filter(|c| of.writes_canary() && c.starts_aligned());
        if let Some(entry) = self.checks.get_mut(class).filter(|_| class < KMALLOC_CLASSES) {
            *entry = check.unwrap_or(ObjectCheck::NOTHING);
        }
    }
}

impl<T: Transport> Memserver<T> {
    /// `kmalloc`'s fast path: a pop from the calling thread's magazine of the size's class;
    /// `None` (nothing done) where [`Memserver::kmalloc_gfp`] must run.
    #[inline(always)]
    pub(super) fn kmalloc_thread(&self, size: usize) -> Option<NonNull<u8>> {
        let threads = self.kmalloc_threads_of(class_of(size))?;
        let lease = LeaseWord::current();
        let magazine = threads.owned_by(lease)?;
        // SAFETY: `lease` is this thread's and it owns the magazine (`owned`); nothing
        // else reaches it meanwhile, and this is the only reference, for this statement.
        let handle = unsafe { (*magazine.as_ptr()).pop() }?;
        // SAFETY: every handle of a thread magazine was admitted by a fast path or checked to
        // lie in the window when it came from the shared layer (`FastPath::holds`).
        let ptr = unsafe { self.kmalloc_front().fast.hand_out_cleared(handle) };
        self.lease_hit(lease, true, true);
        Some(ptr)
    }

    /// `kfree`'s fast path (the module documentation): `Some(Ok(()))` once pushed,
    /// `Some(Err(_))` for a refused pointer, `None` (nothing done) where the slow path must run.
    #[inline(always)]
    pub(super) fn kfree_thread(&self, ptr: NonNull<u8>) -> Option<Result<(), Refusal>> {
        let front = self.kmalloc_front();
        let handle = front.fast.offset(ptr);
        let owner = front.fast.page_owner(handle)?;
        let class = (owner >> 8) as usize & (ENTRIES - 1);
        let check = front.checks.get(class)?;
        if !check.owns(owner) {
            return None;
        }
        if !check.starts_object(owner, handle) {
            return Some(Err(Refusal::InvalidObject));
        }
        // SAFETY: a check that owns a word is one `enable` set, for a class below
        // KMALLOC_CLASSES (`NOTHING` owns none), so `class` indexes the thread magazines.
        let threads = unsafe { self.kmalloc_threads_unchecked(class) };
        let lease = LeaseWord::current();
        let magazine = threads.owned_by(lease)?;
        // An object start of a slab of the class: its first word is in the window, aligned.
        let canary = match front.fast.canary_test(handle, ptr.as_ptr().cast::<u64>()) {
            Ok(canary) => canary,
            Err(refusal) => return Some(Err(refusal)),
        };
        // SAFETY: as in `kmalloc_thread`.
        if !unsafe { (*magazine.as_ptr()).push(handle, true) } {
            return None;
        }
        FastPath::mark_free_at(ptr.as_ptr().cast::<u64>(), Some(canary));
        self.lease_hit(lease, false, true);
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_of_is_kmalloc_index() {
        for size in 0..=KMALLOC_MAX_CACHE_SIZE + 4096 {
            let expected = kmalloc_index(size).unwrap_or(usize::from(NO_CLASS));
            assert_eq!(class_of(size), expected, "size {size}");
        }
        assert_eq!(class_of(usize::MAX), usize::from(NO_CLASS));
    }
}

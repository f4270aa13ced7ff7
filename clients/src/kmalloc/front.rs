//! `kmalloc`'s and `kfree`'s fast paths: a pop from, and a hardened push onto, the calling
//! thread's magazine of a kmalloc class, with what they need about all classes in one
//! session-wide [`KmallocFront`], worked out once at `Hello`.
//!
//! `kmalloc(size)`: where the size's class's thread magazines are (one table load), the
//! thread's stripe and its magazine of that class (owned: one thread-local load and one
//! comparison), a pop, the object's canary cleared. A
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
//! object-start test (one mask test for the classes whose objects tile their slabs, a
//! multiplication and a rotation for 96 and 192 bytes), the canary test, the push onto the
//! magazine (whose stripes the class's entry points to, on the same cache line as its check)
//! and the canary.

use core::ptr::NonNull;

use crate::cache::{FastPath, Freed, free_owned};
use crate::hardened::{ObjectCheck, Refusal};
use crate::server::Memserver;
use crate::threads::{LeaseWord, ThreadMagazines};
use crate::transport::Transport;

use super::{KMALLOC_CLASSES, KMALLOC_MAX_CACHE_SIZE, kmalloc_index};

/// Byte offset of the thread magazines of [`kmalloc_index`]`(size)` in the session's array of
/// them (a class's number times their size), by `(size + 7) / 8` (class boundaries are
/// multiples of 8); [`NO_OFFSET`] for size 0. One table up to 8 KiB (2 KiB of it), as mimalloc's
/// direct pages: the size needs no branch between the small sizes and the others (which a mix
/// of sizes mispredicts), and one load gives the magazines' offset, with no multiplication after
/// it (3.74–3.80 ns a `kmalloc`+`kfree` pair against 3.90–3.98 with a table of classes; a table
/// of pointers measured 4.8).
const OFFSETS: [u16; KMALLOC_MAX_CACHE_SIZE / 8 + 1] = {
    let mut offsets = [NO_OFFSET; KMALLOC_MAX_CACHE_SIZE / 8 + 1];
    let mut words = 0;
    while words < offsets.len() {
        if let Some(class) = kmalloc_index(words * 8) {
            offsets[words] = (class * size_of::<ThreadMagazines>()) as u16;
        }
        words += 1;
    }
    offsets
};
/// Not a class, in [`OFFSETS`].
const NO_OFFSET: u16 = u16::MAX;
const _: () = assert!((KMALLOC_CLASSES - 1) * size_of::<ThreadMagazines>() < NO_OFFSET as usize);

/// [`OFFSETS`] of `size`: `None` where [`kmalloc_index`] says `None`. The index is
/// `(size + 7) / 8` as mimalloc computes its word size, two instructions where `div_ceil` takes
/// six: the seven largest sizes wrap to index 0, size 0's, as they must.
#[inline(always)]
fn offset_of(size: usize) -> Option<usize> {
    OFFSETS.get(size.wrapping_add(7) >> 3).copied().filter(|&o| o != NO_OFFSET).map(usize::from)
}

/// Entries of [`KmallocFront::classes`]: the classes rounded up to a power of two, so the class
/// byte of any page-owner word, masked, picks one without a bounds check.
const ENTRIES: usize = 16;
const _: () = assert!(KMALLOC_CLASSES <= ENTRIES && ENTRIES.is_power_of_two());

/// What `kfree`'s fast path needs about one class, on one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct ClassEntry {
    /// The class's object check, or [`ObjectCheck::NOTHING`].
    check: ObjectCheck,
    /// The class's thread magazines (in the session's `kmalloc_threads`, which outlive the
    /// front: both are the session's, the magazines boxed); null where `check` is `NOTHING`.
    threads: *const ThreadMagazines,
}

impl ClassEntry {
    const NOTHING: ClassEntry = ClassEntry { check: ObjectCheck::NOTHING, threads: core::ptr::null() };
}

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KmallocFront {
    /// The window, the page-owner table and the canary (with no check of its own: the class's
    /// comes from [`KmallocFront::classes`]); its limit is that of 8-byte objects.
    fast: FastPath,
    /// Each class whose `kfree` may take the fast path: one with magazines, whose freed
    /// objects carry the canary and whose object starts are 8-byte aligned (every kmalloc
    /// class the server makes); [`ClassEntry::NOTHING`] for the others.
    classes: [ClassEntry; ENTRIES],
}

// SAFETY: the thread-magazine pointers are shared references in all but name (to the session's
// `ThreadMagazines`, which are `Sync`), read only.
unsafe impl Send for KmallocFront {}
// SAFETY: as above.
unsafe impl Sync for KmallocFront {}

impl KmallocFront {
    /// The front for `fast` (the session's window, table and canary) with no class yet.
    pub(crate) fn new(fast: FastPath) -> Self {
        KmallocFront { fast, classes: [ClassEntry::NOTHING; ENTRIES] }
    }

    /// Lets class `class`'s `kfree` take the fast path, with the checks of its magazines'
    /// fast path `of` (if it has them, writes canaries and has 8-byte aligned objects) and its
    /// thread magazines `threads` (the session's, which must outlive this front).
    pub(crate) fn enable(&mut self, class: usize, of: &FastPath, threads: &ThreadMagazines) {
        let check = of.check().filter(|c| of.writes_canary() && c.starts_aligned());
        if let Some(entry) = self.classes.get_mut(class).filter(|_| class < KMALLOC_CLASSES) {
            *entry = match check {
                Some(check) => ClassEntry { check, threads },
                None => ClassEntry::NOTHING,
            };
        }
    }
}

impl<T: Transport> Memserver<T> {
    /// `kmalloc`'s fast path: a pop from the calling thread's magazine of the size's class;
    /// `None` (nothing done) where [`Memserver::kmalloc_gfp`] must run.
    #[inline(always)]
    pub(super) fn kmalloc_thread(&self, size: usize) -> Option<NonNull<u8>> {
        let offset = offset_of(size)?;
        // SAFETY: an offset `offset_of` gives is a class's (below KMALLOC_CLASSES) times the
        // size of its thread magazines: that class's entry of the session's array of them,
        // which lives as long as the session.
        let threads = unsafe { &*self.kmalloc_threads_base().byte_add(offset) };
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
        let entry = front.classes.get((owner >> 8) as usize & (ENTRIES - 1))?;
        if !entry.check.owns(owner) {
            return None;
        }
        // SAFETY: a check that owns a word is one `enable` set (`NOTHING` owns none), with the
        // class's thread magazines, which live as long as the session (`ClassEntry::threads`).
        let threads = unsafe { &*entry.threads };
        // SAFETY: the entry's check owns the word of a handle below the limit, and `enable`
        // keeps only checks whose object starts are aligned.
        unsafe { free_owned(self, &front.fast, &entry.check, threads, Freed { ptr, handle, owner }, true) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_of_is_kmalloc_index_times_the_magazines_size() {
        let expected = |size| kmalloc_index(size).map(|class| class * size_of::<ThreadMagazines>());
        for size in 0..=KMALLOC_MAX_CACHE_SIZE + 4096 {
            assert_eq!(offset_of(size), expected(size), "size {size}");
        }
        for size in usize::MAX - 16..=usize::MAX {
            assert_eq!(offset_of(size), None, "size {size}");
        }
    }
}

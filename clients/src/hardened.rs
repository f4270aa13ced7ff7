//! The hardened free of the magazine fast path (Linux's `CONFIG_SLAB_FREELIST_HARDENED` as the
//! anchor): before a pointer goes into a magazine, the library checks, without IPC, that it
//! is the start of an object of *this* cache's slabs and that the object is not already free.
//!
//! - **Object start of this cache** ([`ObjectCheck`]): the server's page-owner table in the
//!   control region names the cache slot of every slab page (Linux's `virt_to_slab()` and
//!   `cache_from_obj()`, which `SLAB_FREELIST_HARDENED` makes check `slab->slab_cache == s`).
//!   The slab's first object and stride give the object boundaries; the test "offset is a
//!   multiple of the stride, inside the slab" is [`protocol::control::ObjectIndex`] (a
//!   multiplication and a rotation, not a division); where the objects tile their slabs
//!   exactly at a power-of-two stride (every kmalloc class but 96 and 192 bytes, and caches of
//!   such sizes), it is one mask test of the handle. A page of another cache is
//!   [`protocol::Error::WrongCache`], anything else that is no object start
//!   [`protocol::Error::InvalidObject`].
//! - **Not already free** ([`Canary`]): a freed object of a cache without a constructor gets
//!   a canary in its first word (the session's secret key xor the object's handle, so
//!   it differs per object and per run); an allocation clears it. A free that finds the canary
//!   is [`protocol::Error::DoubleFree`], wherever the first free put the object (this thread's
//!   magazine, another thread's, the shared magazines, the server's depot). Linux's hardened
//!   freelist only compares with the object at the head of the freelist (`object == fp`);
//!   Linux SLUB also writes its free pointer into freed objects. A cache with a constructor
//!   (whose freed objects must keep their constructed state) keeps Linux's check: the object
//!   just freed, at the top of the magazine.
//!
//! The server still validates every handle that comes back to it; these checks keep a buggy
//! free from handing one object to two owners inside the client before that happens.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use protocol::control::{CacheEntry, ControlLayout, ObjectIndex, PageOwner, PageOwnerKind};
use protocol::{Error as ServerError, PAGE_SIZE};
use zerocopy::FromBytes;

use crate::shm::Control;

/// Why the hardened free refused a pointer: a one-byte value, so the fast path returns it in a
/// register (the library's [`Error`](crate::Error) is made from it off the fast path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No object start (`object + 8`, no slab page).
    InvalidObject,
    /// An object of another cache.
    WrongCache,
    /// An object that is free already.
    DoubleFree,
    /// No address of the window at all.
    #[cfg(feature = "std")]
    NotInWindow,
}

impl From<Refusal> for crate::Error {
    #[cold]
    fn from(r: Refusal) -> Self {
        crate::Error::Server(match r {
            Refusal::InvalidObject => ServerError::InvalidObject,
            Refusal::WrongCache => ServerError::WrongCache,
            Refusal::DoubleFree => ServerError::DoubleFree,
            #[cfg(feature = "std")]
            Refusal::NotInWindow => return crate::Error::NotInWindow,
        })
    }
}

/// What the fast path needs to know a handle is an object start of one cache: the page-owner
/// entry its slab pages carry (the cache's index in the server's cache table), where the first
/// object of a slab lies, and the stride and object count as one divisibility test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ObjectCheck {
    table_index: u16,
    /// The low half of the page-owner word of this cache's slab pages: kind `Slab`, the
    /// cache's kmalloc class, its table index (the high half is the page's index in its slab).
    expect: u32,
    obj_offset: u64,
    /// Offset from a slab's first object → object index.
    index: ObjectIndex,
    /// The stride less one where the objects tile their slabs from the slab's first byte at a
    /// power-of-two stride no larger than a page (slabs start at a multiple of their size in
    /// the window, so an object start is a handle with none of these bits set); else
    /// [`NOT_TILED`], and the test is `index`'s.
    tiled: u64,
}

/// [`ObjectCheck::tiled`] of a cache whose object starts are not one mask test.
const NOT_TILED: u64 = u64::MAX;

// The page-owner word is read as one little-endian u64: kind, class and cache in the low half.
const _: () = assert!(cfg!(target_endian = "little"), "the page-owner word layout assumes little-endian");

impl ObjectCheck {
    /// A check that owns no page: its `expect` has kind byte 0xff, which no page-owner word has.
    #[cfg(feature = "std")]
    pub(crate) const NOTHING: ObjectCheck = ObjectCheck {
        table_index: u16::MAX,
        expect: u32::MAX,
        obj_offset: 0,
        index: match ObjectIndex::new(8, 1) {
            Some(index) => index,
            None => unreachable!(),
        },
        tiled: NOT_TILED,
    };

    /// The check for the cache at cache-table index `table_index`, described by `entry`.
    /// `None` for a geometry that describes no objects.
    pub(crate) fn of_entry(table_index: u16, entry: &CacheEntry) -> Option<ObjectCheck> {
        let index = ObjectIndex::new(u64::from(entry.stride), u64::from(entry.objects_per_slab))?;
        let owner = PageOwner::slab(table_index, entry.kmalloc_class, 0);
        Some(ObjectCheck {
            table_index,
            expect: u32::from(owner.kind) | u32::from(owner.kmalloc_class) << 8 | u32::from(owner.cache) << 16,
            obj_offset: u64::from(entry.obj_offset),
            index,
            tiled: Self::tiled(entry),
        })
    }

    /// [`ObjectCheck::tiled`] for `entry`: the stride less one if its objects fill every slab
    /// from its first byte at a power-of-two stride of at most a page, else [`NOT_TILED`].
    fn tiled(entry: &CacheEntry) -> u64 {
        let stride = u64::from(entry.stride);
        let slab = (PAGE_SIZE as u64).checked_shl(u32::from(entry.order));
        let fills = slab.is_some_and(|slab| stride * u64::from(entry.objects_per_slab) == slab);
        match entry.obj_offset == 0 && stride.is_power_of_two() && stride <= PAGE_SIZE as u64 && fills {
            true => stride - 1,
            false => NOT_TILED,
        }
    }

    /// Finds the cache-table index of `cache` (its id) and builds its check.
    pub(crate) fn of_cache(control: &Control, layout: &ControlLayout, cache: u32) -> Option<ObjectCheck> {
        (0..layout.caches).find_map(|index| {
            let entry = control.cache_entry(layout, index).filter(|e| e.cache == cache && cache != 0)?;
            ObjectCheck::of_entry(index, &entry)
        })
    }

    /// The cache's index in the server's cache table.
    pub(crate) fn table_index(&self) -> u16 {
        self.table_index
    }

    /// Checks that `handle` is the start of an object of a slab of this cache, given `owner`,
    /// the page-owner word of its page: `WrongCache` for a page of another cache,
    /// `InvalidObject` otherwise.
    #[inline(always)]
    pub(crate) fn check_owner(&self, owner: u64, handle: u64) -> Result<(), Refusal> {
        if !self.owns(owner) {
            return Err(self.refusal(owner));
        }
        match self.starts_object(owner, handle) {
            true => Ok(()),
            false => Err(Refusal::InvalidObject),
        }
    }

    /// Whether `owner` is the page-owner word of a slab page of this cache.
    #[inline(always)]
    pub(crate) fn owns(&self, owner: u64) -> bool {
        owner as u32 == self.expect
    }

    /// Whether `handle`, in a page of this cache's slabs whose page-owner word is `owner`
    /// ([`ObjectCheck::owns`]), is the start of an object.
    #[inline(always)]
    pub(crate) fn starts_object(&self, owner: u64, handle: u64) -> bool {
        if self.tiled != NOT_TILED {
            // The page is one of this cache's slabs' (`owns`), all of whose bytes are objects.
            return handle & self.tiled == 0;
        }
        // The page is page `owner >> 32` of its slab: the offset from the slab's first object
        // is the offset in the page plus that many pages, less the first object's offset.
        let in_page = handle & (PAGE_SIZE as u64 - 1);
        let offset = in_page.wrapping_add((owner >> 32) * PAGE_SIZE as u64).wrapping_sub(self.obj_offset);
        self.index.of(offset).is_some()
    }

    /// Whether every object start of this cache is 8-byte aligned (its first object's offset
    /// and its stride are multiples of 8).
    #[cfg(feature = "std")]
    pub(crate) fn starts_aligned(&self) -> bool {
        self.obj_offset.is_multiple_of(8) && self.index.stride_trailing_zeros() >= 3
    }

    /// Why a page-owner word that is not one of this cache's slab pages is refused.
    #[cold]
    fn refusal(&self, owner: u64) -> Refusal {
        let owner = PageOwner::read_from_bytes(&owner.to_ne_bytes()).unwrap_or_default();
        match owner.kind() == PageOwnerKind::Slab && owner.cache != self.table_index {
            true => Refusal::WrongCache,
            false => Refusal::InvalidObject,
        }
    }
}

/// The canary a freed object carries in its first word: `key` (secret per session, odd) xor the
/// handle, as Linux's hardened freelist mixes its pointers with `s->random` and the address;
/// odd, since handles of freed objects are 8-byte aligned, so never 0 (the word an allocation
/// leaves).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Canary {
    key: u64,
}

impl Canary {
    /// A canary keyed by `key`.
    pub(crate) fn new(key: u64) -> Self {
        Canary { key: key | 1 }
    }

    /// The canary of the object `handle`.
    #[inline]
    pub(crate) fn of(&self, handle: u64) -> u64 {
        self.key ^ handle
    }
}

/// Cache-table indexes below this have a bit in [`CanaryCaches`].
const CANARY_CACHES: usize = 1024;

/// Which of the session's caches (by cache-table index) have freed objects that are nobody's
/// (no ctor, no dtor), so a `kfree` of their objects may write the canary too.
#[derive(Debug)]
pub(crate) struct CanaryCaches([AtomicU64; CANARY_CACHES / 64]);

impl Default for CanaryCaches {
    fn default() -> Self {
        CanaryCaches([const { AtomicU64::new(0) }; CANARY_CACHES / 64])
    }
}

impl CanaryCaches {
    /// Whether the cache at `index` may carry canaries.
    pub(crate) fn get(&self, index: u16) -> bool {
        let i = usize::from(index);
        self.0.get(i / 64).is_some_and(|w| w.load(Relaxed) >> (i % 64) & 1 == 1)
    }

    /// Records whether the cache at `index` (just created) may carry canaries.
    pub(crate) fn set(&self, index: u16, canary: bool) {
        let i = usize::from(index);
        if let Some(word) = self.0.get(i / 64) {
            let bit = 1u64 << (i % 64);
            match canary {
                true => word.fetch_or(bit, Relaxed),
                false => word.fetch_and(!bit, Relaxed),
            };
        }
    }
}

/// A key that differs between sessions and runs: from the standard library's random hash keys
/// where there is one, else from addresses (ASLR) and a counter.
pub(crate) fn session_key(salt: usize) -> u64 {
    static SESSIONS: AtomicU64 = AtomicU64::new(0);
    let n = SESSIONS.fetch_add(1, Relaxed);
    let mut x = (salt as u64) ^ n.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (&SESSIONS as *const AtomicU64 as u64);
    #[cfg(feature = "std")]
    {
        use std::hash::{BuildHasher, RandomState};
        x ^= RandomState::new().hash_one(n);
    }
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::NOT_KMALLOC;

    fn entry(stride: u32, obj_offset: u32, objects: u16) -> CacheEntry {
        let kmalloc_class = protocol::control::NOT_KMALLOC;
        CacheEntry { cache: 7, stride, obj_offset, objects_per_slab: objects, kmalloc_class, ..CacheEntry::default() }
    }

    fn owner_word(owner: PageOwner) -> u64 {
        u64::from_ne_bytes(zerocopy::IntoBytes::as_bytes(&owner).try_into().unwrap())
    }

    #[test]
    fn owner_check_follows_the_page_owner_entry() {
        // 100 objects at stride 96 from offset 32: three-page slabs of cache-table index 5, one at page 10.
        let check = ObjectCheck::of_entry(5, &entry(96, 32, 100)).unwrap();
        let page = |n: u64| n * PAGE_SIZE as u64;
        let slab = |index| owner_word(PageOwner::slab(5, NOT_KMALLOC, index));
        assert_eq!(check.check_owner(slab(0), page(10) + 32), Ok(()));
        assert_eq!(check.check_owner(slab(0), page(10) + 32 + 96), Ok(()));
        // Object 43 starts on the slab's second page, object 99 on its third.
        assert_eq!(check.check_owner(slab(1), page(11) + 32 + 43 * 96 - 4096), Ok(()));
        assert_eq!(check.check_owner(slab(2), page(12) + 32 + 99 * 96 - 8192), Ok(()));
        assert_eq!(check.check_owner(slab(0), page(10) + 32 + 8), Err(Refusal::InvalidObject), "object + 8");
        assert_eq!(check.check_owner(slab(0), page(10)), Err(Refusal::InvalidObject), "before the first object");
        let past = page(12) + 32 + 100 * 96 - 8192;
        assert_eq!(check.check_owner(slab(2), past), Err(Refusal::InvalidObject), "past the last");
        assert_eq!(
            check.check_owner(owner_word(PageOwner::slab(6, NOT_KMALLOC, 0)), page(10) + 32),
            Err(Refusal::WrongCache)
        );
        assert_eq!(check.check_owner(owner_word(PageOwner::NONE), page(10) + 32), Err(Refusal::InvalidObject));
        assert_eq!(check.check_owner(owner_word(PageOwner::large(1)), page(10) + 32), Err(Refusal::InvalidObject));
        let kmalloc = PageOwner::slab(5, 3, 0);
        assert_eq!(check.check_owner(owner_word(kmalloc), page(10) + 32), Err(Refusal::InvalidObject), "not its class");
    }

    #[test]
    fn canary_is_never_zero_and_differs_per_object_and_key() {
        let (a, b) = (Canary::new(session_key(1)), Canary::new(session_key(1)));
        assert_ne!(a.of(64), b.of(64), "two sessions, two keys");
        assert_ne!(a.of(64), a.of(128));
        assert!((0..4096u64).all(|h| a.of(h * 8) != 0 && a.of(h * 8) & 1 == 1));
        assert_eq!(Canary::new(0).of(0), 1);
    }

    #[test]
    fn the_mask_test_of_tiled_slabs_agrees_with_the_stride_test() {
        // (stride, first object's offset, objects per slab, order, tiled)
        let geometries = [
            (8, 0, 512, 0, true),
            (64, 0, 64, 0, true),
            (4096, 0, 1, 0, true),
            (4096, 0, 2, 1, true),
            (2048, 0, 16, 3, true),
            (128, 0, 31, 0, false),
            (64, 64, 63, 0, false),
            (96, 0, 42, 0, false),
            (8192, 0, 1, 1, false),
        ];
        for (stride, obj_offset, objects, order, tiled) in geometries {
            let entry = CacheEntry { order, ..entry(stride, obj_offset, objects) };
            let check = ObjectCheck::of_entry(5, &entry).unwrap();
            assert_eq!(check.tiled != NOT_TILED, tiled, "stride {stride} offset {obj_offset} x{objects}");
            let reference = ObjectCheck { tiled: NOT_TILED, ..check };
            // A slab at page 16 of the window (a multiple of its size): every byte of its pages.
            let pages = 1u64 << order;
            for page in 0..pages {
                let owner = owner_word(PageOwner::slab(5, NOT_KMALLOC, page as u32));
                for in_page in 0..PAGE_SIZE as u64 {
                    let handle = (16 + page) * PAGE_SIZE as u64 + in_page;
                    assert_eq!(
                        check.starts_object(owner, handle),
                        reference.starts_object(owner, handle),
                        "stride {stride} x{objects}: handle {handle:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_empty_geometry_has_no_check() {
        assert!(ObjectCheck::of_entry(0, &entry(0, 0, 4)).is_none());
        assert!(ObjectCheck::of_entry(0, &entry(64, 0, 0)).is_none());
    }
}

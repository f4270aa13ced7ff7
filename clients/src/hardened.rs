//! The hardened free of the magazine fast path (Linux's `CONFIG_SLAB_FREELIST_HARDENED` as the
//! anchor): before a pointer goes into a magazine, the library checks, without IPC, that it
//! is the start of an object of *this* cache's slabs and that the object is not already free.
//!
//! - **Object start of this cache** ([`ObjectCheck`]): the server's page-owner table in the
//!   control region names the cache slot of every slab page (Linux's `virt_to_slab()` and
//!   `cache_from_obj()`, which `SLAB_FREELIST_HARDENED` makes check `slab->slab_cache == s`).
//!   The slab's first object and stride give the object boundaries; the test "offset is a
//!   multiple of the stride" is a multiplication by the stride's inverse (Granlund and
//!   Montgomery / Lemire's divisibility test), not a division. A page of another cache is
//!   [`protocol::Error::WrongCache`], anything else that is no object start
//!   [`protocol::Error::InvalidObject`].
//! - **Not already free** ([`Canary`]): a freed object of a cache without a constructor gets
//!   a canary in its first word (the session's secret key mixed with the object's handle, so
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

use peer_memory::PeerMemory;
use protocol::control::{CacheEntry, ControlLayout, PAGE_OWNER_SIZE, PageOwner, PageOwnerKind};
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
}

impl From<Refusal> for crate::Error {
    #[cold]
    fn from(r: Refusal) -> Self {
        crate::Error::Server(match r {
            Refusal::InvalidObject => ServerError::InvalidObject,
            Refusal::WrongCache => ServerError::WrongCache,
            Refusal::DoubleFree => ServerError::DoubleFree,
        })
    }
}

/// What the fast path needs to know a handle is an object start of one cache: the cache's
/// index in the server's cache table (what its slab pages' page-owner entries name), where
/// the first object of a slab lies, and the stride as a divisibility test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ObjectCheck {
    table_index: u16,
    obj_offset: u64,
    /// Bytes from the first object to the end of the last one's stride.
    span: u64,
    /// The stride is `odd << shift`.
    shift: u32,
    /// The multiplicative inverse of `odd` modulo 2^64.
    inverse: u64,
    /// `u64::MAX / odd`: `x` is a multiple of `odd` iff `x * inverse <= limit` (mod 2^64).
    limit: u64,
}

/// The multiplicative inverse of an odd `d` modulo 2^64 (Newton's iteration; each step
/// doubles the correct low bits: 3, 6, 12, 24, 48, 96).
const fn inverse_of_odd(d: u64) -> u64 {
    let mut x = d;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
        i += 1;
    }
    x
}

impl ObjectCheck {
    /// The check for the cache at cache-table index `table_index`, described by `entry`.
    /// `None` for a geometry that describes no objects.
    pub(crate) fn of_entry(table_index: u16, entry: &CacheEntry) -> Option<ObjectCheck> {
        let stride = u64::from(entry.stride);
        if stride == 0 || entry.objects_per_slab == 0 {
            return None;
        }
        let shift = stride.trailing_zeros();
        let odd = stride >> shift;
        Some(ObjectCheck {
            table_index,
            obj_offset: u64::from(entry.obj_offset),
            span: stride.checked_mul(u64::from(entry.objects_per_slab))?,
            shift,
            inverse: inverse_of_odd(odd),
            limit: u64::MAX / odd,
        })
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

    /// Whether `offset` (from a slab's first object) is an object start.
    #[inline]
    fn is_object_offset(&self, offset: u64) -> bool {
        let low = offset & ((1u64 << self.shift) - 1);
        offset < self.span && low == 0 && (offset >> self.shift).wrapping_mul(self.inverse) <= self.limit
    }

    /// Checks that `handle` is the start of an object of a slab of this cache, by the
    /// page-owner table: `WrongCache` for a page of another cache, `InvalidObject` otherwise.
    #[inline]
    pub(crate) fn check(&self, page_owners: &PeerMemory, handle: u64) -> Result<(), Refusal> {
        let page = handle / PAGE_SIZE as u64;
        let offset = usize::try_from(page).ok().and_then(|p| p.checked_mul(PAGE_OWNER_SIZE));
        let word = offset.and_then(|o| page_owners.load_u64(o)).ok_or(Refusal::InvalidObject)?;
        let owner = PageOwner::read_from_bytes(&word.to_ne_bytes()).map_err(|_| Refusal::InvalidObject)?;
        let page = page as u32; // < window pages (the table has one entry per page)
        if owner.kind() != PageOwnerKind::Slab {
            return Err(Refusal::InvalidObject);
        }
        if owner.cache != self.table_index {
            return Err(Refusal::WrongCache);
        }
        let first_page = page.checked_sub(owner.value).ok_or(Refusal::InvalidObject)?;
        let first_object = u64::from(first_page) * PAGE_SIZE as u64 + self.obj_offset;
        match handle.checked_sub(first_object) {
            Some(offset) if self.is_object_offset(offset) => Ok(()),
            _ => Err(Refusal::InvalidObject),
        }
    }
}

/// The canary a freed object carries in its first word: `key` (secret per session) mixed with
/// the handle; never 0, the word an allocation leaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Canary {
    key: u64,
}

impl Canary {
    /// A canary keyed by `key`.
    pub(crate) fn new(key: u64) -> Self {
        Canary { key }
    }

    /// The canary of the object `handle`.
    #[inline]
    pub(crate) fn of(&self, handle: u64) -> u64 {
        (self.key ^ handle.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
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

    fn entry(stride: u32, obj_offset: u32, objects: u16) -> CacheEntry {
        CacheEntry { cache: 7, stride, obj_offset, objects_per_slab: objects, ..CacheEntry::default() }
    }

    #[test]
    fn divisibility_test_agrees_with_the_remainder_for_every_stride() {
        for stride in (8..=4096u32).step_by(8).chain([24, 40, 72, 96, 192, 3 * 1024, 8200]) {
            let objects = (16 * 4096 / stride).clamp(1, 512) as u16;
            let check = ObjectCheck::of_entry(3, &entry(stride, 0, objects)).unwrap();
            let span = u64::from(stride) * u64::from(objects);
            for offset in (0..span + 3 * u64::from(stride)).step_by(8).chain([1, 7, span - 1, u64::MAX - 7]) {
                let expected = offset < span && offset % u64::from(stride) == 0;
                assert_eq!(check.is_object_offset(offset), expected, "stride {stride} offset {offset}");
            }
        }
    }

    #[test]
    fn inverse_is_an_inverse() {
        for d in [1u64, 3, 5, 7, 9, 25, 125, 1001, u64::MAX] {
            assert_eq!(d.wrapping_mul(inverse_of_odd(d)), 1, "{d}");
        }
    }

    #[test]
    fn canary_is_never_zero_and_differs_per_object_and_key() {
        let (a, b) = (Canary::new(session_key(1)), Canary::new(session_key(1)));
        assert_ne!(a.of(64), b.of(64), "two sessions, two keys");
        assert_ne!(a.of(64), a.of(128));
        assert!((0..4096u64).all(|h| a.of(h * 8) != 0));
        assert_eq!(Canary::new(0).of(0), 1);
    }

    #[test]
    fn an_empty_geometry_has_no_check() {
        assert!(ObjectCheck::of_entry(0, &entry(0, 0, 4)).is_none());
        assert!(ObjectCheck::of_entry(0, &entry(64, 0, 0)).is_none());
    }
}

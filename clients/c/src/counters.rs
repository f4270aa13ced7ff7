//! What the C calls of this process did, counted by the library (successful calls only): a
//! platform can check after a C program ran that every cache it created was destroyed and
//! every object it allocated was freed (the seL4 C task does). Rust API only, not in the
//! header.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

static CACHES_CREATED: AtomicU64 = AtomicU64::new(0);
static CACHES_DESTROYED: AtomicU64 = AtomicU64::new(0);
static OBJECTS_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static OBJECTS_FREED: AtomicU64 = AtomicU64::new(0);

/// The counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// `kmem_cache_create` calls that returned a cache.
    pub caches_created: u64,
    /// `kmem_cache_destroy` calls that destroyed their cache.
    pub caches_destroyed: u64,
    /// Objects handed out: `kmem_cache_alloc`/`zalloc` and the `kmalloc` family (each object a
    /// `krealloc` moved to counts too).
    pub objects_allocated: u64,
    /// Objects taken back: `kmem_cache_free`, `kfree` (and `krealloc`'s moves and frees).
    pub objects_freed: u64,
}

/// The counts so far.
pub fn snapshot() -> CallCounters {
    CallCounters {
        caches_created: CACHES_CREATED.load(Relaxed),
        caches_destroyed: CACHES_DESTROYED.load(Relaxed),
        objects_allocated: OBJECTS_ALLOCATED.load(Relaxed),
        objects_freed: OBJECTS_FREED.load(Relaxed),
    }
}

pub(crate) fn cache_created() {
    CACHES_CREATED.fetch_add(1, Relaxed);
}

pub(crate) fn cache_destroyed() {
    CACHES_DESTROYED.fetch_add(1, Relaxed);
}

pub(crate) fn object_allocated() {
    OBJECTS_ALLOCATED.fetch_add(1, Relaxed);
}

pub(crate) fn object_freed() {
    OBJECTS_FREED.fetch_add(1, Relaxed);
}

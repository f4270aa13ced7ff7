//! `kmalloc` and its family with Linux's rules, through the magazines of the kmalloc caches.
//!
//! The server creates the client's `kmalloc-8` … `kmalloc-8k` caches and binds them to
//! magazine slots before it answers `Hello`, and describes them in its cache table: a
//! `kmalloc` of up to 8 KiB is a pop from its class's magazine, like `kmem_cache_alloc()`.
//! `kfree` (and `ksize`, `krealloc`) find an object's cache without IPC through the
//! server-written page-owner table (Linux's `virt_to_slab()`): an object of any cache of the
//! client goes back to that cache's magazine. Debug caches, large allocations (whole pages
//! above 8 KiB) and misses are IPCs, but a freed large kmalloc of up to 64 KiB is parked for
//! the next `kmalloc` of its page count ([`large`]).
//!
//! Linux's rules kept: `kmalloc(0)` is [`ZERO_SIZE_PTR`] (not an error, not dereferenceable,
//! accepted by `kfree`, as is NULL); power-of-two sizes are naturally aligned (the server
//! aligns offsets, the host maps the window at a [`protocol::WINDOW_BASE_ALIGN`] boundary);
//! `ksize`, `krealloc` (`__GFP_ZERO` as `__do_krealloc()` has it), `kmalloc_array` /
//! `kcalloc` (overflow-checked) and [`kmalloc_size_roundup`].

use core::ptr::NonNull;
use core::sync::atomic::Ordering::Relaxed;

use protocol::control::{CacheEntry, NOT_KMALLOC, PageOwnerKind};
use protocol::flags::SLAB_RED_ZONE;
use protocol::{Handle, PAGE_SIZE};

use crate::cache::{Magazines, Pending};
use crate::error::Error;
use crate::server::Memserver;
use crate::transport::Transport;

#[cfg(feature = "std")]
#[allow(unsafe_code)]
mod front;
#[cfg(feature = "std")]
pub(crate) use front::KmallocFront;
pub mod large;
pub(crate) use large::ParkedRuns;
use large::Parking;

/// Linux's `gfp_t`, as far as this library looks at it.
pub type Gfp = u32;
/// `GFP_KERNEL`: nothing special (here every allocation may wait for the server).
pub const GFP_KERNEL: Gfp = 0;
/// `__GFP_ZERO` (Linux 6.6's value): the memory reads as zero.
pub const __GFP_ZERO: Gfp = 0x100;

/// Linux's `ZERO_SIZE_PTR`: what `kmalloc(0)` returns, `(void *)16`.
pub const ZERO_SIZE_PTR: usize = 16;
/// Number of kmalloc classes (`kmalloc-8` … `kmalloc-8k`).
pub const KMALLOC_CLASSES: usize = 13;
/// Object sizes of the kmalloc classes, as Linux has them.
pub const KMALLOC_SIZES: [u32; KMALLOC_CLASSES] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
/// Largest size a kmalloc class serves (`KMALLOC_MAX_CACHE_SIZE`); above, whole pages.
pub const KMALLOC_MAX_CACHE_SIZE: usize = 8192;
/// Largest `kmalloc` (`KMALLOC_MAX_SIZE` with 4 KiB pages).
pub const KMALLOC_MAX_SIZE: usize = protocol::KMALLOC_MAX_SIZE as usize;

/// Linux's `size_index[]`: the class of sizes 1..=192 by `(size - 1) / 8`.
const SIZE_INDEX: [u8; 24] = [0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6];

/// The kmalloc class of `size` (Linux's `kmalloc_index()`): 0 for `kmalloc-8` … 12 for
/// `kmalloc-8k`; `None` for 0 and for sizes above 8 KiB. (A `const fn`: `kmalloc`'s fast path
/// tabulates it at compile time.)
#[inline]
pub const fn kmalloc_index(size: usize) -> Option<usize> {
    match size {
        0 => None,
        // (size - 1) / 8 < 24 for sizes up to 192.
        1..=192 => Some(SIZE_INDEX[(size - 1) / 8] as usize),
        193..=KMALLOC_MAX_CACHE_SIZE => Some(usize::BITS as usize - (size - 1).leading_zeros() as usize - 1),
        _ => None,
    }
}

/// Corresponds to `kmalloc_size_roundup()`: the size `kmalloc(size)` really gives (what
/// `ksize()` will say): its class's size up to 8 KiB; whole pages above, up to 4 MiB (Linux
/// rounds those to a power of two of pages; this server takes just the pages needed); `size`
/// itself for 0 and for sizes `kmalloc` refuses.
pub fn kmalloc_size_roundup(size: usize) -> usize {
    match kmalloc_index(size) {
        Some(class) => KMALLOC_SIZES.get(class).map_or(size, |&s| s as usize),
        None if size > KMALLOC_MAX_CACHE_SIZE && size <= KMALLOC_MAX_SIZE => size.next_multiple_of(PAGE_SIZE),
        None => size,
    }
}

/// One kmalloc class as the server set it up (from its cache table at `Hello`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KmallocClass {
    /// Its magazines, unless it is a debug cache (or had no slot).
    pub(crate) magazines: Option<Magazines>,
    /// Its object size.
    object_size: u32,
}

impl KmallocClass {
    /// A class the server did not describe: every kmalloc of it is an IPC.
    pub(crate) const UNKNOWN: KmallocClass = KmallocClass { magazines: None, object_size: 0 };

    /// The class `entry` describes.
    pub(crate) fn of(entry: &CacheEntry, magazines: Option<Magazines>) -> Self {
        KmallocClass { magazines, object_size: entry.object_size }
    }
}

/// What the page-owner table says a pointer of this client is.
enum Owner {
    /// An object of the cache `entry` (cache-table index `.1`) describes.
    Slab(CacheEntry, u16),
    /// The first page of a large kmalloc of this many pages.
    Large(u32),
    /// Inside a slab, but not on an object boundary.
    NotAnObject,
    /// The table says nothing useful: the server decides.
    Unknown,
}

/// `ZERO_OR_NULL_PTR()`.
fn zero_or_null(addr: usize) -> bool {
    addr <= ZERO_SIZE_PTR
}

fn zero_size_ptr() -> NonNull<u8> {
    NonNull::new(core::ptr::without_provenance_mut(ZERO_SIZE_PTR)).unwrap_or(NonNull::dangling())
}

fn invalid_argument() -> Error {
    Error::Server(protocol::Error::InvalidArgument)
}

/// Whether the server tracks the requested size of objects of the cache `entry` describes (a
/// red-zoned kmalloc cache: its slack is red zone), so only it can resize them.
fn tracks_requested_size(entry: &CacheEntry) -> bool {
    entry.kmalloc_class != NOT_KMALLOC && entry.flags & SLAB_RED_ZONE != 0
}

impl<T: Transport> Memserver<T> {
    /// Corresponds to `kmalloc(size, GFP_KERNEL)`. `kmalloc(0)` is [`ZERO_SIZE_PTR`];
    /// above 4 MiB, `InvalidArgument` (Linux returns NULL).
    #[inline(always)]
    pub fn kmalloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        #[cfg(feature = "std")]
        if let Some(ptr) = self.kmalloc_thread(size) {
            return Ok(ptr);
        }
        self.kmalloc_slow(size)
    }

    #[cold]
    #[inline(never)]
    fn kmalloc_slow(&self, size: usize) -> Result<NonNull<u8>, Error> {
        self.kmalloc_gfp(size, GFP_KERNEL)
    }

    /// Corresponds to `kzalloc()`: `kmalloc` with `__GFP_ZERO`.
    pub fn kzalloc(&self, size: usize) -> Result<NonNull<u8>, Error> {
        self.kmalloc_gfp(size, __GFP_ZERO)
    }

    /// Corresponds to `kmalloc_array()`: `n × size` bytes, `InvalidArgument` if the product
    /// overflows (Linux returns NULL).
    pub fn kmalloc_array(&self, n: usize, size: usize, gfp: Gfp) -> Result<NonNull<u8>, Error> {
        self.kmalloc_gfp(n.checked_mul(size).ok_or_else(invalid_argument)?, gfp)
    }

    /// Corresponds to `kcalloc()`: `kmalloc_array` with `__GFP_ZERO`.
    pub fn kcalloc(&self, n: usize, size: usize, gfp: Gfp) -> Result<NonNull<u8>, Error> {
        self.kmalloc_array(n, size, gfp | __GFP_ZERO)
    }

    /// Corresponds to `kmalloc(size, gfp)`. With `__GFP_ZERO` the whole object reads as zero
    /// (on a red-zoned kmalloc cache, the requested bytes: the rest is red zone).
    pub fn kmalloc_gfp(&self, size: usize, gfp: Gfp) -> Result<NonNull<u8>, Error> {
        if size == 0 {
            return Ok(zero_size_ptr());
        }
        if size > KMALLOC_MAX_SIZE {
            return Err(invalid_argument());
        }
        let zero = gfp & __GFP_ZERO != 0;
        let index = kmalloc_index(size);
        let class = index.and_then(|class| self.kmalloc_class(class));
        if let (Some(index), Some(KmallocClass { magazines: Some(m), object_size, .. })) = (index, class) {
            let ptr = self.kmalloc_magazine(index, m)?;
            if zero {
                self.window().zero(ptr, *object_size as usize);
            }
            return Ok(ptr);
        }
        let usable = kmalloc_size_roundup(size);
        if index.is_none()
            && let Some(run) = self.parked_runs().take(usable / PAGE_SIZE)
        {
            self.count_hit(true, true);
            let ptr = self.object(run, usable)?;
            if zero {
                self.window().zero(ptr, usable);
            }
            return Ok(ptr);
        }
        self.count_kmalloc_miss();
        let request = u32::try_from(size).map_err(|_| invalid_argument())?;
        let object = self.ipc_retrying(|api| api.kmalloc(request))?;
        let ptr = self.object(object.handle, usable)?;
        if zero {
            // A debug class red-zones its slack: only the requested bytes are the caller's.
            let len = if class.is_some() { size } else { usable };
            self.window().zero(ptr, len);
        }
        Ok(ptr)
    }

    /// An object of kmalloc class `class` (whose magazines are `m`): a pop from the calling
    /// thread's magazine of the class (with `std`), else from the shared layer under the
    /// slot's lock.
    #[inline]
    fn kmalloc_magazine(&self, class: usize, m: &Magazines) -> Result<NonNull<u8>, Error> {
        #[cfg(feature = "std")]
        if let Some(threads) = self.kmalloc_threads_of(class)
            && let Some(stripe) = crate::threads::stripe()
        {
            return match m.stripe_pop(self, threads, stripe) {
                Some(ptr) => Ok(ptr),
                None => m.stripe_refill(self, threads, stripe),
            };
        }
        let _ = class;
        let handle = {
            let _guard = self.slot_lock(m.index).lock();
            m.alloc(self, &mut Pending::default())?
        };
        self.object(handle, m.geometry.object_size as usize)
    }

    /// Corresponds to `kfree()`: an object of any cache of this client (it goes back to its
    /// cache, through that cache's magazines when it has them) or a large kmalloc. NULL is not
    /// a `NonNull`; [`ZERO_SIZE_PTR`] is accepted and does nothing. A pointer inside a slab
    /// but not on an object boundary is `InvalidObject` without asking the server.
    ///
    /// An object of a kmalloc class goes onto the calling thread's magazine of the class
    /// (with `std`), after the same hardened checks as a cache's `free`.
    #[inline(always)]
    pub fn kfree(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        #[cfg(feature = "std")]
        if let Some(freed) = self.kfree_thread(ptr) {
            return freed.map_err(Error::from);
        }
        self.kfree_slow(ptr)
    }

    #[cold]
    #[inline(never)]
    fn kfree_slow(&self, ptr: NonNull<u8>) -> Result<(), Error> {
        if zero_or_null(ptr.as_ptr().addr()) {
            return Ok(());
        }
        let handle = self.window().handle(ptr).ok_or(Error::NotInWindow)?;
        #[cfg(feature = "std")]
        if let Some(class) = self.kmalloc_class_of(handle)
            && let Some(KmallocClass { magazines: Some(m), .. }) = self.kmalloc_class(class)
            && let Some(threads) = self.kmalloc_threads_of(class)
            && let Some(stripe) = crate::threads::stripe()
        {
            return match m.stripe_push(self, threads, stripe, handle.0) {
                Ok(true) => Ok(()),
                Ok(false) => m.stripe_drain(self, threads, stripe, handle.0),
                Err(refusal) => Err(refusal.into()),
            };
        }
        self.kfree_shared(handle)
    }

    /// The kmalloc class whose slab page `handle` lies in, by the page-owner table alone (the
    /// server writes the class into the entry; `None` for anything else: the caller takes the
    /// general path).
    #[cfg(feature = "std")]
    fn kmalloc_class_of(&self, handle: Handle) -> Option<usize> {
        let page = u32::try_from(handle.0 / PAGE_SIZE as u64).ok()?;
        let owner = self.control().page_owner(self.control_layout(), page)?;
        let class = usize::from(owner.kmalloc_class);
        (owner.kind() == PageOwnerKind::Slab && class < KMALLOC_CLASSES).then_some(class)
    }

    /// `kfree` past the thread magazines: the object's cache's shared layer, or an IPC.
    #[cold]
    #[inline(never)]
    fn kfree_shared(&self, handle: Handle) -> Result<(), Error> {
        match self.owner(handle) {
            Owner::Slab(entry, index) => {
                // A kmalloc class's magazines were bound at `Hello`; another cache's are bound now.
                let class = self.kmalloc_class(usize::from(entry.kmalloc_class)).and_then(|c| c.magazines);
                let bound = class.filter(|m| m.cache.0 == entry.cache && m.index == entry.slot);
                if let Some(m) = bound.or_else(|| Magazines::of_entry(self, index, &entry)) {
                    let _guard = self.slot_lock(m.index).lock();
                    return m.free(self, &mut Pending::default(), handle);
                }
            }
            Owner::Large(pages) => match self.parked_runs().park(handle, pages as usize) {
                Parking::Parked => {
                    self.count_hit(false, true);
                    return Ok(());
                }
                Parking::AlreadyParked => return Err(Error::Server(protocol::Error::DoubleFree)),
                Parking::NoRoom => {}
            },
            Owner::NotAnObject => return Err(Error::Server(protocol::Error::InvalidObject)),
            Owner::Unknown => {}
        }
        self.count_kmalloc_miss();
        self.ipc(|api| api.kfree(handle))
    }

    /// Gives the parked large kmallocs back to the server ([`large`]); the first error.
    pub(crate) fn release_parked_runs(&self) -> Result<(), Error> {
        self.parked_runs().drain(|run| {
            self.count_kmalloc_miss();
            self.ipc_once(|api| api.kfree(run))
        })
    }

    /// Corresponds to `ksize()`: the usable size of an object this client holds (its cache's
    /// object size; for a large kmalloc, its pages), 0 for [`ZERO_SIZE_PTR`]. As in Linux, on
    /// a red-zoned kmalloc cache the whole object becomes usable (the server stops checking
    /// the slack past the requested size: Linux's `skip_orig_size_check()`), which costs one
    /// IPC. `InvalidObject` for a pointer that is no object.
    pub fn ksize(&self, ptr: NonNull<u8>) -> Result<usize, Error> {
        if zero_or_null(ptr.as_ptr().addr()) {
            return Ok(0);
        }
        let handle = self.window().handle(ptr).ok_or(Error::NotInWindow)?;
        match self.owner(handle) {
            Owner::Slab(entry, _) => {
                if tracks_requested_size(&entry) {
                    self.ipc(|api| api.krealloc(handle, entry.object_size, false))?;
                }
                Ok(entry.object_size as usize)
            }
            Owner::Large(pages) => Ok(pages as usize * PAGE_SIZE),
            Owner::NotAnObject | Owner::Unknown => Err(Error::Server(protocol::Error::InvalidObject)),
        }
    }

    /// Corresponds to `krealloc()`, as Linux's `__do_krealloc()`: `None` (NULL) or
    /// [`ZERO_SIZE_PTR`] is a `kmalloc`; `new_size` 0 frees and gives [`ZERO_SIZE_PTR`]. While
    /// `new_size` fits the object it stays in place (with `__GFP_ZERO` the bytes past
    /// `new_size` are zeroed; on a red-zoned kmalloc cache the server zeroes the bytes past the
    /// old requested size and red-zones the slack past the new one); else a new object gets
    /// the old bytes and the old one is freed. On failure the old object is left as it was.
    pub fn krealloc(&self, ptr: Option<NonNull<u8>>, new_size: usize, gfp: Gfp) -> Result<NonNull<u8>, Error> {
        let Some(ptr) = ptr.filter(|p| !zero_or_null(p.as_ptr().addr())) else {
            return self.kmalloc_gfp(new_size, gfp);
        };
        if new_size == 0 {
            self.kfree(ptr)?;
            return Ok(zero_size_ptr());
        }
        if new_size > KMALLOC_MAX_SIZE {
            return Err(invalid_argument());
        }
        let handle = self.window().handle(ptr).ok_or(Error::NotInWindow)?;
        let zero = gfp & __GFP_ZERO != 0;
        let usable = match self.owner(handle) {
            Owner::Slab(entry, _) if tracks_requested_size(&entry) => {
                let request = u32::try_from(new_size).map_err(|_| invalid_argument())?;
                let object = self.ipc_retrying(|api| api.krealloc(handle, request, zero))?;
                return self.object(object.handle, new_size);
            }
            Owner::Slab(entry, _) => entry.object_size as usize,
            Owner::Large(pages) => pages as usize * PAGE_SIZE,
            Owner::NotAnObject | Owner::Unknown => return Err(Error::Server(protocol::Error::InvalidObject)),
        };
        if new_size <= usable {
            if zero {
                let tail = self.object(Handle(handle.0 + new_size as u64), usable - new_size)?;
                self.window().zero(tail, usable - new_size);
            }
            return Ok(ptr);
        }
        let new = self.kmalloc_gfp(new_size, gfp)?;
        if !self.window().copy(ptr, new, usable) {
            return Err(Error::NotInWindow);
        }
        self.kfree(ptr)?;
        Ok(new)
    }

    /// Gives every object in the kmalloc classes' magazines (the calling thread's, those left
    /// by threads that exited, the shared ones and their depot on the server) back to the
    /// slabs, as Linux's `flush_all()` does with the kmalloc caches' per-CPU
    /// slabs, and the parked large kmallocs back to the server ([`large`]): afterwards the
    /// server's `live_objects` and `client_pages` of kmalloc are exactly what the program
    /// holds (a leak check). The first error, after trying every class.
    pub fn kmalloc_flush(&self) -> Result<(), Error> {
        let mut first = self.release_parked_runs();
        #[cfg(feature = "std")]
        {
            let unparked = self.kmalloc_unpark();
            if first.is_ok() {
                first = unparked;
            }
        }
        for class in 0..KMALLOC_CLASSES {
            if let Some(KmallocClass { magazines: Some(m), .. }) = self.kmalloc_class(class) {
                let _guard = self.slot_lock(m.index).lock();
                let done = m.exchange(self, protocol::ExchangeOp::Flush);
                if first.is_ok() {
                    first = done;
                }
            }
        }
        first
    }

    /// Moves the objects in the calling thread's kmalloc magazines, and in those left by
    /// threads that exited, to the shared magazines (the first error, after every class).
    #[cfg(feature = "std")]
    pub(crate) fn kmalloc_unpark(&self) -> Result<(), Error> {
        let mut first = Ok(());
        for class in 0..KMALLOC_CLASSES {
            if let (Some(KmallocClass { magazines: Some(m), .. }), Some(threads)) =
                (self.kmalloc_class(class), self.kmalloc_threads_of(class))
            {
                let done = m.stripe_flush(self, threads, crate::threads::stripe());
                if first.is_ok() {
                    first = done;
                }
            }
        }
        first
    }

    /// What the page-owner table says `handle` is (an object of which cache, or a large
    /// kmalloc), checked against the cache table's geometry.
    fn owner(&self, handle: Handle) -> Owner {
        let Ok(page) = u32::try_from(handle.0 / PAGE_SIZE as u64) else { return Owner::Unknown };
        let Some(owner) = self.control().page_owner(self.control_layout(), page) else { return Owner::Unknown };
        match owner.kind() {
            PageOwnerKind::Slab => {
                let Some(entry) = self.cache_entry(owner.cache).filter(|e| e.cache != 0 && e.stride > 0) else {
                    return Owner::Unknown;
                };
                let slab_start = u64::from(page.saturating_sub(owner.value)) * PAGE_SIZE as u64;
                let Some(offset) = handle.0.checked_sub(slab_start + u64::from(entry.obj_offset)) else {
                    return Owner::NotAnObject;
                };
                let stride = u64::from(entry.stride);
                if offset % stride != 0 || offset / stride >= u64::from(entry.objects_per_slab) {
                    return Owner::NotAnObject;
                }
                Owner::Slab(entry, owner.cache)
            }
            PageOwnerKind::Large if handle.0.is_multiple_of(PAGE_SIZE as u64) => Owner::Large(owner.value),
            _ => Owner::Unknown,
        }
    }

    fn count_kmalloc_miss(&self) {
        self.raw_counters().misses.fetch_add(1, Relaxed);
        self.private_counters().kmalloc_misses.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmalloc_index_is_linux_size_index() {
        let class_of = |size| kmalloc_index(size).map(|i| KMALLOC_SIZES[i]);
        for (size, class) in [
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (24, 32),
            (33, 64),
            (54, 64),
            (65, 96),
            (96, 96),
            (97, 128),
            (129, 192),
            (192, 192),
            (193, 256),
            (256, 256),
            (257, 512),
            (1024, 1024),
            (1025, 2048),
            (4097, 8192),
            (8192, 8192),
        ] {
            assert_eq!(class_of(size), Some(class), "kmalloc({size})");
        }
        assert_eq!(kmalloc_index(0), None);
        assert_eq!(kmalloc_index(8193), None);
        // Every size up to 8 KiB gets the smallest class that holds it.
        for size in 1..=KMALLOC_MAX_CACHE_SIZE {
            let smallest = KMALLOC_SIZES.iter().position(|&c| c as usize >= size);
            assert_eq!(kmalloc_index(size), smallest, "kmalloc({size})");
        }
    }

    #[test]
    fn roundup_gives_the_class_then_pages() {
        assert_eq!(kmalloc_size_roundup(0), 0);
        assert_eq!(kmalloc_size_roundup(1), 8);
        assert_eq!(kmalloc_size_roundup(54), 64);
        assert_eq!(kmalloc_size_roundup(65), 96);
        assert_eq!(kmalloc_size_roundup(129), 192);
        assert_eq!(kmalloc_size_roundup(8192), 8192);
        assert_eq!(kmalloc_size_roundup(8193), 12288);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE), KMALLOC_MAX_SIZE);
        assert_eq!(kmalloc_size_roundup(KMALLOC_MAX_SIZE + 1), KMALLOC_MAX_SIZE + 1);
    }

    #[test]
    fn zero_size_ptr_is_sixteen_and_zero_or_null() {
        assert_eq!(zero_size_ptr().as_ptr().addr(), 16);
        assert!(zero_or_null(0) && zero_or_null(16) && !zero_or_null(17));
    }
}

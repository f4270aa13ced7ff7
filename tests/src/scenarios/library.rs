//! The rules the client library keeps over the protocol, checked through `memclient` itself on
//! the window and control region the platform maps into the suite: kmalloc through magazines,
//! `ZERO_SIZE_PTR`, `kfree` of any cache's object, `ksize`, `krealloc`, `kcalloc`, natural
//! alignment of addresses, bulk allocation, constructors over whole slabs, destructors.

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use memclient::{__GFP_ZERO, Cache, GFP_KERNEL, ZERO_SIZE_PTR, kmalloc_size_roundup};
use protocol::{Error, PAGE_SIZE};

use super::CLIENT;
use crate::client::Failure;
use crate::ensure;
use crate::harness::Harness;
use crate::library::{Library, library, must};

/// Sizes a kernel's kmalloc traffic is made of, every class and a few large ones.
const SIZES: [usize; 16] = [8, 13, 24, 32, 54, 64, 96, 100, 128, 192, 256, 500, 1024, 2000, 4096, 8192];

/// Fills `len` bytes of an object the scenario holds.
fn write(s: &Library, ptr: NonNull<u8>, byte: u8, len: usize) -> Result<(), Failure> {
    ensure!(s.window().fill(ptr, len, byte), "{ptr:p}+{len} is not in the window");
    Ok(())
}

/// Copies `len` bytes of an object the scenario holds.
fn bytes(s: &Library, ptr: NonNull<u8>, len: usize) -> Result<Vec<u8>, Failure> {
    let mut out = alloc::vec![0u8; len];
    ensure!(s.window().read(ptr, &mut out), "{ptr:p}+{len} is not in the window");
    Ok(out)
}

/// `kmalloc(0)` is Linux's `ZERO_SIZE_PTR`, `(void *)16`: not an error, no IPC, accepted by
/// `kfree` (as NULL is), `ksize` 0, and `krealloc` of it is a `kmalloc`.
pub fn kmalloc_zero_is_zero_size_ptr(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let calls = s.counters().calls;
    let zero = must("kmalloc(0)", s.kmalloc(0))?;
    ensure!(zero.as_ptr().addr() == ZERO_SIZE_PTR && ZERO_SIZE_PTR == 16, "kmalloc(0) = {zero:p}");
    ensure!(s.window().handle(zero).is_none(), "ZERO_SIZE_PTR lies in the window");
    must("kfree(ZERO_SIZE_PTR)", s.kfree(zero))?;
    ensure!(must("ksize", s.ksize(zero))? == 0, "ksize(ZERO_SIZE_PTR)");
    ensure!(s.counters().calls == calls, "kmalloc(0) asked the server");
    let p = must("krealloc(ZERO_SIZE_PTR, 40)", s.krealloc(Some(zero), 40, GFP_KERNEL))?;
    ensure!(s.window().handle(p).is_some(), "krealloc of ZERO_SIZE_PTR is not a kmalloc");
    let z = must("krealloc(p, 0)", s.krealloc(Some(p), 0, GFP_KERNEL))?;
    ensure!(z == zero, "krealloc(p, 0) = {z:p}");
    Ok(())
}

/// `kmalloc`/`kfree` of the small classes are magazine pops and pushes: a mixed run of
/// kernel-like sizes is nearly all hits, with a handful of IPCs; `kmalloc_flush` gives the
/// magazines back, leaving no kmalloc object allocated.
pub fn kmalloc_goes_through_magazines(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let before = s.counters();
    let mut held: Vec<NonNull<u8>> = Vec::new();
    for round in 0..200usize {
        for (i, &size) in SIZES.iter().enumerate() {
            let p = must("kmalloc", s.kmalloc(size))?;
            write(&s, p, (round + i) as u8, size)?;
            held.push(p);
        }
        // Free most of what this round took, keeping some objects alive across rounds.
        while held.len() > 40 {
            let p = held.swap_remove((round * 7) % held.len());
            must("kfree", s.kfree(p))?;
        }
    }
    for p in held {
        must("kfree", s.kfree(p))?;
    }
    let after = s.counters();
    let (hits, misses) = (after.kmalloc_hits - before.kmalloc_hits, after.kmalloc_misses - before.kmalloc_misses);
    ensure!(hits + misses == 2 * 200 * SIZES.len() as u64, "{hits} hits + {misses} misses");
    ensure!(hits * 100 >= (hits + misses) * 95, "kmalloc hit rate {hits}/{}", hits + misses);
    ensure!(after.calls - before.calls < 200, "{} IPCs", after.calls - before.calls);
    // Everything freed: once the magazines are flushed, no kmalloc object is left allocated.
    must("kmalloc_flush", s.kmalloc_flush())?;
    let mut active = 0u64;
    must(
        "slabinfo",
        s.for_each_slabinfo_row(false, |r| {
            if r.name.starts_with("kmalloc-") {
                active += u64::from(r.active_objs);
            }
        }),
    )?;
    ensure!(active == 0, "{active} kmalloc objects allocated after kfree of all and a flush");
    Ok(())
}

/// `kfree` of an object of one of the client's own caches puts it back into that cache's
/// magazine, found through the server's page-owner and cache tables; a pointer inside an
/// object is refused without asking the server.
pub fn kfree_of_a_cache_object_goes_to_its_cache(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let cache = must("create", Cache::create(&s, "mine", 48, 0, 0, None))?;
    let objects: Vec<NonNull<u8>> =
        (0..10).map(|_| cache.alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
    let before = must("info", s.cache_info(cache.id()))?;
    let calls = s.counters().calls;
    let inside = NonNull::new(objects[0].as_ptr().wrapping_add(8)).ok_or("pointer")?;
    match s.kfree(inside) {
        Err(memclient::Error::Server(Error::InvalidObject)) => {}
        other => return Err(alloc::format!("kfree inside an object: {other:?}")),
    }
    for &p in &objects {
        must("kfree", s.kfree(p))?;
    }
    ensure!(s.counters().calls == calls, "kfree of cache objects asked the server");
    let info = must("info", s.cache_info(cache.id()))?;
    // All ten went into the cache's (shared) magazines: allocated still, none given back.
    ensure!(
        info.active_objs == before.active_objs && info.magazine_objs == before.magazine_objs + 10,
        "{before:?} then {info:?}"
    );
    // The cache's next allocations (a thread's magazine first, then the shared ones) get
    // them back without asking the server.
    let n = 2 * usize::from(info.magazine_capacity);
    let again: Vec<NonNull<u8>> =
        (0..n).map(|_| cache.alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
    ensure!(objects.iter().all(|p| again.contains(p)), "the kfreed objects did not go to their cache's magazine");
    for p in again {
        must("free", cache.free(p))?;
    }
    Ok(())
}

/// `ksize` is the object's size (its class's); `kmalloc_size_roundup` says it beforehand.
pub fn ksize_is_the_size_class(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    for size in SIZES.into_iter().chain([8193, 20_000]) {
        let p = must("kmalloc", s.kmalloc(size))?;
        let k = must("ksize", s.ksize(p))?;
        ensure!(k == kmalloc_size_roundup(size) && k >= size, "ksize(kmalloc({size})) = {k}");
        write(&s, p, 0x5c, k)?;
        must("kfree", s.kfree(p))?;
    }
    Ok(())
}

/// A freed large kmalloc of up to 64 KiB is parked for the next `kmalloc` of its page count,
/// without IPC either way (Linux's per-CPU page lists); a second `kfree` of it is a double
/// free, a `kzalloc` of it is zeroed, `stats` gives parked runs back first, and an allocation
/// the server refuses for lack of memory gives them back and succeeds.
pub fn freed_large_kmallocs_are_reused_and_given_back(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let before = must("stats", s.stats())?.client_pages;
    let p = must("kmalloc", s.kmalloc(20_000))?;
    write(&s, p, 0x5a, 5 * PAGE_SIZE)?;
    let calls = s.counters().calls;
    must("kfree", s.kfree(p))?;
    let again = must("kmalloc", s.kmalloc(17_000))?;
    ensure!(again == p, "kmalloc of the same page count got {again:p}, not the parked {p:p}");
    ensure!(s.counters().calls == calls, "a parked large kmalloc asked the server");
    ensure!(must("ksize", s.ksize(again))? == 5 * PAGE_SIZE, "ksize of a reused large kmalloc");
    must("kfree", s.kfree(again))?;
    match s.kfree(again) {
        Err(memclient::Error::Server(Error::DoubleFree)) => {}
        other => return Err(alloc::format!("second kfree of a parked large kmalloc: {other:?}")),
    }
    let zeroed = must("kzalloc", s.kzalloc(5 * PAGE_SIZE))?;
    ensure!(zeroed == p, "kzalloc did not reuse the parked run");
    ensure!(bytes(&s, zeroed, 5 * PAGE_SIZE)?.iter().all(|&b| b == 0), "a reused large kzalloc is not zeroed");
    must("kfree", s.kfree(zeroed))?;
    ensure!(must("stats", s.stats())?.client_pages == before, "parked pages still the client's after stats");

    // Up to the quota with blocks of 17 pages (never parked), then of 3: less than 3 pages left.
    let mut held = Vec::new();
    for pages in [17, 3] {
        while let Ok(block) = s.kmalloc(pages * PAGE_SIZE) {
            held.push((block, pages));
            ensure!(held.len() < 1 << 14, "the server never refused a large kmalloc");
        }
    }
    let hole = held.iter().position(|&(_, pages)| pages == 17).ok_or("not one block of 17 pages")?;
    must("kfree of 17 pages", s.kfree(held.swap_remove(hole).0))?;
    let parked = must("kmalloc of 5 pages", s.kmalloc(5 * PAGE_SIZE))?;
    must("kfree of 5 pages", s.kfree(parked))?;
    // 12 free pages and less than 3: 15 fit only once the parked 5 are given back.
    let calls = s.counters().calls;
    let big = must("kmalloc of 15 pages with 5 parked", s.kmalloc(15 * PAGE_SIZE))?;
    ensure!(s.counters().calls >= calls + 3, "15 pages fit without giving the parked run back");
    held.push((big, 15));
    for (block, _) in held {
        must("kfree", s.kfree(block))?;
    }
    ensure!(must("stats", s.stats())?.client_pages == before, "pages left after freeing every block");
    Ok(())
}

/// `krealloc` as Linux's `__do_krealloc()`: in place while the size fits the object (with
/// `__GFP_ZERO` the bytes past the new size are zeroed), else a new object with the old
/// bytes, the old one freed.
pub fn krealloc_follows_linux(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let p = must("kmalloc(100)", s.kmalloc(100))?;
    write(&s, p, 0xee, 128)?;
    let q = must("shrink", s.krealloc(Some(p), 60, __GFP_ZERO))?;
    ensure!(q == p, "shrinking moved the object");
    let shrunk = bytes(&s, p, 128)?;
    ensure!(shrunk[..60].iter().all(|&b| b == 0xee) && shrunk[60..].iter().all(|&b| b == 0), "shrunk {shrunk:02x?}");
    write(&s, p, 0xee, 60)?;
    let q = must("grow within the object", s.krealloc(Some(p), 120, GFP_KERNEL))?;
    ensure!(q == p, "growing within kmalloc-128 moved the object");
    let r = must("grow past the object", s.krealloc(Some(p), 300, __GFP_ZERO))?;
    let grown = bytes(&s, r, 300)?;
    ensure!(r != p && grown[..60].iter().all(|&b| b == 0xee), "the old bytes were not copied");
    ensure!(grown[128..].iter().all(|&b| b == 0), "the new bytes are not zero");
    must("kfree", s.kfree(r))?;
    match s.krealloc(Some(r), 1 << 23, GFP_KERNEL) {
        Err(memclient::Error::Server(Error::InvalidArgument)) => {}
        other => return Err(alloc::format!("krealloc above KMALLOC_MAX_SIZE: {other:?}")),
    }
    Ok(())
}

/// `kcalloc`/`kmalloc_array` check the multiplication: an overflow fails (Linux's NULL), a
/// `kcalloc` is zeroed.
pub fn kcalloc_checks_overflow_and_zeroes(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    for result in [s.kmalloc_array(usize::MAX / 2, 3, GFP_KERNEL), s.kcalloc(1 << 40, 1 << 40, GFP_KERNEL)] {
        ensure!(matches!(result, Err(memclient::Error::Server(Error::InvalidArgument))), "{result:?}");
    }
    let dirty = must("kmalloc", s.kmalloc(80))?;
    write(&s, dirty, 0xff, 96)?;
    must("kfree", s.kfree(dirty))?;
    let p = must("kcalloc(10, 8)", s.kcalloc(10, 8, GFP_KERNEL))?;
    ensure!(bytes(&s, p, 80)?.iter().all(|&b| b == 0), "kcalloc not zeroed");
    must("kfree", s.kfree(p))?;
    Ok(())
}

/// Natural alignment holds for addresses, not only window offsets: the window base is aligned
/// to the largest kmalloc.
pub fn kmalloc_addresses_are_naturally_aligned(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let base = s.window().base().as_ptr().addr();
    ensure!(base % protocol::WINDOW_BASE_ALIGN == 0, "window base {base:#x} not aligned to 4 MiB");
    let mut held = Vec::new();
    for size in (3..=16).map(|k| 1usize << k) {
        for _ in 0..3 {
            let p = must("kmalloc", s.kmalloc(size))?;
            ensure!(p.as_ptr().addr() % size == 0, "kmalloc({size}) = {p:p}");
            held.push(p);
        }
    }
    for p in held {
        must("kfree", s.kfree(p))?;
    }
    Ok(())
}

/// `kmem_cache_alloc_bulk` fills all of its array or nothing: through the magazines (one
/// exchange per magazine), and on failure nothing stays allocated.
pub fn alloc_bulk_is_all_or_nothing(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    let cache = must("create", Cache::create(&s, "bulk", 64, 0, 0, None))?;
    let mut objects = [NonNull::dangling(); 300];
    let calls = s.counters().calls;
    ensure!(must("alloc_bulk", cache.alloc_bulk(&mut objects))? == 300, "count");
    ensure!(s.counters().calls - calls <= 8, "{} IPCs for 300 objects", s.counters().calls - calls);
    let mut sorted: Vec<usize> = objects.iter().map(|p| p.as_ptr().addr()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    ensure!(sorted.len() == 300, "an object was handed out twice");
    must("free_bulk", cache.free_bulk(&objects))?;
    must("flush", cache.flush())?;
    // More than the quota holds: refused, nothing leaked.
    let big = must("create", Cache::create(&s, "bulk-big", 65536, 0, 0, None))?;
    let quota = must("stats", s.stats())?.quota_pages as usize;
    let mut too_many = Vec::new();
    too_many.resize(quota / 16 + 1, NonNull::dangling());
    match big.alloc_bulk(&mut too_many) {
        Err(memclient::Error::Server(Error::QuotaExceeded | Error::OutOfMemory)) => {}
        other => return Err(alloc::format!("alloc_bulk beyond the quota: {other:?}")),
    }
    must("flush", big.flush())?;
    let info = must("info", s.cache_info(big.id()))?;
    ensure!(info.active_objs == 0, "{} objects leaked by a failed alloc_bulk", info.active_objs);
    Ok(())
}

static CONSTRUCTED: AtomicU32 = AtomicU32::new(0);
static DESTROYED: AtomicU32 = AtomicU32::new(0);

fn ctor(_object: NonNull<u8>) {
    CONSTRUCTED.fetch_add(1, Relaxed);
}

fn dtor(_object: NonNull<u8>) {
    DESTROYED.fetch_add(1, Relaxed);
}

/// Linux runs the ctor over every object of a new slab when it allocates the slab: the first
/// allocation constructs the whole slab, reuse never constructs again.
pub fn ctor_constructs_every_object_of_a_new_slab(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    CONSTRUCTED.store(0, Relaxed);
    let cache = must("create", Cache::create(&s, "ctor", 256, 0, 0, Some(ctor)))?;
    let per_slab = cache.layout().objects_per_slab;
    let first = must("alloc", cache.alloc())?;
    ensure!(
        CONSTRUCTED.load(Relaxed) >= per_slab,
        "{} objects constructed, a slab holds {per_slab}",
        CONSTRUCTED.load(Relaxed)
    );
    must("free", cache.free(first))?;
    let n = CONSTRUCTED.load(Relaxed);
    let again = must("alloc", cache.alloc())?;
    ensure!(CONSTRUCTED.load(Relaxed) == n, "a reused object was constructed again");
    must("free", cache.free(again))?;
    Ok(())
}

/// The dtor runs in the client on every object of a slab before the slab leaves the cache
/// (shrink, destroy), through the two-phase shrink.
pub fn dtor_runs_before_slabs_leave(h: &mut dyn Harness) -> Result<(), Failure> {
    let s = library(h, CLIENT)?;
    CONSTRUCTED.store(0, Relaxed);
    DESTROYED.store(0, Relaxed);
    let cache = must("create", Cache::create_with_dtor(&s, "dtor", 512, 0, 0, Some(ctor), Some(dtor)))?;
    let per_slab = cache.layout().objects_per_slab;
    let objects: Vec<NonNull<u8>> =
        (0..per_slab * 3).map(|_| cache.alloc()).collect::<Result<_, _>>().map_err(|e| alloc::format!("{e}"))?;
    for p in objects {
        must("free", cache.free(p))?;
    }
    // Every slab the cache got (a magazine refill may take more than asked) was constructed
    // whole, and is destroyed whole.
    let slabs = must("info", s.cache_info(cache.id()))?.num_slabs;
    let constructed = CONSTRUCTED.load(Relaxed);
    ensure!(constructed == per_slab * slabs && slabs >= 3, "{constructed} constructed in {slabs} slabs");
    let pages = must("shrink", cache.shrink())?;
    ensure!(pages == slabs * cache.layout().pages_per_slab, "{pages} pages released");
    ensure!(DESTROYED.load(Relaxed) == constructed, "{} of {constructed} destroyed", DESTROYED.load(Relaxed));
    must("alloc after the shrink", cache.alloc()).and_then(|p| must("free", cache.free(p)))?;
    cache.destroy().map_err(|(_, e)| alloc::format!("destroy: {e}"))?;
    ensure!(DESTROYED.load(Relaxed) == CONSTRUCTED.load(Relaxed), "destroy skipped the dtor");
    Ok(())
}

//! The client library (`memclient`) against the real `memserver` process: the magazine fast
//! path, ctors, zalloc, `SLAB_PANIC`, debug caches, `KmemCache<T>`, threads, and how magazine
//! objects are accounted. (Memory going back to the OS and SIGKILL reclaim: `client_memory.rs`.)

mod host;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memclient::host::{Connection, connect};
use memclient::{Cache, Error, KmemCache, Memserver};
use memserver_system::SystemText;
use protocol::flags::{SLAB_PANIC, SLAB_RED_ZONE};

/// The application, memctl, and a client with a small quota.
fn system() -> String {
    SystemText::new(16384).client("app", 4096, 8192).introspector("memctl").client("tiny", 16, 64).into()
}

fn session(server: &host::Server, name: &str) -> Memserver<Connection> {
    connect(&server.socket, name).unwrap_or_else(|e| panic!("connect {name}: {e}"))
}

#[test]
fn magazine_fast_path_hit_rate_is_at_least_90_percent_on_churn() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let cache = Cache::create(&ms, "churn", 64, 0, 0, None).unwrap();
    assert!(cache.has_magazines());
    let mut live = Vec::with_capacity(200);
    for round in 0..500u32 {
        for _ in 0..200 {
            let p = cache.alloc().unwrap();
            // SAFETY: a 64-byte object of this client's window, owned here until freed.
            unsafe { p.as_ptr().cast::<u32>().write(round) };
            live.push(p);
        }
        for p in live.drain(..) {
            cache.free(p).unwrap();
        }
    }
    let c = ms.counters();
    println!(
        "churn: {} alloc hits, {} free hits, {} misses, {} IPCs, hit rate {:.1} %",
        c.alloc_hits,
        c.free_hits,
        c.misses,
        c.calls,
        c.hit_rate() * 100.0
    );
    assert!(c.hit_rate() >= 0.90, "hit rate {:.3}", c.hit_rate());
    assert!(c.calls < 10_000, "{} IPCs for 200,000 operations", c.calls);
    // The counters the library published in the control region reach the server's Stats.
    let stats = ms.stats().unwrap();
    assert_eq!((stats.alloc_hits, stats.free_hits, stats.magazine_misses), (c.alloc_hits, c.free_hits, c.misses));
}

static CONSTRUCTED: Mutex<Option<HashSet<usize>>> = Mutex::new(None);
static CONSTRUCTED_TWICE: AtomicUsize = AtomicUsize::new(0);
const CTOR_PATTERN: u8 = 0xc7;

fn ctor(p: NonNull<u8>) {
    // SAFETY: the library hands the ctor a whole object of 48 bytes (the caches below).
    unsafe { p.as_ptr().write_bytes(CTOR_PATTERN, 48) };
    if !CONSTRUCTED.lock().unwrap().get_or_insert_with(HashSet::new).insert(p.as_ptr() as usize) {
        CONSTRUCTED_TWICE.fetch_add(1, SeqCst);
    }
}

fn constructed(p: NonNull<u8>) -> bool {
    CONSTRUCTED.lock().unwrap().as_ref().is_some_and(|s| s.contains(&(p.as_ptr() as usize)))
}

fn constructed_count() -> usize {
    CONSTRUCTED.lock().unwrap().as_ref().map_or(0, HashSet::len)
}

/// Allocates `n` objects, each constructed and in its constructed state; returns them.
fn alloc_constructed(cache: &Cache<'_, Connection>, n: usize) -> Vec<NonNull<u8>> {
    (0..n)
        .map(|_| {
            let p = cache.alloc().unwrap();
            assert!(constructed(p), "object {p:?} handed out without its ctor");
            // SAFETY: a 48-byte object owned here.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 48) };
            assert!(bytes.iter().all(|&b| b == CTOR_PATTERN), "object not in its constructed state");
            p
        })
        .collect()
}

#[test]
fn ctor_runs_once_per_fresh_object_and_never_on_reuse() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    for (name, magazines) in [("ctor-mag", true), ("ctor-ipc", false)] {
        let cache = if magazines {
            Cache::create(&ms, name, 48, 0, 0, Some(ctor)).unwrap()
        } else {
            Cache::create_without_magazines(&ms, name, 48, 0, 0, Some(ctor)).unwrap()
        };
        assert_eq!(cache.has_magazines(), magazines);
        let before = constructed_count();
        let first = alloc_constructed(&cache, 500);
        for p in &first {
            cache.free(*p).unwrap();
        }
        // Objects come back either reused (constructed long ago: no ctor now, which
        // CONSTRUCTED_TWICE would catch) or fresh from a slab (constructed exactly now).
        let second = alloc_constructed(&cache, 500);
        let reused = second.iter().filter(|p| first.contains(p)).count();
        assert!(reused >= 400, "{name}: only {reused} of 500 objects reused");
        let num_objs = ms.cache_info(cache.id()).unwrap().num_objs as usize;
        let ctor_calls = constructed_count() - before;
        assert!((500..=num_objs).contains(&ctor_calls), "{name}: {ctor_calls} ctor calls for {num_objs} objects");
        for p in second {
            cache.free(p).unwrap();
        }
        assert_eq!(cache.zalloc(), Err(Error::Server(protocol::Error::InvalidArgument)), "zalloc with a ctor");
    }
    assert_eq!(CONSTRUCTED_TWICE.load(SeqCst), 0, "an object was constructed twice");
    assert!(ms.counters().alloc_hits >= 900, "the magazine cache did not use its magazines");
}

#[test]
fn zalloc_zeroes_through_magazines() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let cache = Cache::create(&ms, "zeroed", 256, 0, 0, None).unwrap();
    let dirty: Vec<_> = (0..100).map(|_| cache.alloc().unwrap()).collect();
    for p in &dirty {
        // SAFETY: 256-byte objects owned here.
        unsafe { p.as_ptr().write_bytes(0xaa, 256) };
    }
    for p in dirty.iter().rev() {
        cache.free(*p).unwrap();
    }
    let hits = ms.counters().alloc_hits;
    let again: Vec<_> = (0..100).map(|_| cache.zalloc().unwrap()).collect();
    assert!(ms.counters().alloc_hits >= hits + 90, "zalloc did not go through the magazines");
    // Most come back from the magazines dirty (which objects the depot keeps and which go back
    // to their slabs is the server's choice), so the zeroing below is exercised on them.
    let reused = again.iter().filter(|p| dirty.contains(p)).count();
    assert!(reused >= 50, "zalloc did not reuse the freed objects: {reused} of 100");
    for p in &again {
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), 256) };
        assert!(bytes.iter().all(|&b| b == 0), "zalloc'd object not zero");
    }
}

#[test]
fn slab_panic_cache_panics_on_failure_while_others_return_the_error() {
    let server = host::start_real(&system());
    let ms = session(&server, "tiny");
    let plain = Cache::create(&ms, "plain", 4096, 0, 0, None).unwrap();
    let mut held = Vec::new();
    let error = loop {
        match plain.alloc() {
            Ok(p) => held.push(p),
            Err(e) => break e,
        }
        assert!(held.len() <= 16, "more pages than the quota");
    };
    assert_eq!(error, Error::Server(protocol::Error::QuotaExceeded));
    let panicky = Cache::create(&ms, "panicky", 4096, 0, SLAB_PANIC, None).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| panicky.alloc()));
    assert!(outcome.is_err(), "a SLAB_PANIC cache returned {outcome:?} instead of panicking");
    // The session is intact after the panic.
    for p in held {
        plain.free(p).unwrap();
    }
    assert!(plain.shrink().unwrap() > 0);
    assert!(panicky.alloc().is_ok(), "memory freed, but the PANIC cache still fails");
}

#[test]
fn debug_caches_bypass_magazines_every_op_is_an_ipc() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let cache = Cache::create(&ms, "red", 64, 0, SLAB_RED_ZONE, None).unwrap();
    assert!(!cache.has_magazines());
    let (c0, s0) = (ms.counters(), ms.stats().unwrap());
    let objects: Vec<_> = (0..100).map(|_| cache.alloc().unwrap()).collect();
    for p in objects {
        cache.free(p).unwrap();
    }
    let c1 = ms.counters();
    let s1 = ms.stats().unwrap();
    assert_eq!(c1.calls - c0.calls, 201, "one IPC per alloc and free (and one Stats)");
    assert_eq!((c1.alloc_hits, c1.free_hits), (c0.alloc_hits, c0.free_hits), "a debug cache hit a magazine");
    assert_eq!(c1.misses - c0.misses, 200);
    assert_eq!((s1.allocs - s0.allocs, s1.frees - s0.frees), (100, 100));
    assert_eq!(s1.refills, s0.refills);
}

#[test]
fn kmem_cache_takes_size_and_alignment_from_the_type() {
    #[repr(C, align(64))]
    struct Line([u8; 100]);
    #[allow(dead_code)]
    struct Pair(u64, u32);
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let lines = KmemCache::<Line, _>::new(&ms, "line", 0, None).unwrap();
    let layout = lines.cache().layout();
    assert_eq!((layout.object_size, layout.align), (128, 64));
    let objects: Vec<_> = (0..200u8)
        .map(|i| {
            let p = lines.alloc().unwrap();
            assert_eq!(p.as_ptr() as usize % 64, 0, "object not 64-byte aligned");
            // SAFETY: an uninitialised, properly aligned Line owned here.
            unsafe { p.as_ptr().write(Line([i; 100])) };
            p
        })
        .collect();
    for (i, p) in objects.iter().enumerate() {
        // SAFETY: initialised above.
        assert_eq!(unsafe { p.as_ref() }.0, [i as u8; 100]);
        lines.free(*p).unwrap();
    }
    let pairs = KmemCache::<Pair, _>::new(&ms, "pair", 0, None).unwrap();
    let layout = pairs.cache().layout();
    assert_eq!((layout.object_size, layout.align), (16, 8));
}

#[test]
fn four_threads_share_caches_without_loss_or_duplication() {
    share_caches([("shared-64", 64), ("shared-200", 200)], 4, 30_000);
}

/// More threads at once than there are per-thread magazines (16 stripes): the threads without
/// one use the shared magazines under the lock, beside those with one, and nothing is lost or
/// handed out twice; afterwards a flush (the exited threads' magazines included) gives every
/// object back.
#[test]
fn more_threads_than_stripes_share_a_cache_without_loss_or_duplication() {
    share_caches([("crowd-64", 64), ("crowd-96", 96)], 24, 3_000);
}

/// `threads` threads started together run `ops` random allocs and frees each over two caches
/// of one session (see [`worker_ops`]); what they still hold is exactly what `live` registered,
/// and once it is freed and the caches flushed (the exited threads' magazines included), no
/// object is active.
fn share_caches(caches: [(&str, usize); 2], threads: u64, ops: u64) {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let sizes = caches.map(|(_, size)| size);
    let caches = caches.map(|(name, size)| Cache::create(&ms, name, size as u32, 0, 0, None).unwrap());
    let live: Mutex<HashSet<usize>> = Mutex::new(HashSet::new());
    let start = std::sync::Barrier::new(threads as usize);
    // Each thread returns what it still holds: (cache, address, tag).
    let leftovers: Vec<Vec<(usize, usize, u64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (caches, sizes, live, start) = (&caches, &sizes, &live, &start);
                s.spawn(move || {
                    start.wait();
                    worker_ops(t, caches, sizes, live, ops)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let total: usize = leftovers.iter().map(Vec::len).sum();
    assert_eq!(live.lock().unwrap().len(), total, "objects lost or duplicated");
    for (which, addr, tag) in leftovers.into_iter().flatten() {
        let p = NonNull::new(addr as *mut u8).unwrap();
        check(p, sizes[which], tag);
        caches[which].free(p).unwrap();
    }
    for cache in &caches {
        cache.flush().unwrap();
        assert_eq!(ms.cache_info(cache.id()).unwrap().active_objs, 0, "objects lost");
    }
}

/// `ops` random operations of one worker thread: random allocs and frees over both caches,
/// every object pattern-checked before it is freed, every address registered in `live` (a
/// second hand-out of a live object fails the insert).
fn worker_ops(
    t: u64,
    caches: &[Cache<'_, Connection>; 2],
    sizes: &[usize; 2],
    live: &Mutex<HashSet<usize>>,
    ops: u64,
) -> Vec<(usize, usize, u64)> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
    let mut mine: Vec<(usize, usize, u64)> = Vec::new();
    for i in 0..ops {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if mine.is_empty() || (mine.len() < 400 && rng.is_multiple_of(2)) {
            let which = (rng >> 8) as usize % 2;
            let p = caches[which].alloc().unwrap();
            assert!(live.lock().unwrap().insert(p.as_ptr() as usize), "object handed out twice");
            let tag = t << 32 | i;
            fill(p, sizes[which], tag);
            mine.push((which, p.as_ptr() as usize, tag));
        } else {
            let (which, addr, tag) = mine.swap_remove((rng >> 8) as usize % mine.len());
            let p = NonNull::new(addr as *mut u8).unwrap();
            check(p, sizes[which], tag);
            assert!(live.lock().unwrap().remove(&addr));
            caches[which].free(p).unwrap();
        }
    }
    mine
}

fn fill(p: NonNull<u8>, size: usize, tag: u64) {
    for off in (0..size / 8 * 8).step_by(8) {
        // SAFETY: inside an object of `size` bytes owned by the caller; 8-byte aligned.
        unsafe { p.as_ptr().add(off).cast::<u64>().write(tag ^ off as u64) };
    }
}

fn check(p: NonNull<u8>, size: usize, tag: u64) {
    for off in (0..size / 8 * 8).step_by(8) {
        // SAFETY: as in `fill`.
        let v = unsafe { p.as_ptr().add(off).cast::<u64>().read() };
        assert_eq!(v, tag ^ off as u64, "object {p:?} overwritten at {off}");
    }
}

#[test]
fn objects_in_magazines_count_as_allocated() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let cache = Cache::create(&ms, "counted", 64, 0, 0, None).unwrap();
    let p = cache.alloc().unwrap();
    let info = ms.cache_info(cache.id()).unwrap();
    let capacity = u32::from(info.magazine_capacity);
    assert_eq!(info.active_objs, capacity, "the refilled magazine counts as allocated");
    // The rest of the refill sits in the shared magazines (the server sees them) or in this
    // thread's magazine (it does not).
    assert!(info.magazine_objs < capacity, "{} in the shared magazines", info.magazine_objs);
    let stats = ms.stats().unwrap();
    assert_eq!((stats.live_objects, stats.magazine_objects), (u64::from(capacity), u64::from(info.magazine_objs)));
    let mut row = None;
    ms.for_each_slabinfo_row(false, |r| {
        if r.name.as_str() == "counted" {
            row = Some(r.active_objs);
        }
    })
    .unwrap();
    assert_eq!(row, Some(capacity), "slabinfo active_objs");
    cache.free(p).unwrap();
    // The freed object sits in a magazine (this thread's, which the server cannot see, or the
    // shared one): still allocated to the client.
    let info = ms.cache_info(cache.id()).unwrap();
    assert_eq!(info.active_objs, capacity, "a freed object stays allocated while in a magazine");
    assert!(info.magazine_objs <= capacity);
    cache.flush().unwrap();
    let info = ms.cache_info(cache.id()).unwrap();
    assert_eq!((info.active_objs, info.magazine_objs), (0, 0));
}

#[test]
fn cache_guard_runs_the_fast_path_and_publishes_its_counts_when_dropped() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let cache = Cache::create(&ms, "guarded", 64, 0, 0, None).unwrap();
    let before = ms.counters();
    let mut seen = HashSet::new();
    {
        let mut guard = cache.lock();
        for round in 0..50u64 {
            let objects: Vec<_> = (0..100).map(|_| guard.alloc().unwrap()).collect();
            for &p in &objects {
                // SAFETY: a 64-byte object of this client's window, owned here until freed.
                unsafe { p.as_ptr().cast::<u64>().write(round) };
                assert!(seen.insert((round, p.as_ptr() as usize)), "an object handed out twice in one round");
            }
            for p in objects {
                // SAFETY: as above.
                assert_eq!(unsafe { p.as_ptr().cast::<u64>().read() }, round, "an object was overwritten");
                guard.free(p).unwrap();
            }
        }
    }
    let after = ms.counters();
    let hits = (after.alloc_hits - before.alloc_hits) + (after.free_hits - before.free_hits);
    let misses = after.misses - before.misses;
    assert_eq!(hits + misses, 10_000, "every guarded operation is counted once the guard is dropped");
    assert!(hits >= 9_000, "{hits} hits");
    let stats = ms.stats().unwrap();
    assert_eq!(
        (stats.alloc_hits, stats.free_hits),
        (after.alloc_hits, after.free_hits),
        "the server sees the published counts"
    );
    // Only objects sitting in magazines stayed allocated: a flush gives every one back.
    cache.flush().unwrap();
    let info = ms.cache_info(cache.id()).unwrap();
    assert_eq!((info.active_objs, info.magazine_objs), (0, 0), "only objects sitting in the magazines stay allocated");
}

#[test]
fn dma_addr_on_the_host_is_not_supported_and_checks_the_object_first() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let dma = Cache::create(&ms, "dma", 256, 0, protocol::flags::SLAB_CACHE_DMA, None).unwrap();
    let plain = Cache::create(&ms, "plain", 256, 0, 0, None).unwrap();
    let object = dma.alloc().unwrap();
    assert_eq!(dma.dma_addr(object), Err(Error::Server(protocol::Error::NotSupported)));
    let other = plain.alloc().unwrap();
    assert_eq!(plain.dma_addr(other), Err(Error::Server(protocol::Error::InvalidArgument)));
    dma.free(object).unwrap();
    plain.free(other).unwrap();
}

/// `kmalloc`/`kfree` run on per-thread magazines as a cache's `alloc`/`free` do: an object one
/// thread kfreed stays in that thread's magazine of its kmalloc class (the thread gets it back
/// among its next kmallocs of the class, once what the magazine's alloc side held went out;
/// another thread does not), the hardened kfree still refuses a double free there, and `stats`
/// counts what the threads parked as magazine objects.
#[test]
fn kmalloc_and_kfree_use_the_calling_threads_magazine() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    // Warm this thread's magazine of kmalloc-64: a kfreed object lands on top of it.
    let warm: Vec<_> = (0..4).map(|_| ms.kmalloc(64).unwrap()).collect();
    for &p in &warm {
        ms.kfree(p).unwrap();
    }
    let mine = ms.kmalloc(64).unwrap();
    ms.kfree(mine).unwrap();
    assert_eq!(ms.kfree(mine), Err(Error::Server(protocol::Error::DoubleFree)), "second kfree");
    let theirs = std::thread::scope(|s| {
        s.spawn(|| {
            let p = ms.kmalloc(64).unwrap();
            ms.kfree(p).unwrap();
            p.as_ptr().addr()
        })
        .join()
        .unwrap()
    });
    assert_ne!(theirs, mine.as_ptr().addr(), "another thread got the object this thread's magazine holds");
    // A thread magazine holds at most 32 handles: within as many kmallocs the object is back.
    let again: Vec<_> = (0..32).map(|_| ms.kmalloc(64).unwrap()).collect();
    assert!(again.contains(&mine), "this thread's kfreed object came back to this thread");
    for p in again {
        ms.kfree(p).unwrap();
    }
    let stats = ms.stats().unwrap();
    assert_eq!(stats.live_objects, stats.magazine_objects, "parked objects count as magazine objects");
}

/// `kfree`'s fast path takes only what it can prove is an object start of a kmalloc class
/// with magazines: everything else meets the general rules and their errors (an interior or
/// misaligned pointer, a page no slab holds, a pointer outside the window, a large kmalloc, an
/// object of another cache), and a kmalloc of every size lands in the class `ksize` names.
#[test]
fn kfree_fast_path_leaves_everything_else_to_the_general_rules() {
    let server = host::start_real(&system());
    let ms = session(&server, "app");
    let invalid = Err(Error::Server(protocol::Error::InvalidObject));
    // Warm this thread's magazine of kmalloc-64, so the fast path is the one that answers.
    let warm: Vec<_> = (0..8).map(|_| ms.kmalloc(64).unwrap()).collect();
    warm.iter().for_each(|&p| ms.kfree(p).unwrap());
    let live = ms.kmalloc(64).unwrap();
    let inside = |offset: usize| NonNull::new(live.as_ptr().wrapping_add(offset)).unwrap();
    for offset in [8, 4, 1, 63] {
        assert_eq!(ms.kfree(inside(offset)), invalid, "kfree of a pointer {offset} bytes into an object");
    }
    // The refusals changed nothing: the object is still live, and one kfree frees it.
    ms.kfree(live).unwrap();
    assert_eq!(ms.kfree(live), Err(Error::Server(protocol::Error::DoubleFree)), "second kfree");
    // Outside the window, and a window page no slab holds (its last page: nothing there yet).
    let window = ms.window();
    let below = NonNull::new(window.base().as_ptr().wrapping_sub(4096)).unwrap();
    assert_eq!(ms.kfree(below), Err(Error::NotInWindow), "kfree below the window");
    let last = NonNull::new(window.base().as_ptr().wrapping_add(window.len() - 4096)).unwrap();
    assert_eq!(ms.kfree(last), invalid, "kfree of a page no slab holds");
    // A large kmalloc (whole pages) and an object of a cache of this client.
    let large = ms.kmalloc(20_000).unwrap();
    ms.kfree(large).unwrap();
    assert_eq!(ms.kfree(large), Err(Error::Server(protocol::Error::DoubleFree)), "second kfree of a large one");
    let cache = Cache::create(&ms, "kfree-target", 40, 0, 0, None).unwrap();
    let object = cache.alloc().unwrap();
    ms.kfree(object).unwrap();
    assert_eq!(cache.free(object), Err(Error::Server(protocol::Error::DoubleFree)), "free after kfree");
    // Every size: its class's object size, as ksize says, and back through kfree.
    for size in (1..=8192).step_by(7).chain([8, 16, 96, 192, 193, 256, 4096, 8192]) {
        let p = ms.kmalloc(size).unwrap();
        assert_eq!(ms.ksize(p).unwrap(), memclient::kmalloc_size_roundup(size), "ksize of kmalloc({size})");
        ms.kfree(p).unwrap();
    }
}

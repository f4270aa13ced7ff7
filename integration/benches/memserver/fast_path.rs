//! (a) One alloc+free pair through the magazine fast path, against glibc `malloc`/`free` and
//! mimalloc, per object size; and one `kmalloc`+`kfree` pair of the same sizes (the kmalloc
//! caches' magazines, `kfree` finding the cache through the page-owner table) against
//! mimalloc's `malloc`/`free`. Each pair also writes one word of the object (as a user
//! would), so no allocator is measured handing out memory nobody touches. Beside the guard
//! pair, the same pair without the hardened free's checks ([`UNCHECKED`]): the summary's
//! `hardened_check_ns_per_pair` is the difference. And one pair of 64 B (loadgen churn's) of
//! `Cache::alloc`/`free` and of mimalloc timed one operation at a time exactly as loadgen times
//! its sampled operations ([`Sampled`]), the like-for-like baseline of loadgen's mean pair.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use memclient::Cache;
use memclient::host::Connection;

/// The sizes of the comparison.
pub const SIZES: [u32; 4] = [8, 64, 256, 1024];

/// Benchmark group name (also the criterion directory).
pub const GROUP: &str = "fast_path";

/// The guard pair without the hardened free's checks (`CacheGuard::alloc`/`free` minus what
/// `hardened.rs` adds): the benchmark the checks' cost is measured against.
pub const UNCHECKED: &str = "memserver-guard-unchecked";

#[inline]
fn touch(object: NonNull<u8>) {
    // SAFETY: a live object of at least 8 bytes, 8-byte aligned, owned by the caller.
    unsafe { object.as_ptr().cast::<u64>().write_volatile(0x5A5A) };
    black_box(object);
}

/// Runs `pair` `iters` times in a loop of its own and times it. The function is never inlined,
/// so where the loop lies in the code depends only on the pair's own code, not on the rest of
/// the benchmark binary: as criterion's inline loops, a 3 ns pair moved by up to 0.4 ns from
/// one build to the next when unrelated code changed (which made the difference of two such
/// loops, the hardened check's cost, swing between 0.8 and 1.3 ns).
#[inline(never)]
fn timed_loop(iters: u64, mut pair: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        pair();
    }
    start.elapsed()
}

fn pair<A: GlobalAlloc>(allocator: &A, layout: Layout) {
    // SAFETY: a non-zero layout; the object is freed with the same allocator and layout.
    unsafe {
        let p = allocator.alloc(layout);
        let object = NonNull::new(p).expect("out of memory");
        touch(object);
        allocator.dealloc(p, layout);
    }
}

/// Object size of the sampled pairs (loadgen churn's).
pub const SAMPLED_SIZE: u32 = 64;
/// Pairs timed one operation at a time.
const SAMPLED_PAIRS: u32 = 200_000;

/// Alloc+free pairs of [`SAMPLED_SIZE`] bytes timed one operation at a time, with loadgen's
/// [`loadgen::Sampler`] (two clock reads around each call, the clock's cost subtracted): what
/// loadgen's sampled mean pair is when nothing else runs between the operations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sampled {
    /// `Cache::alloc`/`free`, as loadgen's memserver backend calls them.
    pub memserver_ns: Option<f64>,
    /// mimalloc's `alloc`/`dealloc`, as loadgen's mimalloc backend calls them.
    pub mimalloc_ns: Option<f64>,
}

/// Mean pair of `alloc` then `free`, each operation timed alone (see [`Sampled`]).
fn sampled_pair(mut alloc: impl FnMut() -> NonNull<u8>, mut free: impl FnMut(NonNull<u8>)) -> f64 {
    // Warm up first (an allocator's first objects of a size cost a page or a heap set-up).
    for _ in 0..SAMPLED_PAIRS / 10 {
        let object = alloc();
        touch(object);
        free(object);
    }
    let mut sampler = loadgen::Sampler::new();
    for _ in 0..SAMPLED_PAIRS {
        let t = Some(Instant::now());
        let object = alloc();
        sampler.record(t);
        touch(object);
        let t = Some(Instant::now());
        free(object);
        sampler.record(t);
    }
    2.0 * sampler.mean_ns()
}

/// Runs the fast-path group; returns the [`Sampled`] pairs.
pub fn bench(c: &mut Criterion, session: &memclient::Memserver<Connection>) -> Sampled {
    let mut group = c.benchmark_group(GROUP);
    let mut sampled = Sampled::default();
    for size in SIZES {
        let cache = Cache::create(session, &format!("bench-{size}"), size, 0, 0, None).expect("cache create");
        assert!(cache.has_magazines(), "bench-{size} got no magazine slot");
        // Warm the magazines: the first alloc refills the loaded magazine by IPC.
        for _ in 0..10_000 {
            let object = cache.alloc().expect("alloc");
            cache.free(object).expect("free");
        }
        let before = session.counters();
        group.bench_with_input(BenchmarkId::new("memserver", size), &size, |b, _| {
            b.iter_custom(|iters| {
                timed_loop(iters, || {
                    let object = cache.alloc().expect("alloc");
                    touch(object);
                    cache.free(object).expect("free");
                })
            })
        });
        // The same pair through a CacheGuard: the cache's lock taken once for the whole run,
        // so each pair has no atomic instruction (single-owner use, `Cache::lock`).
        group.bench_with_input(BenchmarkId::new("memserver-guard", size), &size, |b, _| {
            let mut guard = cache.lock();
            b.iter_custom(|iters| {
                timed_loop(iters, || {
                    let object = guard.alloc().expect("alloc");
                    touch(object);
                    guard.free(object).expect("free");
                })
            })
        });
        // The same guard pair without the hardened free's checks and canary (a bench-only
        // entry point), run right after it: the difference is what the checks cost a pair.
        group.bench_with_input(BenchmarkId::new(UNCHECKED, size), &size, |b, _| {
            let mut guard = cache.lock();
            b.iter_custom(|iters| {
                timed_loop(iters, || {
                    // SAFETY: `touch` neither keeps nor frees the object.
                    unsafe { guard.bench_only_pair_without_hardened_checks(touch) }.expect("pair");
                })
            })
        });
        let layout = Layout::from_size_align(size as usize, 8).expect("layout");
        if size == SAMPLED_SIZE {
            sampled.memserver_ns =
                Some(sampled_pair(|| cache.alloc().expect("alloc"), |object| cache.free(object).expect("free")));
            let mi = &mimalloc::MiMalloc;
            sampled.mimalloc_ns = Some(sampled_pair(
                // SAFETY: a non-zero layout; each object is freed once, with the same layout.
                || NonNull::new(unsafe { mi.alloc(layout) }).expect("out of memory"),
                // SAFETY: as above.
                |object| unsafe { mi.dealloc(object.as_ptr(), layout) },
            ));
        }
        let after = session.counters();
        assert_eq!(after.misses, before.misses, "the fast path left the magazines");
        group.bench_with_input(BenchmarkId::new("glibc", size), &size, |b, _| {
            b.iter_custom(|iters| timed_loop(iters, || pair(&System, layout)))
        });
        group.bench_with_input(BenchmarkId::new("mimalloc", size), &size, |b, _| {
            b.iter_custom(|iters| timed_loop(iters, || pair(&mimalloc::MiMalloc, layout)))
        });
        if cache.destroy().is_err() {
            panic!("bench-{size}: destroy failed");
        }
        // kmalloc of the same size: warm its class's magazines, then the pair.
        for _ in 0..10_000 {
            let object = session.kmalloc(size as usize).expect("kmalloc");
            session.kfree(object).expect("kfree");
        }
        let before = session.counters();
        group.bench_with_input(BenchmarkId::new("memserver-kmalloc", size), &size, |b, _| {
            b.iter_custom(|iters| {
                timed_loop(iters, || {
                    let object = session.kmalloc(black_box(size as usize)).expect("kmalloc");
                    touch(object);
                    session.kfree(object).expect("kfree");
                })
            })
        });
        let after = session.counters();
        assert_eq!(after.misses, before.misses, "kmalloc left the magazines");
    }
    group.finish();
    sampled
}

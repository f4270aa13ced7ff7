//! Runs a plan against one backend: one thread per plan, a common start, the operations timed
//! by sampling, every object's pattern checked before it is freed.
//!
//! Latency is sampled: one operation in `SAMPLE_EVERY` is timed on its own (only the
//! allocator call, not the pattern work), with the clock's own cost, calibrated at start-up,
//! subtracted. Throughput is the whole loop's: allocator calls plus pattern fill and check.

use std::ptr::NonNull;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::backend::Backend;
use crate::pattern::{self, Corruption};
use crate::workload::{Op, Plan};

/// One operation in this many is timed.
pub const SAMPLE_EVERY: u64 = 32;
/// The budget and the progress counter are looked at every this many operations.
const CHECK_EVERY: u64 = 1024;
/// Failure messages kept per thread (all are counted).
const FAILURES_KEPT: usize = 5;

/// How long a configuration runs.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Exactly this many operations per thread.
    Ops(u64),
    /// About this long (checked every `CHECK_EVERY` operations).
    Time(Duration),
}

/// What one configuration did in one client process (all its threads).
#[derive(Debug)]
pub struct RunResult {
    /// Operations done in the timed part.
    pub ops: u64,
    /// Wall time of the timed part (the slowest thread).
    pub elapsed: Duration,
    /// Sampled per-operation latencies in nanoseconds.
    pub latency: Histogram<u64>,
    /// Objects whose pattern was checked before they were freed.
    pub verified: u64,
    /// Objects found corrupted (pattern or constructor state wrong).
    pub corrupted: u64,
    /// Allocations or frees the backend refused.
    pub refused: u64,
    /// The first few problems, described.
    pub failures: Vec<String>,
}

/// A latency histogram in nanoseconds, 3 significant digits, up to an hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

/// How the runner times an operation: the clock read before and after it, less the clock's own
/// cost ([`clock_overhead`], calibrated once), into a histogram. Public so that a benchmark can
/// time an allocator's operations alone exactly as loadgen times them inside a workload.
pub struct Sampler {
    latency: Histogram<u64>,
    overhead: u64,
}

impl Sampler {
    /// An empty sampler, with the clock's cost calibrated now.
    pub fn new() -> Self {
        Sampler { latency: histogram(), overhead: clock_overhead() }
    }

    /// Records the time since `since` (the clock read before the operation), if it was read.
    #[inline]
    pub fn record(&mut self, since: Option<Instant>) {
        if let Some(t) = since {
            let ns = (t.elapsed().as_nanos() as u64).saturating_sub(self.overhead).max(1);
            let _ = self.latency.record(ns);
        }
    }

    /// Mean of the recorded operations, in nanoseconds.
    pub fn mean_ns(&self) -> f64 {
        self.latency.mean()
    }
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

/// The cost of reading the clock twice, in nanoseconds (the minimum over many tries).
pub fn clock_overhead() -> u64 {
    (0..2000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as u64
        })
        .min()
        .unwrap_or(0)
}

/// A live object of the table. Its size and class share one word, written and read whole: as
/// two fields (a 4- and a 2-byte store) the free's 8-byte load of them right after the alloc
/// could not be forwarded from the stores and waited for them to reach the cache, a stall of
/// the harness that hit some allocators' builds and not others (perf: 28 % of one backend's
/// `free`).
#[derive(Clone, Copy)]
struct Live {
    object: Option<NonNull<u8>>,
    tag: u64,
    /// `size | class << 32`.
    size_class: u64,
}

impl Live {
    fn new(object: NonNull<u8>, tag: u64, size: u32, class: u16) -> Live {
        Live { object: Some(object), tag, size_class: u64::from(size) | u64::from(class) << 32 }
    }

    fn size(&self) -> u32 {
        self.size_class as u32
    }

    fn class(&self) -> u16 {
        (self.size_class >> 32) as u16
    }
}

const EMPTY: Live = Live { object: None, tag: 0, size_class: 0 };

/// What a thread hands back.
struct Outcome {
    latency: Histogram<u64>,
    verified: u64,
    corrupted: u64,
    refused: u64,
    failures: Vec<String>,
}

/// Per-thread state of a run.
struct Worker<'a, B: Backend> {
    backend: &'a B,
    ctor: bool,
    live: Vec<Live>,
    sampler: Sampler,
    next_tag: u64,
    verified: u64,
    corrupted: u64,
    refused: u64,
    failures: Vec<String>,
}

/// Runs `plans` (one thread each) on `backend`. `ctor`: the workload constructs objects.
/// `before_drain` runs once, after every thread has stopped its timed part and before the
/// objects still live are checked and freed (the slabinfo snapshot). `tag_base` makes object
/// tags unique across client processes.
pub fn run<B: Backend>(
    backend: &B,
    plans: &[Plan],
    budget: Budget,
    ctor: bool,
    progress: &AtomicU64,
    tag_base: u64,
    before_drain: &(dyn Fn() + Sync),
) -> RunResult {
    let start = Barrier::new(plans.len());
    let stop = Barrier::new(plans.len());
    let workers: Vec<(Outcome, u64, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(t, plan)| {
                let (start, stop) = (&start, &stop);
                scope.spawn(move || {
                    let mut w = Worker {
                        backend,
                        ctor,
                        live: vec![EMPTY; plan.slots],
                        sampler: Sampler::new(),
                        next_tag: tag_base | (t as u64) << 40,
                        verified: 0,
                        corrupted: 0,
                        refused: 0,
                        failures: Vec::new(),
                    };
                    start.wait();
                    let began = Instant::now();
                    let ops = w.run(plan, budget, progress);
                    let elapsed = began.elapsed();
                    if stop.wait().is_leader() {
                        before_drain();
                    }
                    stop.wait();
                    w.drain();
                    (w.outcome(), ops, elapsed)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut result = RunResult {
        ops: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        verified: 0,
        corrupted: 0,
        refused: 0,
        failures: Vec::new(),
    };
    if workers.len() != plans.len() {
        result.failures.push("a worker thread panicked".into());
        result.refused += 1;
    }
    for (w, ops, elapsed) in workers {
        result.ops += ops;
        result.elapsed = result.elapsed.max(elapsed);
        let _ = result.latency.add(&w.latency);
        result.verified += w.verified;
        result.corrupted += w.corrupted;
        result.refused += w.refused;
        result.failures.extend(w.failures);
    }
    result
}

impl<B: Backend> Worker<'_, B> {
    fn outcome(self) -> Outcome {
        let Worker { sampler, verified, corrupted, refused, failures, .. } = self;
        Outcome { latency: sampler.latency, verified, corrupted, refused, failures }
    }

    /// The timed loop; returns the operations done.
    fn run(&mut self, plan: &Plan, budget: Budget, progress: &AtomicU64) -> u64 {
        let began = Instant::now();
        let mut ops = 0u64;
        let mut next = plan.ops.iter().cycle();
        loop {
            if ops.is_multiple_of(CHECK_EVERY) {
                if ops > 0 {
                    progress.fetch_add(CHECK_EVERY, Ordering::Relaxed);
                }
                if let Budget::Time(limit) = budget
                    && began.elapsed() >= limit
                {
                    break;
                }
            }
            if let Budget::Ops(limit) = budget
                && ops >= limit
            {
                break;
            }
            let Some(&op) = next.next() else { break };
            let timed = ops.is_multiple_of(SAMPLE_EVERY);
            ops += 1;
            let ok = match op {
                Op::Alloc { slot, class, size } => self.alloc(slot as usize, class, size, timed),
                Op::Free { slot } => self.free(slot as usize, timed),
            };
            if !ok {
                break;
            }
        }
        progress.fetch_add(ops % CHECK_EVERY, Ordering::Relaxed);
        ops
    }

    #[inline]
    fn record(&mut self, since: Option<Instant>) {
        self.sampler.record(since);
    }

    fn alloc(&mut self, slot: usize, class: u16, size: u32, timed: bool) -> bool {
        let t = timed.then(Instant::now);
        let object = self.backend.alloc(usize::from(class), size as usize);
        self.record(t);
        let Some(object) = object else {
            self.refused += 1;
            self.fail(format!("allocation of {size} bytes (class {class}) refused"));
            return false;
        };
        if self.ctor {
            if !self.backend.constructs() {
                // SAFETY: a fresh object of `size` bytes, ours until freed.
                unsafe { pattern::construct(object, size as usize) };
            }
            // SAFETY: as above.
            if let Err(c) = unsafe { pattern::check_constructed(object, size as usize) } {
                self.corrupt("not in its constructed state after alloc", object, c);
            }
        }
        self.next_tag += 1;
        // SAFETY: a fresh object of `size` bytes, 8-byte aligned, ours until freed.
        unsafe { pattern::fill(object, size as usize, self.next_tag) };
        if let Some(entry) = self.live.get_mut(slot) {
            *entry = Live::new(object, self.next_tag, size, class);
        }
        true
    }

    fn free(&mut self, slot: usize, timed: bool) -> bool {
        let Some(live) = self.live.get_mut(slot).map(|e| std::mem::replace(e, EMPTY)) else {
            return false;
        };
        let Some(object) = live.object else {
            return true;
        };
        self.verify(&live, object);
        let t = timed.then(Instant::now);
        // SAFETY: `object` came from this backend's alloc with this class and size, and the
        // table no longer holds it.
        let ok = unsafe { self.backend.free(usize::from(live.class()), live.size() as usize, object) };
        self.record(t);
        if !ok {
            self.refused += 1;
            self.fail(format!("free of a {}-byte object refused", live.size()));
        }
        ok
    }

    /// Checks the pattern, then puts a constructed object back in its constructed state.
    fn verify(&mut self, live: &Live, object: NonNull<u8>) {
        self.verified += 1;
        // SAFETY: a live object of `live.size()` bytes, ours.
        if let Err(c) = unsafe { pattern::check(object, live.size() as usize, live.tag) } {
            self.corrupt("pattern overwritten before free (lost or shared object)", object, c);
        }
        if self.ctor {
            // SAFETY: as above.
            unsafe { pattern::construct(object, live.size() as usize) };
        }
    }

    /// Checks and frees every object still live (untimed).
    fn drain(&mut self) {
        for slot in 0..self.live.len() {
            if !self.free(slot, false) {
                break;
            }
        }
    }

    fn corrupt(&mut self, what: &str, object: NonNull<u8>, c: Corruption) {
        self.corrupted += 1;
        self.fail(format!("object {object:p}: {what}: {c}"));
    }

    fn fail(&mut self, message: String) {
        if self.failures.len() < FAILURES_KEPT {
            self.failures.push(message);
        }
    }
}

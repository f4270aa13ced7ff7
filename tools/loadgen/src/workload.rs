//! The workloads: each is an operation sequence generated once from the seed, so every
//! configuration (memserver with and without magazines, glibc, mimalloc) runs exactly the
//! same allocations and frees in the same order.
//!
//! A sequence names objects by *slot* (an index into the runner's table of live objects); an
//! `Alloc` always targets a free slot and a `Free` a live one. Every sequence ends with the
//! frees of whatever is still live, so it can be replayed in a loop (`--seconds`).

use std::collections::VecDeque;

/// Which workload to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Alloc then free at once, one size (`--size`).
    Churn,
    /// Sizes drawn over the kmalloc classes with a Linux-like distribution, random frees from a
    /// bounded pool of live objects; half the objects come from a cache per class (kernel
    /// code's dedicated caches), half from `kmalloc` of the exact size.
    Mixed,
    /// A FIFO pool of live objects: each object lives for `LIFETIME_POOL` operations.
    Lifetime,
    /// Allocate `BURST` objects, then free them all in random order.
    Burst,
    /// As churn, on a cache with a constructor (memserver runs it once per object; the
    /// baselines construct on every allocation, as a plain malloc user must).
    Ctor,
    /// `kmalloc`/`kfree` only: sizes over 8 … 4096 bytes as kernel code asks them
    /// (`KMALLOC_SIZES`, odd sizes within each class), one allocation in `LARGE_EVERY` a
    /// large one (8 KiB … 64 KiB, whole pages), random frees from a bounded pool. The
    /// baselines `malloc` the same sizes.
    Kmalloc,
}

impl Workload {
    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Churn => "churn",
            Workload::Mixed => "mixed",
            Workload::Lifetime => "lifetime",
            Workload::Burst => "burst",
            Workload::Ctor => "ctor",
            Workload::Kmalloc => "kmalloc",
        }
    }
}

/// Objects alive at once in `lifetime`.
pub const LIFETIME_POOL: usize = 2048;
/// Objects per burst.
pub const BURST: usize = 2048;
/// Upper bound of the live pool in `mixed`.
pub const MIXED_POOL: usize = 1024;

/// The `mixed` size classes (Linux's kmalloc classes up to 2 KiB) and their weights in
/// percent, after the shape of `/proc/slabinfo` on a typical desktop: small objects dominate.
pub const MIXED_CLASSES: [(u32, u32); 11] =
    [(8, 10), (16, 12), (32, 14), (64, 18), (96, 6), (128, 10), (192, 8), (256, 8), (512, 7), (1024, 5), (2048, 2)];

/// The `kmalloc` size classes up to 4 KiB and their weights in percent (small objects
/// dominate, as in `/proc/slabinfo`'s `kmalloc-*` rows).
pub const KMALLOC_SIZES: [(u32, u32); 12] = [
    (8, 8),
    (16, 12),
    (32, 14),
    (64, 16),
    (96, 6),
    (128, 10),
    (192, 8),
    (256, 8),
    (512, 8),
    (1024, 5),
    (2048, 3),
    (4096, 2),
];
/// One `kmalloc` workload allocation in this many is a large one (above the 8 KiB class:
/// whole pages, an IPC each way).
pub const LARGE_EVERY: u64 = 1000;
/// The large sizes: above `kmalloc-8k`, up to 64 KiB.
pub const LARGE_SIZES: (u32, u32) = (8192, 65536);
/// `Op::Alloc::class` of an object from `kmalloc` (of its `size`) rather than from a cache.
pub const KMALLOC: u16 = u16::MAX;

/// One operation of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Allocate an object of `size` bytes (from size class `class`, or by `kmalloc` when
    /// `class` is [`KMALLOC`]) into `slot`.
    Alloc { slot: u32, class: u16, size: u32 },
    /// Free the object in `slot`.
    Free { slot: u32 },
}

/// A generated sequence and what it needs.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The operations, ending with every object freed.
    pub ops: Vec<Op>,
    /// Object size of each class (one memserver cache per class; none for `kmalloc`).
    pub classes: Vec<u32>,
    /// Slots the sequence uses (the live table's size).
    pub slots: usize,
}

/// SplitMix64: a small, fast, well-mixed generator; reproducible from the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The seed of one thread of one client: distinct streams from one `--seed`.
pub fn thread_seed(seed: u64, client: usize, thread: usize) -> u64 {
    Rng::new(seed ^ ((client as u64) << 32 | thread as u64)).next_u64()
}

/// Tracks free and live slots while a sequence is generated.
struct Builder {
    ops: Vec<Op>,
    free_slots: Vec<u32>,
    slots: usize,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        Builder { ops: Vec::with_capacity(capacity), free_slots: Vec::new(), slots: 0 }
    }

    fn alloc(&mut self, class: u16, size: u32) -> u32 {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots += 1;
            (self.slots - 1) as u32
        });
        self.ops.push(Op::Alloc { slot, class, size });
        slot
    }

    fn free(&mut self, slot: u32) {
        self.ops.push(Op::Free { slot });
        self.free_slots.push(slot);
    }

    fn finish(mut self, live: impl IntoIterator<Item = u32>, classes: Vec<u32>) -> Plan {
        for slot in live {
            self.free(slot);
        }
        Plan { ops: self.ops, classes, slots: self.slots.max(1) }
    }
}

/// Generates about `len` operations (at least one alloc/free pair; the final frees may add a
/// few) of `workload` with objects of `size` bytes (ignored by `mixed`).
pub fn generate(workload: Workload, seed: u64, len: usize, size: u32) -> Plan {
    let mut rng = Rng::new(seed);
    let len = len.max(2);
    let mut b = Builder::new(len + MIXED_POOL.max(LIFETIME_POOL).max(BURST));
    match workload {
        Workload::Churn | Workload::Ctor => {
            while b.ops.len() + 2 <= len {
                let slot = b.alloc(0, size);
                b.free(slot);
            }
            b.finish([], vec![size])
        }
        Workload::Mixed => {
            let classes: Vec<u32> = MIXED_CLASSES.iter().map(|&(s, _)| s).collect();
            let live = random_pool(&mut b, &mut rng, len, |rng| {
                let (class, size) = drawn(rng, &MIXED_CLASSES);
                (if rng.below(2) == 0 { KMALLOC } else { class }, size)
            });
            b.finish(live, classes)
        }
        Workload::Kmalloc => {
            let live = random_pool(&mut b, &mut rng, len, |rng| {
                if rng.below(LARGE_EVERY) == 0 {
                    let (low, high) = LARGE_SIZES;
                    (KMALLOC, low + 1 + rng.below(u64::from(high - low)) as u32)
                } else {
                    (KMALLOC, drawn(rng, &KMALLOC_SIZES).1)
                }
            });
            b.finish(live, Vec::new())
        }
        Workload::Lifetime => {
            let mut live = VecDeque::new();
            while b.ops.len() < len {
                if live.len() == LIFETIME_POOL
                    && let Some(oldest) = live.pop_front()
                {
                    b.free(oldest);
                }
                live.push_back(b.alloc(0, size));
            }
            b.finish(live, vec![size])
        }
        Workload::Burst => {
            let burst = BURST.min(len / 2).max(1);
            while b.ops.is_empty() || b.ops.len() + 2 * burst <= len {
                let mut live: Vec<u32> = (0..burst).map(|_| b.alloc(0, size)).collect();
                while !live.is_empty() {
                    let victim = rng.below(live.len() as u64) as usize;
                    b.free(live.swap_remove(victim));
                }
            }
            b.finish([], vec![size])
        }
    }
}

/// Random allocs (sizes from `size`) and frees of random live objects, the pool of live
/// objects bounded by [`MIXED_POOL`]; returns the objects still live.
fn random_pool(b: &mut Builder, rng: &mut Rng, len: usize, mut size: impl FnMut(&mut Rng) -> (u16, u32)) -> Vec<u32> {
    let mut live: Vec<u32> = Vec::new();
    while b.ops.len() < len {
        let grow = live.is_empty() || (live.len() < MIXED_POOL && rng.below(2) == 0);
        if grow {
            let (class, bytes) = size(rng);
            live.push(b.alloc(class, bytes));
        } else {
            let victim = rng.below(live.len() as u64) as usize;
            b.free(live.swap_remove(victim));
        }
    }
    live
}

/// A size from a distribution of (class size, weight in percent): its class and an exact
/// size within the class (uniform between the previous class and this one, as callers of
/// kmalloc ask odd sizes).
fn drawn(rng: &mut Rng, classes: &[(u32, u32)]) -> (u16, u32) {
    let mut pick = rng.below(100) as u32;
    let mut lower = 0;
    for (i, &(size, weight)) in classes.iter().enumerate() {
        if pick < weight {
            let exact = lower + 1 + rng.below(u64::from(size - lower)) as u32;
            return (i as u16, exact);
        }
        pick -= weight;
        lower = size;
    }
    (0, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays a plan against a model of the slot table: allocs hit free slots, frees live
    /// ones, and nothing is live at the end.
    fn check_balanced(plan: &Plan) {
        let mut live = vec![false; plan.slots];
        for op in &plan.ops {
            match *op {
                Op::Alloc { slot, class, size } => {
                    assert!(!live[slot as usize], "alloc into a live slot");
                    let limit = if class == KMALLOC { LARGE_SIZES.1 } else { plan.classes[usize::from(class)] };
                    assert!(size >= 1 && size <= limit);
                    live[slot as usize] = true;
                }
                Op::Free { slot } => {
                    assert!(live[slot as usize], "free of a free slot");
                    live[slot as usize] = false;
                }
            }
        }
        assert!(live.iter().all(|l| !l), "objects left live at the end");
    }

    #[test]
    fn every_workload_is_balanced_and_reproducible() {
        for w in
            [Workload::Churn, Workload::Mixed, Workload::Lifetime, Workload::Burst, Workload::Ctor, Workload::Kmalloc]
        {
            for len in [2, 3, 100, 10_000] {
                let plan = generate(w, 7, len, 64);
                check_balanced(&plan);
                assert!(!plan.ops.is_empty());
                assert_eq!(plan.ops, generate(w, 7, len, 64).ops, "{w:?} not reproducible");
            }
        }
    }

    #[test]
    fn mixed_draws_every_class() {
        let plan = generate(Workload::Mixed, 1, 50_000, 0);
        let mut seen = [false; MIXED_CLASSES.len()];
        for op in &plan.ops {
            if let Op::Alloc { class, .. } = op
                && *class != KMALLOC
            {
                seen[usize::from(*class)] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        let kmallocs = plan.ops.iter().filter(|op| matches!(op, Op::Alloc { class: KMALLOC, .. })).count();
        let allocs = plan.ops.iter().filter(|op| matches!(op, Op::Alloc { .. })).count();
        assert!(kmallocs * 3 > allocs && kmallocs * 3 < 2 * allocs, "about half by kmalloc: {kmallocs} of {allocs}");
    }

    #[test]
    fn kmalloc_draws_every_class_and_some_large_ones() {
        let plan = generate(Workload::Kmalloc, 1, 200_000, 0);
        assert!(plan.classes.is_empty());
        let sizes: Vec<u32> = plan
            .ops
            .iter()
            .filter_map(|op| match *op {
                Op::Alloc { class, size, .. } => {
                    assert_eq!(class, KMALLOC);
                    Some(size)
                }
                Op::Free { .. } => None,
            })
            .collect();
        let mut lower = 0;
        for (class, _) in KMALLOC_SIZES {
            assert!(sizes.iter().any(|&s| s > lower && s <= class), "no size in ({lower}, {class}]");
            lower = class;
        }
        let large = sizes.iter().filter(|&&s| s > LARGE_SIZES.0).count();
        assert!(large > 0 && large * 300 < sizes.len(), "{large} large of {}", sizes.len());
    }
}

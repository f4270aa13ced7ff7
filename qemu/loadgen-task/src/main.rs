//! The load generator's `churn` and `mixed` workloads as seL4 client tasks.
//!
//! Design: the workloads of the host load generator (same SplitMix64 stream,
//! same `mixed` size classes and weights, same rules: churn = alloc then free at
//! once, one size; mixed = a bounded pool of live objects of Linux-like sizes,
//! growing or freeing a random victim with equal odds), run through `memclient`
//! — `Cache` with Bonwick magazines in the control region, so most operations
//! are a pop or a push there and only an empty or full magazine pair costs a
//! `MagazineExchange` IPC. Every client with `image = "loadgen"` is a task of its
//! own (the first runs churn, the second mixed, and so on alternately), with its
//! own window: reserved and unmapped until the memserver maps frames into it as
//! its caches grow. Every object is stamped on allocation and checked on free, so
//! memory another client could reach would show up as a failure. The task prints
//! ops, the magazine hit rate and the generic timer's ticks per operation, and
//! reports its failures to the root task. It runs in the background: it grows
//! its caches, says it is ready, measures beside the other tasks, then pauses
//! with its memory held (the frame census is taken then) before it tears down.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod ratios;

use alloc::vec::Vec;
use core::ptr::NonNull;

use memclient::{Cache, Memserver};
use memserver_sel4_abi::root::{LABEL_PAUSE, LABEL_READY};
use memserver_sel4_abi::{ClientBoot, ClientSession};
use memserver_task_client::{Sel4Transport, counter};

memserver_task_client::client_task!(task_main, stack = 256 * 1024);

/// Operations per workload.
const CHURN_OPS: usize = 400_000;
const MIXED_OPS: usize = 200_000;
/// `churn` object size (the host load generator's `--size` default).
const CHURN_SIZE: u32 = 64;
/// Seed (the host load generator's `--seed` default).
const SEED: u64 = 1;
/// Upper bound of the live pool in `mixed`.
const MIXED_POOL: usize = 1024;
/// The `mixed` size classes and their weights in percent.
const MIXED_CLASSES: [(u32, u32); 11] =
    [(8, 10), (16, 12), (32, 14), (64, 18), (96, 6), (128, 10), (192, 8), (256, 8), (512, 7), (1024, 5), (2048, 2)];

fn task_main(boot: ClientBoot, root: sel4::cap::Endpoint) -> ! {
    let workload = if boot.instance % 2 == 0 { Workload::Churn } else { Workload::Mixed };
    let failures = match run(&boot.session, workload, root) {
        Ok(()) => 0,
        Err(why) => {
            sel4::debug_println!("loadgen: {}: FAILED: {why}", boot.session.name);
            1
        }
    };
    sel4::debug_println!("loadgen: {}: done, {failures} failure(s)", boot.session.name);
    memserver_task_client::report(root, failures)
}

/// One workload: open the session, grow the caches to the workload's high water (the only
/// time this task takes frames from the shared pool until it tears down), tell the root
/// task it is ready, run and measure, pause with the memory held until the root task's go,
/// tear down.
fn run(session: &ClientSession, workload: Workload, root: sel4::cap::Endpoint) -> Result<(), &'static str> {
    let server = memserver_task_client::open(session)?;
    let result = match workload {
        Workload::Churn => {
            let churn = Churn::prepare(&server)?;
            memserver_task_client::rendezvous(root, LABEL_READY);
            let result = measure(workload, &server, || churn.run());
            memserver_task_client::rendezvous(root, LABEL_PAUSE);
            // The other tasks are done or paused by now: the figures see a quiet system.
            ratios::print(&server)?;
            churn.cache.destroy().map_err(|_| "destroy")?;
            result
        }
        Workload::Mixed => {
            let mut mixed = Mixed::prepare(&server)?;
            memserver_task_client::rendezvous(root, LABEL_READY);
            let result = measure(workload, &server, || mixed.run());
            memserver_task_client::rendezvous(root, LABEL_PAUSE);
            mixed.teardown()?;
            result
        }
    };
    result?;
    close(&server)
}

/// Checks that nothing is left live, then Goodbye.
fn close(server: &Memserver<Sel4Transport>) -> Result<(), &'static str> {
    let stats = server.stats().map_err(|_| "stats")?;
    if stats.live_objects != 0 {
        sel4::debug_println!("loadgen: client {}: {} live objects left", server.client_id(), stats.live_objects);
        return Err("objects left live");
    }
    server.goodbye().map_err(|_| "goodbye")
}

#[derive(Clone, Copy)]
enum Workload {
    Churn,
    Mixed,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Churn => "churn",
            Workload::Mixed => "mixed",
        }
    }
}

/// Measures `f` and prints the figures.
fn measure<T: memclient::Transport>(
    workload: Workload,
    server: &Memserver<T>,
    f: impl FnOnce() -> Result<usize, &'static str>,
) -> Result<(), &'static str> {
    let before = server.counters();
    let start = counter();
    let ops = f()?;
    let end = counter();
    let after = server.counters();
    let hits = (after.alloc_hits - before.alloc_hits) + (after.free_hits - before.free_hits);
    let misses = after.misses - before.misses;
    let calls = after.calls - before.calls;
    let rate = if hits + misses == 0 { 0.0 } else { hits as f64 * 100.0 / (hits + misses) as f64 };
    let ops_u64 = ops.max(1) as u64;
    match (start, end) {
        (Some((t0, freq)), Some((t1, _))) => {
            let ticks = t1.wrapping_sub(t0);
            let ns = ticks as f64 * 1e9 / freq.max(1) as f64;
            sel4::debug_println!(
                "loadgen: {:<5} client {}: {ops} ops, magazine hit rate {rate:.2}% ({hits} hits, {misses} misses, {calls} IPCs), \
                 {:.1} CNTVCT ticks/op at {} MHz ({:.0} ns/op, {:.2} Mops/s)",
                workload.name(),
                server.client_id(),
                ticks as f64 / ops_u64 as f64,
                freq / 1_000_000,
                ns / ops_u64 as f64,
                ops_u64 as f64 * 1e3 / ns.max(1.0),
            );
        }
        _ => sel4::debug_println!(
            "loadgen: {:<5} client {}: {ops} ops, magazine hit rate {rate:.2}% ({hits} hits, {misses} misses, {calls} IPCs) \
             (no cycle counter: the kernel does not export CNTVCT_EL0)",
            workload.name(),
            server.client_id(),
        ),
    }
    Ok(())
}

/// The stamp written into the first word of an object: who and which slot.
fn stamp(client: u16, slot: usize, size: u32) -> u64 {
    (u64::from(client) << 48) ^ ((slot as u64) << 16) ^ u64::from(size) ^ 0x5a5a_0000_0000_0000
}

fn write_stamp(ptr: NonNull<u8>, value: u64) {
    // SAFETY: `ptr` is an object of at least 8 bytes, 8-byte aligned, in this
    // client's window, held by this task between alloc and free.
    unsafe { ptr.cast::<u64>().as_ptr().write_volatile(value) }
}

fn read_stamp(ptr: NonNull<u8>) -> u64 {
    // SAFETY: as in `write_stamp`.
    unsafe { ptr.cast::<u64>().as_ptr().read_volatile() }
}

/// Objects a cache is grown to before measuring: the most a workload holds
/// live, plus what can sit in the client's two magazines and the server's depot.
const MAGAZINE_SLACK: usize = 4 * protocol::control::MAGAZINE_MAX;

/// Allocates `count` objects of `cache`, then frees them all: the cache then
/// has that many objects without growing again.
fn grow<T: memclient::Transport>(cache: &Cache<'_, T>, count: usize) -> Result<(), &'static str> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(cache.alloc().map_err(|_| "alloc (grow)")?);
    }
    for object in held {
        cache.free(object).map_err(|_| "free (grow)")?;
    }
    Ok(())
}

/// Alloc then free at once, one size.
struct Churn<'m, T: memclient::Transport> {
    cache: Cache<'m, T>,
    client: u16,
}

impl<'m, T: memclient::Transport> Churn<'m, T> {
    fn prepare(server: &'m Memserver<T>) -> Result<Self, &'static str> {
        let cache = Cache::create(server, "loadgen-churn", CHURN_SIZE, 0, 0, None).map_err(|_| "create")?;
        grow(&cache, 1 + MAGAZINE_SLACK)?;
        Ok(Churn { cache, client: server.client_id() })
    }

    fn run(&self) -> Result<usize, &'static str> {
        let mut ops = 0;
        while ops + 2 <= CHURN_OPS {
            let object = self.cache.alloc().map_err(|_| "alloc")?;
            write_stamp(object, stamp(self.client, 0, CHURN_SIZE));
            if read_stamp(object) != stamp(self.client, 0, CHURN_SIZE) {
                return Err("object memory changed under the client");
            }
            self.cache.free(object).map_err(|_| "free")?;
            ops += 2;
        }
        Ok(ops)
    }
}

/// SplitMix64, as the host load generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// A size from the `mixed` distribution: its class and an exact size in it.
fn mixed_size(rng: &mut Rng) -> (usize, u32) {
    let mut pick = rng.below(100) as u32;
    let mut lower = 0;
    for (i, &(size, weight)) in MIXED_CLASSES.iter().enumerate() {
        if pick < weight {
            return (i, lower + 1 + rng.below(u64::from(size - lower)) as u32);
        }
        pick -= weight;
        lower = size;
    }
    (0, 8)
}

/// (object, class, size, slot) of a live object of `mixed`.
type LiveObject = (NonNull<u8>, usize, u32, usize);

/// A bounded pool of live objects over the kmalloc-like classes (one cache each).
struct Mixed<'m, T: memclient::Transport> {
    caches: Vec<Cache<'m, T>>,
    client: u16,
    /// The live objects, room for [`MIXED_POOL`] made before the task says it is ready: between
    /// ready and pause the task's heap (its heap client) takes and gives back no frame, so the
    /// tasks running meanwhile see the pool move only by their own doing.
    live: Vec<LiveObject>,
}

impl<'m, T: memclient::Transport> Mixed<'m, T> {
    fn prepare(server: &'m Memserver<T>) -> Result<Self, &'static str> {
        let mut caches = Vec::new();
        for &(size, _) in &MIXED_CLASSES {
            let mut name = heapless::String::<31>::new();
            core::fmt::write(&mut name, format_args!("loadgen-mixed-{size}")).map_err(|_| "name")?;
            let cache = Cache::create(server, &name, size, 0, 0, None).map_err(|_| "create")?;
            grow(&cache, MIXED_POOL + MAGAZINE_SLACK)?;
            caches.push(cache);
        }
        Ok(Mixed { caches, client: server.client_id(), live: Vec::with_capacity(MIXED_POOL) })
    }

    fn free(&self, (object, class, size, slot): LiveObject) -> Result<(), &'static str> {
        if read_stamp(object) != stamp(self.client, slot, size) {
            return Err("object memory changed under the client");
        }
        self.caches[class].free(object).map_err(|_| "free")
    }

    fn run(&mut self) -> Result<usize, &'static str> {
        // The vector is put back whatever happens: dropping it here would free heap memory.
        let mut live = core::mem::take(&mut self.live);
        let result = self.run_with(&mut live);
        self.live = live;
        result
    }

    /// The workload, with `live` (empty, room for MIXED_POOL entries, never more: it never
    /// grows, so no heap allocation) for the live objects.
    fn run_with(&self, live: &mut Vec<LiveObject>) -> Result<usize, &'static str> {
        let mut rng = Rng(SEED);
        live.clear();
        let mut next_slot = 0usize;
        let mut ops = 0;
        while ops < MIXED_OPS {
            let grow = live.is_empty() || (live.len() < MIXED_POOL && rng.below(2) == 0);
            if grow {
                let (class, size) = mixed_size(&mut rng);
                let object = self.caches[class].alloc().map_err(|_| "alloc")?;
                write_stamp(object, stamp(self.client, next_slot, size));
                live.push((object, class, size, next_slot));
                next_slot += 1;
            } else {
                let victim = rng.below(live.len() as u64) as usize;
                self.free(live.swap_remove(victim))?;
            }
            ops += 1;
        }
        while let Some(entry) = live.pop() {
            self.free(entry)?;
            ops += 1;
        }
        Ok(ops)
    }

    fn teardown(self) -> Result<(), &'static str> {
        let mut failed = false;
        for cache in self.caches {
            failed |= cache.destroy().is_err();
        }
        if failed { Err("destroy") } else { Ok(()) }
    }
}

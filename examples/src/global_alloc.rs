//! A real workload on the global allocator: a `BTreeMap` index of words, a `HashMap` cache of
//! strings, threads building buffers of every size class and whole pages, and over-aligned
//! values. Every result is checked against a computation that does not depend on the heap,
//! and the program ends with what the server counted for it (`Stats`).

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use memclient::host::GlobalKmalloc;

/// Entries of the maps.
const ENTRIES: u64 = 2_000;
/// Threads of the buffer phase.
const THREADS: usize = 4;

/// A value aligned above kmalloc's 8 bytes.
#[repr(C, align(64))]
struct CacheLine([u64; 8]);

/// A value aligned to a page.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The word of `i` (a different length for different `i`).
fn word(i: u64) -> String {
    format!("w{}-{}", i * 7919 % 10_007, "x".repeat((i % 13) as usize))
}

/// `BTreeMap<String, Vec<u64>>`: insert, remove every third key, sum what is left.
fn btree_phase() -> Result<(usize, u64), String> {
    let mut index: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..ENTRIES {
        index.entry(word(i)).or_default().push(i);
    }
    for i in (0..ENTRIES).step_by(3) {
        index.remove(&word(i));
    }
    let sum: u64 = index.values().flatten().sum();
    let expected: u64 = (0..ENTRIES).filter(|i| i % 3 != 0).sum();
    if sum != expected || index.len() as u64 != ENTRIES - ENTRIES.div_ceil(3) {
        return Err(format!("btree: sum {sum} (expected {expected}), {} keys", index.len()));
    }
    Ok((index.len(), sum))
}

/// `HashMap<u64, String>`: fill, look every key up, overwrite half, check.
fn hashmap_phase() -> Result<(usize, usize), String> {
    let mut cache: HashMap<u64, String> = HashMap::new();
    for i in 0..ENTRIES {
        cache.insert(i, word(i));
    }
    for i in (0..ENTRIES).step_by(2) {
        cache.insert(i, word(i + 1));
    }
    let bytes: usize = cache.values().map(String::len).sum();
    let expected: usize = (0..ENTRIES).map(|i| word(if i % 2 == 0 { i + 1 } else { i }).len()).sum();
    if bytes != expected || cache.len() as u64 != ENTRIES {
        return Err(format!("hashmap: {bytes} bytes (expected {expected}), {} keys", cache.len()));
    }
    Ok((cache.len(), bytes))
}

/// Threads each fill buffers of sizes across every kmalloc class and beyond (whole pages),
/// check their contents, and free them.
fn buffers_phase() -> Result<usize, String> {
    let sizes = [1usize, 8, 24, 54, 96, 150, 256, 700, 1024, 3000, 4096, 8192, 12_000, 70_000];
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let buffers: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![(t + n) as u8; n]).collect();
                buffers.iter().zip(sizes).all(|(b, n)| b.len() == n && b.iter().all(|&x| x == (t + n) as u8))
            })
        })
        .collect();
    let ok = workers.into_iter().map(|w| w.join().unwrap_or(false)).filter(|&ok| ok).count();
    if ok != THREADS {
        return Err(format!("buffers: {ok} of {THREADS} threads saw their data"));
    }
    Ok(THREADS * sizes.len())
}

/// Over-aligned values: their addresses must honour `align_of`.
fn alignment_phase() -> Result<(), String> {
    let lines: Vec<Box<CacheLine>> = (0..64).map(|i| Box::new(CacheLine([i; 8]))).collect();
    let page = Box::new(Page([7; 4096]));
    for line in &lines {
        if !(&raw const **line).addr().is_multiple_of(64) {
            return Err(format!("a 64-byte aligned value at {:p}", &**line));
        }
    }
    if !(&raw const *page).addr().is_multiple_of(4096) || page.0.iter().any(|&b| b != 7) {
        return Err(format!("a page-aligned value at {:p}", &*page));
    }
    if lines.iter().enumerate().any(|(i, l)| l.0 != [i as u64; 8]) {
        return Err("64-byte aligned values lost their contents".into());
    }
    Ok(())
}

/// Runs every phase and prints the results and the server's counters for this client.
pub fn main(allocator: &GlobalKmalloc) -> ExitCode {
    let phases = || -> Result<(), String> {
        let (keys, sum) = btree_phase()?;
        println!("global-alloc: btree keys={keys} sum={sum} ok");
        let (keys, bytes) = hashmap_phase()?;
        println!("global-alloc: hashmap keys={keys} bytes={bytes} ok");
        let buffers = buffers_phase()?;
        println!("global-alloc: threads={THREADS} buffers={buffers} ok");
        alignment_phase()?;
        println!("global-alloc: alignment ok");
        Ok(())
    };
    if let Err(e) = phases() {
        eprintln!("global-alloc: FAILED: {e}");
        return ExitCode::FAILURE;
    }
    let counters = allocator.counters();
    let session = allocator.session().map_err(|e| e.to_string());
    match session.and_then(|s| s.stats().map(|stats| (stats, s.counters())).map_err(|e| e.to_string())) {
        // kmalloc_calls: every kmalloc and kfree (most of them served by a magazine: hit rate);
        // held: objects allocated to the client outside its magazines (not yet freed).
        Ok((stats, library)) => println!(
            "global-alloc: memserver kmalloc_calls={} kmalloc_hit_rate={:.4} held={} requests={} pages={} bootstrap_allocations={} failed_frees={}",
            library.kmalloc_hits + library.kmalloc_misses,
            library.kmalloc_hit_rate(),
            stats.live_objects - stats.magazine_objects,
            stats.requests,
            stats.client_pages,
            counters.bootstrap_allocations,
            counters.failed_frees
        ),
        Err(e) => println!(
            "global-alloc: no memserver ({e}): system allocator, bootstrap_allocations={}",
            counters.bootstrap_allocations
        ),
    }
    ExitCode::SUCCESS
}

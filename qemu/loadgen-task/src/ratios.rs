//! Cost ratios from one boot (TCG makes absolute times meaningless; ratios measured in the
//! same task and boot hold): a null `seL4_Call` to the memserver, an `Alloc` round trip, a
//! magazine alloc+free pair and a plain array pop/push pair.
//!
//! Each figure is the median over batches of operations, each batch timed with the generic
//! timer: a batch a preemption (another task's timeslice) hits lands in the tail, not in the
//! median.

use alloc::vec::Vec;
use core::hint::black_box;

use memclient::{Cache, Memserver};
use memserver_sel4_abi::start::SLOT_MEMSERVER;
use memserver_sel4_client::Link;
use memserver_task_client::{EndpointLink, Sel4Transport, counter};
use protocol::MAX_MESSAGE_WORDS;
use protocol::framing::MessageWords;

const BATCHES: usize = 101;
const BATCH: usize = 64;

/// Median ticks per operation of `batch`, run `BATCHES` times (each run does `BATCH` operations).
fn median(mut batch: impl FnMut() -> Result<u64, &'static str>) -> Result<f64, &'static str> {
    let mut ticks = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        ticks.push(batch()?);
    }
    ticks.sort_unstable();
    Ok(ticks[BATCHES / 2] as f64 / BATCH as f64)
}

/// Ticks `f` takes.
fn timed(f: impl FnOnce() -> Result<(), &'static str>) -> Result<u64, &'static str> {
    let (start, _) = counter().ok_or("no counter")?;
    f()?;
    let (end, _) = counter().ok_or("no counter")?;
    Ok(end.wrapping_sub(start))
}

/// Measures and prints the four figures and their ratios.
pub fn print(server: &Memserver<Sel4Transport>) -> Result<(), &'static str> {
    if counter().is_none() {
        sel4::debug_println!("ratios: no cycle counter (the kernel does not export CNTVCT_EL0)");
        return Ok(());
    }
    // A null call: an empty message, answered at the memserver's door (Malformed).
    let mut link = EndpointLink::at(SLOT_MEMSERVER);
    let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
    let null = median(|| {
        timed(|| {
            for _ in 0..BATCH {
                black_box(link.call(0, &[], &mut reply));
            }
            Ok(())
        })
    })?;
    // An Alloc round trip: a cache without magazines, every alloc an IPC (frees untimed).
    let ipc = Cache::create_without_magazines(server, "ratios-ipc", 64, 0, 0, None).map_err(|_| "create")?;
    let mut held = Vec::with_capacity(BATCH);
    let alloc = median(|| {
        let ticks = timed(|| {
            for _ in 0..BATCH {
                held.push(ipc.alloc().map_err(|_| "alloc")?);
            }
            Ok(())
        })?;
        for object in held.drain(..) {
            ipc.free(object).map_err(|_| "free")?;
        }
        Ok(ticks)
    })?;
    // A magazine alloc+free pair (the fast path: a pop and a push in the control region).
    let magazines = Cache::create(server, "ratios-magazine", 64, 0, 0, None).map_err(|_| "create")?;
    let warm = magazines.alloc().map_err(|_| "alloc")?;
    magazines.free(warm).map_err(|_| "free")?;
    let pair = median(|| {
        timed(|| {
            for _ in 0..BATCH {
                let object = magazines.alloc().map_err(|_| "alloc")?;
                black_box(object);
                magazines.free(object).map_err(|_| "free")?;
            }
            Ok(())
        })
    })?;
    // A plain array pop/push pair: a magazine's floor.
    let mut stack: Vec<u64> = (0..64).collect();
    let array = median(|| {
        timed(|| {
            for _ in 0..BATCH {
                let handle = stack.pop().ok_or("empty")?;
                stack.push(black_box(handle));
            }
            Ok(())
        })
    })?;
    ipc.destroy().map_err(|_| "destroy")?;
    magazines.destroy().map_err(|_| "destroy")?;
    sel4::debug_println!(
        "ratios: CNTVCT ticks per op (median of {BATCHES} batches of {BATCH}): null seL4_Call {null:.1}, Alloc round \
         trip {alloc:.1}, magazine alloc+free {pair:.2}, array pop+push {array:.2}"
    );
    sel4::debug_println!(
        "ratios: Alloc / null call {:.2}, null call / magazine pair {:.1}, magazine pair / array pair {:.1}",
        alloc / null.max(f64::MIN_POSITIVE),
        null / pair.max(f64::MIN_POSITIVE),
        pair / array.max(f64::MIN_POSITIVE)
    );
    Ok(())
}

//! A client task that uses memory after shrinking it away, on purpose.
//!
//! Design: on seL4 a window page the engine takes back is unmapped from the client (and its
//! frame zeroed before anyone else gets it), so touching it is a VM fault, not a read of
//! stale or someone else's data. This task proves it: it fills slabs of one cache (the
//! victim), grows a second cache and a large kmalloc (what it still holds), frees every
//! victim object and shrinks the victim cache, so the victim's pages go back to the pool.
//! It tells the root task which window offset it will touch and how many frames it holds
//! (`ExpectFault`), then reads the first victim object. The root task must report the VM
//! fault at exactly that offset, stop the task and have the memserver reclaim it, getting
//! back every frame the task held. If the read does not fault, the task reports a failure.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::vec::Vec;
use core::ptr::NonNull;

use memclient::{Cache, Memserver};
use memserver_sel4_abi::{ClientBoot, ClientSession};
use memserver_task_client::Sel4Transport;

memserver_task_client::client_task!(task_main, stack = 64 * 1024);

/// Victim objects: 512 bytes, 8 to a page, 64 of them: 8 pages.
const VICTIM_SIZE: u32 = 512;
const VICTIMS: usize = 64;
/// Objects it keeps: 1 KiB each.
const KEPT_SIZE: u32 = 1024;
const KEPT: usize = 20;
/// A large kmalloc it keeps: 3 pages.
const LARGE: usize = 3 * 4096;

fn task_main(boot: ClientBoot, root: sel4::cap::Endpoint) -> ! {
    let name = boot.session.name.clone();
    match prepare(&boot.session) {
        Ok((server, victim, frames)) => {
            let offset = victim.as_ptr() as u64 - boot.session.window.addr;
            // Its heap (the Vec of victims above came from its heap client) is checked now: the
            // task does not report when all goes well, it faults.
            if memserver_task_client::heap::summary(&name) != 0 {
                memserver_task_client::report(root, 0)
            }
            sel4::debug_println!(
                "{name}: victim cache shrunk; holding {frames} frame(s); touching window+{offset:#x}, which it no longer has"
            );
            memserver_task_client::expect_fault(root, offset, frames);
            // SAFETY: deliberately not sound: the page behind `victim` was unmapped by the
            // memserver (that is the point). The read faults, and the root task stops this task
            // before the read completes; `read_volatile` keeps the compiler from eliding it.
            let value = unsafe { victim.as_ptr().read_volatile() };
            sel4::debug_println!("{name}: FAILED: the touch after shrink read {value:#x} instead of faulting");
            drop(server);
            memserver_task_client::report(root, 1)
        }
        Err(why) => {
            sel4::debug_println!("{name}: FAILED: {why}");
            memserver_task_client::report(root, 1)
        }
    }
}

/// Fills and shrinks away the victim cache, keeping other memory; returns the session, the
/// first victim object and the frames still held.
fn prepare(session: &ClientSession) -> Result<(Memserver<Sel4Transport>, NonNull<u8>, u32), &'static str> {
    let server = memserver_task_client::open(session)?;
    let (victim, frames) = {
        let victims = Cache::create(&server, "victim", VICTIM_SIZE, 0, 0, None).map_err(|_| "create victim")?;
        let kept = Cache::create(&server, "kept", KEPT_SIZE, 0, 0, None).map_err(|_| "create kept")?;
        let mut objects = Vec::new();
        for i in 0..VICTIMS {
            let object = victims.alloc().map_err(|_| "alloc victim")?;
            // SAFETY: a victim object of 512 bytes this task holds, in a mapped window page.
            unsafe { object.as_ptr().write_bytes(i as u8, VICTIM_SIZE as usize) };
            objects.push(object);
        }
        // What it keeps is allocated after the victims, so no page of it reuses a victim page.
        for _ in 0..KEPT {
            let object = kept.alloc().map_err(|_| "alloc kept")?;
            // SAFETY: a kept object of 1 KiB this task holds, in a mapped window page.
            unsafe { object.as_ptr().write_bytes(0x4b, KEPT_SIZE as usize) };
        }
        let large = server.kmalloc(LARGE).map_err(|_| "kmalloc")?;
        // SAFETY: a large kmalloc object of LARGE bytes this task holds.
        unsafe { large.as_ptr().write_bytes(0x4c, LARGE) };
        let victim = *objects.first().ok_or("no victim")?;
        for object in objects {
            victims.free(object).map_err(|_| "free victim")?;
        }
        let pages = victims.shrink().map_err(|_| "shrink")?;
        if pages == 0 {
            return Err("shrink released no page");
        }
        if server.cache_info(victims.id()).map_err(|_| "cache info")?.num_slabs != 0 {
            return Err("victim slabs left after shrink");
        }
        let stats = server.stats().map_err(|_| "stats")?;
        // The caches are leaked on purpose: the task dies with them; the memserver reclaims.
        core::mem::forget(kept);
        core::mem::forget(victims);
        (victim, stats.client_pages)
    };
    Ok((server, victim, frames))
}

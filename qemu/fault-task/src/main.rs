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

use memclient::{Cache, Control, Memserver, Window};
use memserver_sel4_abi::ClientSession;
use memserver_sel4_abi::start::SLOT_MEMSERVER;
use memserver_task_client::{EndpointLink, Sel4Transport};
use protocol::Reply;

// The panic handler (prints the panic through seL4's debug console, then aborts).
use sel4_panicking as _;

const STACK_SIZE: usize = 64 * 1024;

sel4_runtime_common::declare_stack!(STACK_SIZE);
sel4_runtime_common::declare_entrypoint_with_stack_init!();
sel4_runtime_common::declare_rust_entrypoint! {
    task_main(
        ipc_buffer: *mut sel4::IpcBuffer,
        own_tcb: sel4::CPtrBits,
        report_endpoint: sel4::CPtrBits,
        boot_info: usize,
        boot_info_len: usize,
    )
}
sel4_panicking_env::register_debug_put_char!(sel4::debug_put_char);

/// Victim objects: 512 bytes, 8 to a page, 64 of them: 8 pages.
const VICTIM_SIZE: u32 = 512;
const VICTIMS: usize = 64;
/// Objects it keeps: 1 KiB each.
const KEPT_SIZE: u32 = 1024;
const KEPT: usize = 20;
/// A large kmalloc it keeps: 3 pages.
const LARGE: u32 = 3 * 4096;

fn task_main(
    ipc_buffer: *mut sel4::IpcBuffer,
    _own_tcb: sel4::CPtrBits,
    report_endpoint: sel4::CPtrBits,
    boot_info: usize,
    boot_info_len: usize,
) -> ! {
    // SAFETY: the root task mapped one fresh page at this address as this
    // thread's IPC buffer (x0 of the start registers); nothing else refers to it.
    sel4::set_ipc_buffer(unsafe { &mut *ipc_buffer });
    let root = sel4::cap::Endpoint::from_bits(report_endpoint);
    // SAFETY: x3/x4 are the boot-info pages the root task mapped read-only.
    let Some(boot) = (unsafe { memserver_task_client::boot_info(boot_info, boot_info_len) }) else {
        sel4::debug_println!("fault: unreadable boot info");
        memserver_task_client::report(root, 1)
    };
    let name = boot.session.name.clone();
    match prepare(&boot.session) {
        Ok((server, victim, frames)) => {
            let offset = victim.as_ptr() as u64 - boot.session.window.addr;
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
    let server = open(session)?;
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
        unsafe { large.as_ptr().write_bytes(0x4c, LARGE as usize) };
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

/// Hello, and the session over the reserved window and the mapped control region.
fn open(session: &ClientSession) -> Result<Memserver<Sel4Transport>, &'static str> {
    let mut link = EndpointLink::at(SLOT_MEMSERVER);
    let mut hello = [0u8; protocol::MAX_MESSAGE_BYTES];
    let len = memclient::hello_request(session.name.as_str(), &mut hello).map_err(|_| "bad client name")?;
    let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = memserver_sel4_client::call(&mut link, &hello[..len], &mut reply).map_err(|_| "hello: transport")?;
    let hello_reply = protocol::decode_reply(&reply[..n]).map_err(|_| "hello: bad reply")?;
    if !matches!(hello_reply, Reply::Hello { .. }) {
        return Err("hello refused");
    }
    let window_base = NonNull::new(session.window.addr as *mut u8).ok_or("no window")?;
    let control_base = NonNull::new(session.control.addr as *mut u8).ok_or("no control region")?;
    // SAFETY: the root task reserved this client's window in this task's VSpace (the
    // memserver maps frames into it as objects are granted) and mapped its control region
    // read-write, page aligned, for the task's life.
    let (window, control) = unsafe {
        (Window::new(window_base, session.window.len as usize), Control::new(control_base, session.control.len as usize))
    };
    Memserver::new(Sel4Transport(link), &hello_reply, window, control).map_err(|_| "session")
}

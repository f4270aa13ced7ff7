//! The memserver system's seL4 root task.
//!
//! Design: the root task is the only task the kernel starts, and it holds every
//! capability at boot. It boots the system `system.toml` describes (read at
//! build time, `build.rs`): the memserver task and one task per seL4 program
//! image (`image` key; clients naming the same image share a task), each a
//! separate process loaded from its own ELF image into its own VSpace and
//! CSpace (`task`), with kernel objects retyped from boot untyped memory
//! (`untyped`). Every seL4 client gets its window and control region as fresh
//! frames mapped into both its task and the memserver, a badged endpoint
//! capability (badge = client id) to the memserver's endpoint, and the memserver
//! gets a heap for its engine tables sized from the same description. Then the
//! root task coordinates the test: load tasks (the load generator) grow their
//! caches and call in ready; the conformance tasks start; a load task that is
//! done waits until the conformance tasks have reported before it frees its
//! memory (their pool accounting must not see another client's frames move).
//! When every client task has reported, it prints `TEST_PASS` or `TEST_FAIL`,
//! which `make qemu` waits for.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod task;
mod untyped;

use alloc::vec::Vec;

use memserver_task_abi::{
    ClientBoot, ClientSession, MAX_TASK_SESSIONS, SLOT_ENDPOINT, SLOT_SESSION_BASE, ServerBoot, ServerClient,
    TEST_PAUSE_LABEL, TEST_READY_LABEL, TEST_REPORT_LABEL,
};
use sel4_root_task::root_task;

use task::{Process, Scratch, allocate_memory};
use untyped::ObjectAllocator;

/// A client task entry of `system.toml` that runs on seL4.
pub struct ClientTask {
    pub id: u16,
    pub name: &'static str,
    pub quota_pages: u32,
    pub window_pages: u32,
    pub introspect: bool,
    /// Its `slub_debug` setting (`""`: none).
    pub slub_debug: &'static str,
    pub image: &'static str,
}

/// The bytes of a file, aligned as the ELF parser needs.
macro_rules! include_aligned {
    ($path:expr) => {{
        #[repr(C, align(8))]
        struct Aligned<T: ?Sized>(T);
        static ALIGNED: &Aligned<[u8]> = &Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}

/// What `build.rs` read from `system.toml`, and the task images.
mod system {
    use super::ClientTask;
    include!(concat!(env!("OUT_DIR"), "/system.rs"));
}

/// The image whose tasks wait until every other client task is ready.
const CONFORMANCE_IMAGE: &str = "conformance";

/// Why the root task could not build the system.
#[derive(Debug)]
pub enum BootError {
    /// A kernel invocation failed.
    Kernel(sel4::Error),
    /// A task image is not a valid ELF file.
    Elf(object::Error),
    /// A task image (or this one) has a layout the loader cannot handle.
    Layout,
    /// The kernel handed over no untyped memory.
    NoUntyped,
    /// The root CNode has no free slot left.
    OutOfSlots,
    /// The system description does not fit the seL4 build (too many clients, a name too long…).
    Description(&'static str),
}

impl From<sel4::Error> for BootError {
    fn from(err: sel4::Error) -> Self {
        Self::Kernel(err)
    }
}

impl From<object::Error> for BootError {
    fn from(err: object::Error) -> Self {
        Self::Elf(err)
    }
}

#[root_task(heap_size = 1024 * 1024)]
fn main(bootinfo: &sel4::BootInfoPtr) -> ! {
    sel4::debug_println!("root: booting the memserver system of system.toml");
    match run(bootinfo) {
        Ok(0) => sel4::debug_println!("TEST_PASS"),
        Ok(failures) => {
            sel4::debug_println!("root: client tasks reported {failures} failure(s)");
            sel4::debug_println!("TEST_FAIL");
        }
        Err(err) => {
            sel4::debug_println!("root: boot failed: {err:?}");
            sel4::debug_println!("TEST_FAIL");
        }
    }
    sel4::init_thread::suspend_self()
}

/// A client task the root task started.
struct Started {
    image: &'static str,
    process: Process,
    boot_info: memserver_task_abi::Region,
    /// Reported (failures).
    report: Option<u64>,
    ready: bool,
}

fn name<const N: usize>(text: &str) -> Result<heapless::String<N>, BootError> {
    heapless::String::try_from(text).map_err(|_| BootError::Description("a name is too long"))
}

/// The postcard encoding of a boot info.
fn encode<T: serde::Serialize>(value: &T, buf: &mut [u8]) -> Result<usize, BootError> {
    postcard::to_slice(value, buf).map(|b| b.len()).map_err(|_| BootError::Description("boot info too large"))
}

/// Boots the system, runs the test; returns the failures the client tasks reported.
fn run(bootinfo: &sel4::BootInfo) -> Result<u64, BootError> {
    let mut objects = ObjectAllocator::new(bootinfo)?;
    let mut scratch = Scratch::take(bootinfo)?;
    let server_endpoint = objects.allocate_fixed::<sel4::cap_type::Endpoint>()?;
    let report_endpoint = objects.allocate_fixed::<sel4::cap_type::Endpoint>()?;

    // The memserver task and every seL4 client's memory, mapped into it.
    let mut server = Process::load(&mut objects, &mut scratch, system::MEMSERVER_IMAGE)?;
    let mut server_boot = ServerBoot {
        pool_pages: system::POOL_PAGES,
        max_caches_per_client: system::MAX_CACHES_PER_CLIENT,
        magazine_slots: system::MAGAZINE_SLOTS,
        magazines: system::MAGAZINES,
        heap: memserver_task_abi::Region { addr: 0, len: 0 },
        clients: heapless::Vec::new(),
    };
    let caches = memserver_task_abi::engine_config(&server_boot).max_caches_per_client;
    let mut memory = Vec::new();
    for client in system::CLIENTS {
        // The slots, the cache table and a page-owner entry per window page (protocol v3).
        let control_bytes = protocol::control::control_region_size(system::MAGAZINE_SLOTS, caches, client.window_pages);
        let window_bytes = client.window_pages as usize * protocol::PAGE_SIZE;
        let window = allocate_memory(&mut objects, window_bytes)?;
        let control = allocate_memory(&mut objects, control_bytes)?;
        let server_client = ServerClient {
            id: client.id,
            name: name(client.name)?,
            quota_pages: client.quota_pages,
            window_pages: client.window_pages,
            introspect: client.introspect,
            slub_debug: heapless::String::try_from(client.slub_debug)
                .map_err(|_| BootError::Description("slub_debug too long"))?,
            window: server.map_memory(&mut objects, &window, sel4::CapRights::read_write())?,
            control: server.map_memory(&mut objects, &control, sel4::CapRights::read_write())?,
        };
        server_boot.clients.push(server_client).map_err(|_| BootError::Description("too many seL4 clients"))?;
        memory.push((window, control));
    }
    let heap_bytes = memserver_task_abi::server_heap_bytes(&server_boot)
        .ok_or(BootError::Description("engine tables overflow"))?
        .next_multiple_of(sel4::FrameObjectType::LargePage.bytes());
    let heap = allocate_memory(&mut objects, heap_bytes)?;
    server_boot.heap = server.map_memory(&mut objects, &heap, sel4::CapRights::read_write())?;
    let mut buf = [0u8; memserver_task_abi::BOOT_INFO_BYTES];
    let len = encode(&server_boot, &mut buf)?;
    let server_boot_info = server.boot_info(&mut objects, &mut scratch, &buf[..len])?;
    // The memserver receives on the endpoint; it never sends on it.
    server.copy_cap(SLOT_ENDPOINT, server_endpoint, sel4::CapRights::new(false, false, true, false), 0)?;
    server.start(server_boot_info)?;
    sel4::debug_println!(
        "root: started the memserver task: pool {} pages, {} seL4 client(s), heap {} KiB",
        system::POOL_PAGES,
        system::CLIENTS.len(),
        heap_bytes / 1024
    );

    // One task per image, one session per client of that image.
    let mut started: Vec<Started> = Vec::new();
    for &(image, elf) in system::IMAGES {
        let mut process = Process::load(&mut objects, &mut scratch, elf)?;
        let mut boot = ClientBoot { image: name(image)?, sessions: heapless::Vec::new() };
        for (client, (window, control)) in system::CLIENTS.iter().zip(&memory) {
            if client.image != image {
                continue;
            }
            let index = boot.sessions.len();
            if index >= MAX_TASK_SESSIONS {
                return Err(BootError::Description("too many clients share one image"));
            }
            let window: Vec<_> = window.iter().map(|f| f.copy(&mut objects)).collect::<Result<_, _>>()?;
            let control: Vec<_> = control.iter().map(|f| f.copy(&mut objects)).collect::<Result<_, _>>()?;
            let endpoint_slot = SLOT_SESSION_BASE + index as u64;
            // The client may call (send, grant-reply), never receive on the server's endpoint.
            process.copy_cap(
                endpoint_slot,
                server_endpoint,
                sel4::CapRights::new(true, false, false, true),
                client.id.into(),
            )?;
            let session = ClientSession {
                id: client.id,
                name: name(client.name)?,
                endpoint_slot,
                window: process.map_memory(&mut objects, &window, sel4::CapRights::read_write())?,
                control: process.map_memory(&mut objects, &control, sel4::CapRights::read_write())?,
            };
            boot.sessions.push(session).map_err(|_| BootError::Description("too many sessions"))?;
        }
        let badge = started.len() as sel4::Word + 1;
        process.copy_cap(SLOT_ENDPOINT, report_endpoint, sel4::CapRights::new(true, false, false, true), badge)?;
        let len = encode(&boot, &mut buf)?;
        let boot_info = process.boot_info(&mut objects, &mut scratch, &buf[..len])?;
        let names: Vec<&str> = boot.sessions.iter().map(|s| s.name.as_str()).collect();
        sel4::debug_println!("root: task {badge}: image {image:?}, clients {names:?}");
        started.push(Started { image, process, boot_info, report: None, ready: false });
    }

    if started.is_empty() {
        return Err(BootError::Description("system.toml gives no client an seL4 `image`: nothing to run"));
    }
    supervise(&mut objects, &mut started, report_endpoint)
}

/// Starts the client tasks (conformance tasks once every other task is ready),
/// answers their calls, and collects their reports.
fn supervise(
    objects: &mut ObjectAllocator,
    started: &mut [Started],
    report_endpoint: sel4::cap::Endpoint,
) -> Result<u64, BootError> {
    let gated = |t: &Started| t.image == CONFORMANCE_IMAGE;
    for task in started.iter().filter(|t| !gated(t)) {
        task.process.start(task.boot_info)?;
    }
    let mut gate_open = false;
    // Load tasks waiting to free their memory: their saved reply capabilities.
    let mut paused: Vec<sel4::cap::Endpoint> = Vec::new();
    loop {
        let all_ready = started.iter().filter(|t| !gated(t)).all(|t| t.ready || t.report.is_some());
        if all_ready && !gate_open {
            gate_open = true;
            for task in started.iter().filter(|t| gated(t)) {
                task.process.start(task.boot_info)?;
                sel4::debug_println!("root: started the {} task", task.image);
            }
        }
        let conformance_done = started.iter().filter(|t| gated(t)).all(|t| t.report.is_some());
        if conformance_done {
            for reply in paused.drain(..) {
                reply.send(sel4::MessageInfoBuilder::default().build());
            }
        }
        if started.iter().all(|t| t.report.is_some()) {
            return Ok(started.iter().filter_map(|t| t.report).sum());
        }

        let (info, badge) = report_endpoint.recv(());
        let Some(task) = usize::try_from(badge).ok().and_then(|b| b.checked_sub(1)).and_then(|i| started.get_mut(i))
        else {
            continue;
        };
        match info.label() {
            TEST_REPORT_LABEL => {
                let failures = sel4::with_ipc_buffer(|buf| buf.msg_regs()[0]);
                sel4::debug_println!("root: the {} task reported {failures} failure(s)", task.image);
                task.report = Some(failures);
            }
            TEST_READY_LABEL => {
                task.ready = true;
                // Answered once the gate is open: at the top of the loop it opens
                // (conformance tasks start) before anything else runs.
                let reply = save_caller(objects)?;
                let all_ready = started.iter().filter(|t| !gated(t)).all(|t| t.ready || t.report.is_some());
                if all_ready && !gate_open {
                    gate_open = true;
                    for task in started.iter().filter(|t| gated(t)) {
                        task.process.start(task.boot_info)?;
                        sel4::debug_println!("root: started the {} task", task.image);
                    }
                }
                reply.send(sel4::MessageInfoBuilder::default().build());
            }
            TEST_PAUSE_LABEL => paused.push(save_caller(objects)?),
            other => sel4::debug_println!("root: unexpected message label {other:#x} from task {badge}"),
        }
    }
}

/// Moves the reply capability of the call just received into a fresh slot.
fn save_caller(objects: &mut ObjectAllocator) -> Result<sel4::cap::Endpoint, BootError> {
    let slot = objects.slot()?;
    let cap: sel4::cap::Unspecified = sel4::init_thread::Slot::from_index(slot).cap();
    sel4::init_thread::slot::CNODE.cap().absolute_cptr(cap).save_caller()?;
    Ok(cap.cast())
}

//! The memserver system's seL4 root task: rust-sel4 glue around `memserver-sel4-root`.
//!
//! Design: the root task is the only task the kernel starts, and it holds every capability at
//! boot. What it builds is the boot plan of `memserver-sel4-root` (tested on the host), made
//! from `system.toml` at build time (`build.rs`): the memserver task with its CNode holding
//! the pool's frames (retyped straight into it from boot untyped memory), the paging reserve
//! as untyped objects, every client task's VSpace; and one task per seL4 client, each loaded
//! from its image (an image may be loaded several times) into its own VSpace and CSpace
//! (`task`), with its window reserved and unmapped, its control region mapped into it and the
//! memserver, a badged endpoint capability to the memserver (badge = client id), a fault
//! endpoint (the root task's, with a fault badge) and, for tasks of one image, the endpoints
//! of each other's agents. Then it supervises (`supervise`): the supervisor state machine of
//! `memserver-sel4-root` decides, this task performs. It prints `TEST_PASS` or `TEST_FAIL`,
//! which `make qemu` waits for.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod supervise;
mod task;
mod untyped;

use alloc::vec::Vec;

use memserver_sel4_abi::layout::Paging;
use memserver_sel4_abi::root::{fault_badge, report_badge};
use memserver_sel4_abi::start::{
    BOOT_INFO_BYTES, SLOT_AGENT, SLOT_ENDPOINT, SLOT_FAULT, SLOT_HEAP_MEMSERVER, SLOT_MEMSERVER, TASK_CNODE_SIZE_BITS,
};
use memserver_sel4_abi::{Region, SUPERVISOR_BADGE};
use memserver_sel4_root::{BootPlan, ClientTask, Description, HeapClient};
use sel4_root_task::root_task;

use task::{Process, Scratch, allocate_memory};
use untyped::ObjectAllocator;

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
    use super::{ClientTask, HeapClient};
    include!(concat!(env!("OUT_DIR"), "/system.rs"));
}

/// Most objects one `seL4_Untyped_Retype` makes (`CONFIG_RETYPE_FAN_OUT_LIMIT`).
const RETYPE_BATCH: usize = 256;

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
    /// The system description does not fit the seL4 build.
    Description(&'static str),
    /// The boot plan refused the description.
    Plan(memserver_sel4_root::PlanError),
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
            sel4::debug_println!("root: {failures} failure(s)");
            sel4::debug_println!("TEST_FAIL");
        }
        Err(err) => {
            sel4::debug_println!("root: boot failed: {err:?}");
            sel4::debug_println!("TEST_FAIL");
        }
    }
    sel4::init_thread::suspend_self()
}

/// The paging geometry of this kernel, as `memserver-sel4-abi` describes it.
fn kernel_paging() -> Paging {
    Paging {
        top_span_bits: sel4::vspace_levels::span_bits(1) as u8,
        index_bits: sel4::TranslationTableObjectType::PT.index_bits() as u8,
        levels: (sel4::vspace_levels::NUM_LEVELS - 1) as u8,
    }
}

/// The postcard encoding of a boot info.
fn encode<T: serde::Serialize>(value: &T, buf: &mut [u8]) -> Result<usize, BootError> {
    postcard::to_slice(value, buf).map(|b| b.len()).map_err(|_| BootError::Description("boot info too large"))
}

/// Maps a fresh control region for client `client` (an index into the memserver's boot
/// info, sized for it by the plan) into the task and into the memserver, and records the
/// memserver's address in the plan; returns the task's.
fn map_control(
    objects: &mut ObjectAllocator,
    process: &mut Process,
    server: &mut Process,
    plan: &mut BootPlan,
    client: usize,
) -> Result<Region, BootError> {
    let bytes = plan.control_bytes(client).ok_or(BootError::Description("plan"))?;
    let control = allocate_memory(objects, bytes)?;
    let control_copy: Vec<_> = control.iter().map(|f| f.copy(objects)).collect::<Result<_, _>>()?;
    let in_task = process.map_memory(objects, &control, sel4::CapRights::read_write())?;
    let in_server = server.map_memory(objects, &control_copy, sel4::CapRights::read_write())?;
    if let Some(c) = plan.server.clients.get_mut(client) {
        c.control = in_server;
    }
    Ok(in_task)
}

/// A client task built and not yet started.
pub struct Built {
    process: Process,
    boot_info: Region,
}

/// Boots the system, runs it; returns the failures.
fn run(bootinfo: &sel4::BootInfo) -> Result<u64, BootError> {
    let description = Description {
        pool_pages: system::POOL_PAGES,
        max_caches_per_client: system::MAX_CACHES_PER_CLIENT,
        magazine_slots: system::MAGAZINE_SLOTS,
        magazines: system::MAGAZINES,
        clients: system::CLIENTS,
    };
    let mut plan = BootPlan::new(&description, kernel_paging()).map_err(BootError::Plan)?;
    let windows = plan.windows_pages();
    sel4::debug_println!(
        "root: pool {} pages = {} frames + {} pages of paging reserve; {} client task(s) with windows of {windows} pages in all ({}.{}x the pool)",
        system::POOL_PAGES,
        plan.server.pool_frames,
        plan.paging_reserve_pages(),
        plan.tasks.len(),
        windows / u64::from(system::POOL_PAGES),
        windows * 10 / u64::from(system::POOL_PAGES) % 10,
    );

    let mut objects = ObjectAllocator::new(bootinfo)?;
    let mut scratch = Scratch::take(bootinfo)?;
    let server_endpoint = objects.allocate_fixed::<sel4::cap_type::Endpoint>()?;
    let report_endpoint = objects.allocate_fixed::<sel4::cap_type::Endpoint>()?;
    let mut server =
        Process::load(&mut objects, &mut scratch, system::MEMSERVER_IMAGE, plan.server.cnode_size_bits, 0)?;
    let send = sel4::CapRights::new(true, false, false, true);
    let receive = sel4::CapRights::new(false, false, true, false);

    // The agents' endpoints: one per task whose image has other tasks.
    let mut agents = Vec::new();
    for t in &plan.tasks {
        agents.push(if t.has_agent { Some(objects.allocate_fixed::<sel4::cap_type::Endpoint>()?) } else { None });
    }

    let mut buf = [0u8; BOOT_INFO_BYTES];
    let mut built = Vec::new();
    for (n, t) in plan.tasks.clone().iter().enumerate() {
        let client = plan.server.clients.get(t.client).ok_or(BootError::Description("plan"))?.clone();
        let &(_, elf) = system::IMAGES
            .iter()
            .find(|(image, _)| *image == t.image.as_str())
            .ok_or(BootError::Description("no task image for an seL4 client"))?;
        let mut process = Process::load(&mut objects, &mut scratch, elf, TASK_CNODE_SIZE_BITS, SLOT_FAULT)?;
        // The control region: fresh frames mapped into the task and into the memserver
        // (magazine slots, cache table, page-owner table of its window).
        let control_in_task = map_control(&mut objects, &mut process, &mut server, &mut plan, t.client)?;
        // Its heap client, if it has one: a control region too, a badged endpoint capability
        // (badge = the heap client's id), and the task's VSpace in the memserver's slot for
        // that client (its window is in the task's VSpace).
        let heap_control_in_task = match t.heap {
            Some(h) => {
                let heap = plan.server.clients.get(h).ok_or(BootError::Description("plan"))?;
                let heap_id = heap.id;
                process.copy_cap(SLOT_HEAP_MEMSERVER, server_endpoint, send.clone(), heap_id.into())?;
                server.copy_cap(
                    plan.server.slots.client_vspaces + h as u64,
                    process.vspace,
                    sel4::CapRights::all(),
                    0,
                )?;
                Some(map_control(&mut objects, &mut process, &mut server, &mut plan, h)?)
            }
            None => None,
        };
        // Its CSpace: report and fault endpoints (the root task's, badged), the memserver
        // (badge = client id: call only), its agent endpoint and its peers'.
        process.copy_cap(SLOT_ENDPOINT, report_endpoint, send.clone(), report_badge(n))?;
        process.copy_cap(SLOT_FAULT, report_endpoint, sel4::CapRights::new(true, true, false, true), fault_badge(n))?;
        process.copy_cap(SLOT_MEMSERVER, server_endpoint, send.clone(), client.id.into())?;
        if let Some(Some(endpoint)) = agents.get(n) {
            process.copy_cap(SLOT_AGENT, *endpoint, receive.clone(), 0)?;
        }
        for (k, &p) in t.peers.iter().enumerate() {
            let Some(Some(endpoint)) = agents.get(p) else { return Err(BootError::Description("peer without agent")) };
            process.copy_cap(BootPlan::peer_slot(k), *endpoint, send.clone(), 0)?;
        }
        // The memserver maps frames into the task's VSpace.
        server.copy_cap(
            plan.server.slots.client_vspaces + t.client as u64,
            process.vspace,
            sel4::CapRights::all(),
            0,
        )?;
        let boot = plan
            .client_boot(n, control_in_task, heap_control_in_task)
            .ok_or(BootError::Description("client boot info"))?;
        let len = encode(&boot, &mut buf)?;
        let boot_info = process.boot_info(&mut objects, &mut scratch, &buf[..len])?;
        built.push(Built { process, boot_info });
    }

    // The memserver's CSpace: its endpoint (receive only), its own VSpace and CNode, the
    // paging reserve, the pool.
    let slots = plan.server.slots;
    server.copy_cap(SLOT_ENDPOINT, server_endpoint, receive, 0)?;
    server.copy_cap(slots.own_vspace, server.vspace, sel4::CapRights::all(), 0)?;
    server.give_own_cnode(slots.own_cnode)?;
    for (i, &bits) in plan.server.paging_untyped_bits.iter().enumerate() {
        let blueprint = sel4::ObjectBlueprint::Untyped { size_bits: usize::from(bits) };
        objects.retype_into(blueprint, server.cnode, slots.paging_untyped as usize + i, 1)?;
    }
    let frames = plan.server.pool_frames as usize;
    let mut done = 0;
    while done < frames {
        let count = (frames - done).min(RETYPE_BATCH);
        let blueprint = <sel4::cap_type::SmallPage as sel4::CapTypeForObjectOfFixedSize>::object_blueprint();
        objects.retype_into(blueprint, server.cnode, slots.pool as usize + done, count)?;
        done += count;
    }
    let heap_bytes = plan
        .server_heap_bytes()
        .ok_or(BootError::Description("memserver tables overflow"))?
        .next_multiple_of(sel4::FrameObjectType::LargePage.bytes());
    let heap = allocate_memory(&mut objects, heap_bytes)?;
    plan.server.heap = server.map_memory(&mut objects, &heap, sel4::CapRights::read_write())?;
    let len = encode(&plan.server, &mut buf)?;
    let server_boot_info = server.boot_info(&mut objects, &mut scratch, &buf[..len])?;
    server.start(server_boot_info)?;
    sel4::debug_println!(
        "root: started the memserver task: {} pool frames in its CNode ({} slots used of 2^{}), heap {} KiB",
        frames,
        plan.server_slots_used,
        plan.server.cnode_size_bits,
        heap_bytes / 1024
    );
    for (n, t) in plan.tasks.iter().enumerate() {
        let c = plan.server.clients.get(t.client).ok_or(BootError::Description("plan"))?;
        let peers: Vec<&str> = t
            .peers
            .iter()
            .filter_map(|&p| plan.tasks.get(p).and_then(|pt| plan.server.clients.get(pt.client)))
            .map(|pc| pc.name.as_str())
            .collect();
        sel4::debug_println!(
            "root: task {n}: client {} ({}), image {:?} instance {}, window {} pages reserved at {:#x}, peers {peers:?}",
            c.name,
            c.id,
            t.image.as_str(),
            t.instance,
            c.window_pages,
            t.window.addr
        );
        if let Some(heap) = t.heap.and_then(|h| plan.server.clients.get(h)) {
            sel4::debug_println!(
                "root: task {n}: heap client {} ({}), window {} pages reserved at {:#x}",
                heap.name,
                heap.id,
                heap.window_pages,
                heap.window_base
            );
        }
    }

    // The supervisor badge: only this task ever holds a capability with it.
    let supervisor = objects.mint(server_endpoint, send, SUPERVISOR_BADGE)?;
    supervise::run(&mut objects, &plan, &built, report_endpoint, supervisor)
}

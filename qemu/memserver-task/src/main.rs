//! The memserver as an seL4 task: syscall glue around `memserver-sel4-server`.
//!
//! Design: everything the task decides lives in `memserver-sel4-server` (tested on the
//! host); this crate implements its two seams with rust-sel4 — [`kernel::Sel4Kernel`], one
//! kernel invocation per `Kernel` method on slots of the task's own CNode, and
//! [`memory::MappedMemory`], copies in and out of the direct map of the pool and the
//! clients' control regions — and runs the receive loop: `seL4_Recv`, then
//! `MemserverTask::handle` and `seL4_ReplyRecv` for every message, the badge telling a
//! client (its id) from the supervisor. The boot info (what the root task planned:
//! pool, paging reserve, CNode layout, clients) comes in read-only boot-info pages; the
//! engine's and the frame table's tables live on a heap the root task sized from it.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod kernel;
mod memory;

use memserver_sel4_abi::layout::Paging;
use memserver_sel4_abi::start::{BOOT_INFO_BYTES, SLOT_OWN_TCB};
use memserver_sel4_abi::{Region, ServerBoot};
use protocol::MAX_MESSAGE_WORDS;
use protocol::framing::MessageWords;
use sel4_dlmalloc::{DeferredStaticDlmalloc, StaticHeapBounds};
use sel4_sync::RawLazyNotificationMutex;

use kernel::Sel4Kernel;
use memory::MappedMemory;

// The panic handler (prints the panic through seL4's debug console, then aborts).
use sel4_panicking as _;

const STACK_SIZE: usize = 256 * 1024;

sel4_runtime_common::declare_stack!(STACK_SIZE);
sel4_runtime_common::declare_entrypoint_with_stack_init!();
sel4_runtime_common::declare_rust_entrypoint! {
    task_main(
        ipc_buffer: *mut sel4::IpcBuffer,
        own_tcb: sel4::CPtrBits,
        endpoint: sel4::CPtrBits,
        boot_info: usize,
        boot_info_len: usize,
    )
}
sel4_panicking_env::register_debug_put_char!(sel4::debug_put_char);

/// The heap: the region the root task mapped for the engine's and the frame table's tables.
#[global_allocator]
static GLOBAL_ALLOCATOR: DeferredStaticDlmalloc<RawLazyNotificationMutex> =
    DeferredStaticDlmalloc::new_with_raw_mutex(RawLazyNotificationMutex::new(no_contention));

fn no_contention() -> sel4::cap::Notification {
    sel4::debug_println!("memserver: heap lock contended in a single-threaded task");
    halt()
}

fn halt() -> ! {
    let _ = sel4::cap::Tcb::from_bits(SLOT_OWN_TCB).tcb_suspend();
    unreachable!("a suspended task runs no more")
}

/// `core::fmt::Write` onto the kernel's debug console.
struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sel4::debug_print!("{s}");
        Ok(())
    }
}

/// The paging geometry of this kernel, as `memserver-sel4-abi` describes it.
fn kernel_paging() -> Paging {
    let levels = sel4::vspace_levels::NUM_LEVELS;
    Paging {
        top_span_bits: sel4::vspace_levels::span_bits(1) as u8,
        index_bits: sel4::TranslationTableObjectType::PT.index_bits() as u8,
        levels: (levels - 1) as u8,
    }
}

fn task_main(
    ipc_buffer: *mut sel4::IpcBuffer,
    _own_tcb: sel4::CPtrBits,
    endpoint: sel4::CPtrBits,
    boot_info: usize,
    boot_info_len: usize,
) -> ! {
    // SAFETY: the root task mapped one fresh page at this address as this
    // thread's IPC buffer (x0 of the start registers); nothing else refers to it.
    sel4::set_ipc_buffer(unsafe { &mut *ipc_buffer });
    let endpoint = sel4::cap::Endpoint::from_bits(endpoint);

    if boot_info_len > BOOT_INFO_BYTES {
        sel4::debug_println!("memserver: boot info too long");
        halt()
    }
    // SAFETY: x3/x4 are the boot-info pages the root task wrote and mapped
    // read-only into this task before starting it; nobody writes them since.
    let bytes = unsafe { core::slice::from_raw_parts(boot_info as *const u8, boot_info_len) };
    let boot: ServerBoot = match postcard::from_bytes(bytes) {
        Ok(boot) => boot,
        Err(_) => {
            sel4::debug_println!("memserver: unreadable boot info");
            halt()
        }
    };
    if boot.paging != kernel_paging() {
        sel4::debug_println!("memserver: planned for paging {:?}, the kernel has {:?}", boot.paging, kernel_paging());
        halt()
    }
    let heap = StaticHeapBounds::new(boot.heap.addr as *mut u8, boot.heap.len as usize);
    if GLOBAL_ALLOCATOR.set_bounds(heap).is_err() {
        halt()
    }

    let direct_map = Region { addr: boot.direct_map, len: u64::from(boot.pool_frames) * protocol::PAGE_SIZE as u64 };
    let memory = MappedMemory::new(direct_map, boot.clients.iter().map(|c| c.control));
    let kernel = Sel4Kernel::new(boot.slots.own_cnode);
    let mut task = match memserver_sel4_server::start(&boot, kernel, memory) {
        Ok(task) => task,
        Err(why) => {
            sel4::debug_println!("memserver: cannot start: {why:?}");
            halt()
        }
    };
    let (client_tables, direct_tables) = task.server().engine().platform().frames.tables_made();
    sel4::debug_println!(
        "memserver: seL4 task up: pool {} frames mapped at {:#x} ({} tables), paging reserve {} pages, {} client(s), heap {} KiB",
        boot.pool_frames,
        boot.direct_map,
        direct_tables + client_tables,
        boot.paging_reserve_pages(),
        boot.clients.len(),
        boot.heap.len / 1024
    );

    let (mut info, mut badge) = endpoint.recv(());
    loop {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let length = info.length().min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer(|buf| words[..length].copy_from_slice(&buf.msg_regs()[..length]));
        let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, len) = task.handle(badge, info.label(), &words[..length], &mut reply, &mut Console);
        let len = len.min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[..len].copy_from_slice(&reply[..len]));
        let reply_info = sel4::MessageInfoBuilder::default().label(label).length(len).build();
        (info, badge) = endpoint.reply_recv(reply_info, ());
    }
}

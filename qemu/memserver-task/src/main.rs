//! The memserver as an seL4 task.
//!
//! Design: the same no_std `Engine` and `dispatch::Server` as the Linux runner,
//! carried over an endpoint: `seL4_Recv`, then `seL4_ReplyRecv` for every
//! request, postcard bytes in the message registers (`protocol::framing`), the
//! badge of the caller's endpoint capability as its client id. The root task
//! read `system.toml` at build time and tells this task, in its boot-info
//! pages, the pool size, every seL4 client task and where each client's window
//! and control region are mapped here (the same frames are mapped into the
//! client). The engine's tables come from a heap region the root task sized
//! from the same description ([`memserver_task_abi::server_heap_bytes`]).
//! Admission follows the badge: a `Hello` on a badge whose session is vacant
//! admits that client (its window and control region are always mapped); a
//! `Goodbye` makes it vacant again, with everything it held reclaimed.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod platform;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use memserver_dispatch::{ClientSpec, Server, Session};
use memserver_engine::{CacheDesc, ClientDesc, FrameDesc, SlabDesc, TrackPair};
use memserver_engine::{Engine, EngineStorage};
use memserver_task_abi::ServerBoot;
use protocol::framing::{self, MessageWords};
use protocol::{ClientId, Error, MAX_MESSAGE_BYTES, MAX_MESSAGE_WORDS, MessageBuffer, Reply, Request};
use sel4_dlmalloc::{DeferredStaticDlmalloc, StaticHeapBounds};
use sel4_sync::RawLazyNotificationMutex;

use platform::Sel4Platform;

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

/// The heap: the region the root task mapped for the engine's tables.
#[global_allocator]
static GLOBAL_ALLOCATOR: DeferredStaticDlmalloc<RawLazyNotificationMutex> =
    DeferredStaticDlmalloc::new_with_raw_mutex(RawLazyNotificationMutex::new(no_contention));

fn no_contention() -> sel4::cap::Notification {
    sel4::debug_println!("memserver: heap lock contended in a single-threaded task");
    halt()
}

fn halt() -> ! {
    let _ = sel4::cap::Tcb::from_bits(memserver_task_abi::SLOT_OWN_TCB).tcb_suspend();
    unreachable!("a suspended task runs no more")
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

    if boot_info_len > memserver_task_abi::BOOT_INFO_BYTES {
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
    let heap = StaticHeapBounds::new(boot.heap.addr as *mut u8, boot.heap.len as usize);
    if GLOBAL_ALLOCATOR.set_bounds(heap).is_err() {
        halt()
    }

    let mut server = match build(&boot) {
        Ok(server) => server,
        Err(why) => {
            sel4::debug_println!("memserver: cannot start: {why}");
            halt()
        }
    };
    let specs: Vec<Option<ClientSpec>> = (0..boot.session_count())
        .map(|id| {
            boot.clients.iter().find(|c| usize::from(c.id) == id).map(|c| ClientSpec {
                name: c.name.clone(),
                window_pages: c.window_pages,
                quota_pages: c.quota_pages,
                introspect: c.introspect,
                slub_debug: protocol::slub_debug::SlubDebug::parse(&c.slub_debug).unwrap_or_default(),
            })
        })
        .collect();
    sel4::debug_println!(
        "memserver: seL4 task up: pool {} pages, {} client(s), engine tables {} KiB",
        boot.pool_pages,
        boot.clients.len(),
        boot.heap.len / 1024
    );
    serve(endpoint, &mut server, &specs)
}

/// The engine and the dispatch, their tables on the heap for the task's life.
fn build(boot: &ServerBoot) -> Result<Server<'static, Sel4Platform>, &'static str> {
    let config = memserver_task_abi::engine_config(boot);
    let s = EngineStorage::required(&config).ok_or("engine tables overflow")?;
    fn leak<T: Clone>(value: T, len: usize) -> &'static mut [T] {
        Box::leak(vec![value; len].into_boxed_slice())
    }
    let storage = EngineStorage {
        frames: leak(FrameDesc::EMPTY, s.frames),
        slabs: leak(SlabDesc::EMPTY, s.slabs),
        bitmaps: leak(0u64, s.bitmaps),
        clients: leak(ClientDesc::EMPTY, s.clients),
        caches: leak(CacheDesc::EMPTY, s.caches),
        page_map: leak(0u32, s.page_map),
        window_bits: leak(0u64, s.window_bits),
        tracks: leak(TrackPair::EMPTY, s.tracks),
        track_used: leak(0u64, s.track_used),
    };
    let platform = Sel4Platform::new(boot);
    let engine = Engine::new(config, storage, platform).map_err(|_| "engine configuration")?;
    let sessions = leak(Session::VACANT, boot.session_count());
    Server::new(engine, sessions, boot.server_config()).map_err(|_| "server configuration")
}

/// The server loop: never returns.
fn serve(endpoint: sel4::cap::Endpoint, server: &mut Server<'static, Sel4Platform>, specs: &[Option<ClientSpec>]) -> ! {
    let (mut info, mut badge) = endpoint.recv(());
    loop {
        let mut reply: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let len = handle(server, specs, badge, &info, &mut reply);
        let reply_info = sel4::with_ipc_buffer_mut(|buf| {
            let words: Option<&mut MessageWords> = (&mut buf.msg_regs_mut()[..MAX_MESSAGE_WORDS]).try_into().ok();
            // A reply that cannot be packed goes out empty: the client then
            // sees a malformed message instead of waiting forever.
            let (label, length) =
                words.and_then(|words| framing::pack(reply.get(..len).unwrap_or(&[]), words).ok()).unwrap_or((0, 0));
            sel4::MessageInfoBuilder::default().label(label).length(length).build()
        });
        (info, badge) = endpoint.reply_recv(reply_info, ());
    }
}

/// Answers one message from the client whose endpoint carries `badge`; returns the reply length.
fn handle(
    server: &mut Server<'static, Sel4Platform>,
    specs: &[Option<ClientSpec>],
    badge: sel4::Badge,
    info: &sel4::MessageInfo,
    reply: &mut MessageBuffer,
) -> usize {
    let mut request: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let bytes = sel4::with_ipc_buffer(|buf| {
        let words = buf.msg_regs().get(..info.length()).ok_or(Error::Malformed)?;
        framing::unpack(info.label(), words, &mut request).map(<[u8]>::len)
    });
    let (Some(client), Ok(len)) = (ClientId::try_from(badge).ok(), bytes) else {
        let error = if bytes.is_err() { Error::Malformed } else { Error::PermissionDenied };
        return protocol::encode_reply(&Reply::Error(error), reply).map_or(0, |b| b.len());
    };
    let request = request.get(..len).unwrap_or(&[]);
    let decoded = protocol::decode_request(request);
    // On seL4 the badge is the client: a Hello on a vacant client's badge
    // admits it (its memory is always mapped). The dispatch then checks the
    // Hello itself (version, name) as on every platform.
    if let Ok(Request::Hello { .. }) = decoded {
        if server.session(client).is_none() {
            if let Some(Some(spec)) = specs.get(usize::from(client)) {
                // A refusal leaves the session vacant; the dispatch answers PermissionDenied.
                let _ = server.admit(client, spec);
            }
        }
    }
    let len = server.dispatch(client, request, reply);
    if let Ok(Request::Goodbye) = decoded {
        // Also for a session that never opened: the next Hello starts afresh.
        server.disconnect(client);
    }
    len
}

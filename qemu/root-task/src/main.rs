//! The memserver system's seL4 root task.
//!
//! Design: the root task is the only task the kernel starts, and it holds every
//! capability at boot. It creates the other tasks as separate processes, each
//! loaded from its own ELF image into its own VSpace and CSpace (`task`), with
//! kernel objects retyped from boot untyped memory (`untyped`). This skeleton
//! starts one client task with a badged endpoint capability and answers its
//! protocol requests itself with `seL4_ReplyRecv`, the way the memserver task
//! will; the badge is the client id. It prints `TEST_PASS` or `TEST_FAIL`,
//! which `make qemu` waits for.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod task;
mod untyped;

use memserver_task_abi::TEST_REPORT_LABEL;
use protocol::framing::{self, MessageWords};
use protocol::{ClientId, Error, MAX_MESSAGE_WORDS, PROTOCOL_VERSION, Reply, Request};
use sel4_root_task::root_task;

/// The client task's image, built separately for the `aarch64-sel4` target;
/// `CHILD_ELF` is its path (see qemu/Makefile).
const HELLO_CLIENT_ELF: &[u8] = include_bytes!(env!("CHILD_ELF"));

/// The client's name and id (its endpoint badge).
const HELLO_CLIENT_NAME: &str = "hello";
const HELLO_CLIENT_ID: ClientId = 1;

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

// The `object` crate links `alloc`; the loader itself allocates nothing.
#[root_task(heap_size = 64 * 1024)]
fn main(bootinfo: &sel4::BootInfoPtr) -> ! {
    sel4::debug_println!("hello from the memserver root task");
    match run(bootinfo) {
        Ok(0) => sel4::debug_println!("TEST_PASS"),
        Ok(failures) => {
            sel4::debug_println!("root: the client reported {failures} failed check(s)");
            sel4::debug_println!("TEST_FAIL");
        }
        Err(err) => {
            sel4::debug_println!("root: boot failed: {err:?}");
            sel4::debug_println!("TEST_FAIL");
        }
    }
    sel4::init_thread::suspend_self()
}

/// Starts the client, serves it until it reports, returns its failed-check count.
fn run(bootinfo: &sel4::BootInfo) -> Result<u64, BootError> {
    let mut objects = untyped::ObjectAllocator::new(bootinfo)?;
    let mut scratch = task::Scratch::take(bootinfo)?;
    let endpoint = objects.allocate_fixed::<sel4::cap_type::Endpoint>()?;

    let client = task::spawn(
        &mut objects,
        &mut scratch,
        HELLO_CLIENT_ELF,
        endpoint,
        sel4::Badge::from(HELLO_CLIENT_ID),
    )?;
    sel4::debug_println!(
        "root: started client {HELLO_CLIENT_NAME:?} (badge {HELLO_CLIENT_ID}) in its own VSpace"
    );

    let failures = serve(endpoint);
    client.tcb.tcb_suspend()?;
    Ok(failures)
}

/// The server loop: `seL4_Recv`, then `seL4_ReplyRecv` for every request, until
/// a task sends the test report (which gets no reply).
fn serve(endpoint: sel4::cap::Endpoint) -> u64 {
    let (mut info, mut badge) = endpoint.recv(());
    loop {
        if info.label() == TEST_REPORT_LABEL {
            return sel4::with_ipc_buffer(|buf| buf.msg_regs()[0]);
        }
        let reply = handle(badge, &info);
        let reply_info = sel4::with_ipc_buffer_mut(|buf| {
            let words: Option<&mut MessageWords> = (&mut buf.msg_regs_mut()[..MAX_MESSAGE_WORDS])
                .try_into()
                .ok();
            // A reply that cannot be packed goes out empty: the client then
            // sees a malformed message instead of waiting forever.
            let (label, length) = words
                .and_then(|words| framing::pack_reply(&reply, words).ok())
                .unwrap_or((0, 0));
            sel4::MessageInfoBuilder::default()
                .label(label)
                .length(length)
                .build()
        });
        (info, badge) = endpoint.reply_recv(reply_info, ());
    }
}

/// Answers one request of the client with id `badge`.
fn handle(badge: sel4::Badge, info: &sel4::MessageInfo) -> Reply {
    let request = sel4::with_ipc_buffer(|buf| {
        let words = buf
            .msg_regs()
            .get(..info.length())
            .ok_or(Error::Malformed)?;
        framing::unpack_request(info.label(), words)
    });
    let client = ClientId::try_from(badge).ok();
    match request {
        Ok(Request::Hello {
            version,
            client_name,
        }) => {
            sel4::debug_println!(
                "root: Hello from badge {badge}: name {:?}, protocol version {version}",
                client_name.as_str()
            );
            if version != PROTOCOL_VERSION {
                return Reply::Error(Error::VersionMismatch {
                    server: PROTOCOL_VERSION,
                });
            }
            match client {
                Some(id) if id == HELLO_CLIENT_ID && client_name == HELLO_CLIENT_NAME => {
                    Reply::Hello {
                        client: id,
                        window_size: 0,
                        control_size: 0,
                        magazine_slots: 0,
                        magazine_capacity: 0,
                    }
                }
                _ => Reply::Error(Error::PermissionDenied),
            }
        }
        Ok(_) => Reply::Error(Error::NotSupported),
        Err(err) => Reply::Error(err),
    }
}

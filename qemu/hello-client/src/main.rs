//! A client task skeleton: opens a memserver session over seL4 IPC.
//!
//! Design: the root task loads this ELF image into a VSpace and CSpace of its
//! own and starts it with the IPC buffer address and its capability slots in
//! x0..x2 (see `memserver-task-abi`). The task sends `Request::Hello` with
//! `seL4_Call`, postcard bytes in the message registers (`protocol::framing`),
//! checks the reply, reports the number of failed checks to the root task with
//! a `TEST_REPORT_LABEL` message, and suspends itself.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The panic handler (prints the panic through seL4's debug console, then aborts).
use sel4_panicking as _;

use memserver_task_abi::TEST_REPORT_LABEL;
use protocol::framing::{self, MessageWords};
use protocol::{MAX_MESSAGE_WORDS, PROTOCOL_VERSION, Reply, Request};

/// The name this task has in `system.toml`.
const CLIENT_NAME: &str = "hello";

const STACK_SIZE: usize = 64 * 1024;

sel4_runtime_common::declare_stack!(STACK_SIZE);
sel4_runtime_common::declare_entrypoint_with_stack_init!();
sel4_runtime_common::declare_rust_entrypoint! {
    task_main(ipc_buffer: *mut sel4::IpcBuffer, server_endpoint: sel4::CPtrBits, own_tcb: sel4::CPtrBits)
}
sel4_panicking_env::register_debug_put_char!(sel4::debug_put_char);

fn task_main(
    ipc_buffer: *mut sel4::IpcBuffer,
    server_endpoint: sel4::CPtrBits,
    own_tcb: sel4::CPtrBits,
) -> ! {
    // SAFETY: the root task mapped one fresh page at this address as this
    // thread's IPC buffer (x0 of the start registers); nothing else refers to it.
    sel4::set_ipc_buffer(unsafe { &mut *ipc_buffer });
    let server = sel4::cap::Endpoint::from_bits(server_endpoint);

    let failures = open_session(server);

    let report = sel4::MessageInfoBuilder::default()
        .label(TEST_REPORT_LABEL)
        .length(1)
        .build();
    sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[0] = failures);
    server.call(report);

    let _ = sel4::cap::Tcb::from_bits(own_tcb).tcb_suspend();
    unreachable!("a suspended task runs no more")
}

/// Sends `Hello` and checks the reply; returns the number of failed checks.
fn open_session(server: sel4::cap::Endpoint) -> u64 {
    let name = match protocol::request::client_name(CLIENT_NAME) {
        Ok(name) => name,
        Err(err) => {
            sel4::debug_println!("hello-client: bad client name: {err:?}");
            return 1;
        }
    };
    let request = Request::Hello {
        version: PROTOCOL_VERSION,
        client_name: name,
    };
    match call(server, &request) {
        Ok(Reply::Hello { client, .. }) => {
            sel4::debug_println!("hello-client: session open, server knows me as client {client}");
            0
        }
        Ok(other) => {
            sel4::debug_println!("hello-client: unexpected reply {other:?}");
            1
        }
        Err(err) => {
            sel4::debug_println!("hello-client: call failed: {err:?}");
            1
        }
    }
}

/// One protocol round trip with `seL4_Call`.
fn call(server: sel4::cap::Endpoint, request: &Request) -> Result<Reply, protocol::Error> {
    let (label, length) = sel4::with_ipc_buffer_mut(|buf| {
        let words: &mut MessageWords = (&mut buf.msg_regs_mut()[..MAX_MESSAGE_WORDS])
            .try_into()
            .map_err(|_| protocol::Error::Malformed)?;
        framing::pack_request(request, words)
    })?;
    let info = sel4::MessageInfoBuilder::default()
        .label(label)
        .length(length)
        .build();
    let reply_info = server.call(info);
    sel4::with_ipc_buffer(|buf| {
        let words = buf
            .msg_regs()
            .get(..reply_info.length())
            .ok_or(protocol::Error::Malformed)?;
        framing::unpack_reply(reply_info.label(), words)
    })
}

//! The memserver conformance suite as an seL4 client task.
//!
//! Design: the same `conformance` scenarios that run in-process and against the
//! Linux server, here against the memserver task over `seL4_Call`. The task
//! holds one badged endpoint capability per client it speaks for (`system.toml`
//! entries with `image = "conformance"`: `conformance` and `conformance-peer`,
//! whose second badge the isolation scenarios need), with each client's window
//! and control region mapped. On seL4 the badge is fixed, so a "new session" is
//! the same endpoint: the server admits a vacant client again on its next
//! `Hello`, and dropping a session sends `Goodbye`, which makes it vacant and
//! reclaims everything it held. The task prints a line per scenario and the
//! summary, and reports the failures to the root task, which prints the
//! `TEST_PASS` / `TEST_FAIL` sentinel once every client task has reported.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use conformance::{Harness, Session, TransportError};
use memserver_task_abi::{ClientSession, Region};
use memserver_task_client::{Console, call_raw};
use protocol::{Handle, Request};

// The panic handler (prints the panic through seL4's debug console, then aborts).
use sel4_panicking as _;

const STACK_SIZE: usize = 256 * 1024;

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

fn task_main(
    ipc_buffer: *mut sel4::IpcBuffer,
    own_tcb: sel4::CPtrBits,
    report_endpoint: sel4::CPtrBits,
    boot_info: usize,
    boot_info_len: usize,
) -> ! {
    // SAFETY: the root task mapped one fresh page at this address as this
    // thread's IPC buffer (x0 of the start registers); nothing else refers to it.
    sel4::set_ipc_buffer(unsafe { &mut *ipc_buffer });
    let own_tcb = sel4::cap::Tcb::from_bits(own_tcb);
    let report_endpoint = sel4::cap::Endpoint::from_bits(report_endpoint);

    // SAFETY: x3/x4 are the boot-info pages the root task mapped read-only.
    let Some(boot) = (unsafe { memserver_task_client::boot_info(boot_info, boot_info_len) }) else {
        sel4::debug_println!("conformance: unreadable boot info");
        memserver_task_client::report(report_endpoint, own_tcb, 1)
    };
    let names: Vec<&str> = boot.sessions.iter().map(|s| s.name.as_str()).collect();
    sel4::debug_println!("conformance: seL4 client task, sessions {names:?}");

    let mut harness = Sel4Harness { sessions: boot.sessions.iter().cloned().collect() };
    let summary = conformance::run_all(&mut harness, "", &mut Console);
    let failures = if summary.ok() { 0 } else { summary.failed.max(1) as u64 };
    memserver_task_client::report(report_endpoint, own_tcb, failures)
}

/// The scenarios' platform: one client session per badged endpoint capability.
struct Sel4Harness {
    sessions: Vec<ClientSession>,
}

impl Harness for Sel4Harness {
    fn open(&mut self, name: &str) -> Result<Box<dyn Session>, TransportError> {
        let session = self
            .sessions
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| TransportError(format!("no seL4 session for client {name:?} (image = \"conformance\")")))?;
        Ok(Box::new(Sel4Session {
            endpoint: sel4::cap::Endpoint::from_bits(session.endpoint_slot),
            window: session.window,
            control: session.control,
        }))
    }
}

/// One session: the endpoint plus copy access to the two shared regions.
struct Sel4Session {
    endpoint: sel4::cap::Endpoint,
    window: Region,
    control: Region,
}

fn transport(e: impl core::fmt::Debug) -> TransportError {
    TransportError(format!("{e:?}"))
}

/// The address of `len` bytes at `offset` in `region`, if they lie inside it.
fn place(region: Region, offset: u64, len: usize) -> Result<*mut u8, TransportError> {
    let end = offset.checked_add(len as u64).ok_or_else(|| transport("offset overflows"))?;
    if end > region.len {
        return Err(TransportError(format!("{offset:#x}+{len} outside a region of {:#x} bytes", region.len)));
    }
    Ok((region.addr + offset) as *mut u8)
}

impl Session for Sel4Session {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        call_raw(self.endpoint, request, reply).map_err(transport)
    }

    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let at = place(self.window, handle.0.saturating_add(offset as u64), buf.len())?;
        // SAFETY: `at .. at + len` lies in this client's window, mapped read-write
        // into this task for its whole life; a byte copy needs no alignment.
        unsafe { core::ptr::copy_nonoverlapping(at, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let at = place(self.window, handle.0.saturating_add(offset as u64), data.len())?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len()) };
        Ok(())
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let at = place(self.control, offset as u64, buf.len())?;
        // SAFETY: `at .. at + len` lies in this client's control region, mapped
        // read-write into this task for its whole life.
        unsafe { core::ptr::copy_nonoverlapping(at, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let at = place(self.control, offset as u64, data.len())?;
        // SAFETY: as in `control_read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len()) };
        Ok(())
    }

    /// The client library's scenarios run on the same mappings.
    fn mapped(&self) -> Option<(memclient::Window, memclient::Control)> {
        let window = core::ptr::NonNull::new(self.window.addr as *mut u8)?;
        let control = core::ptr::NonNull::new(self.control.addr as *mut u8)?;
        let (window_len, control_len) = (usize::try_from(self.window.len).ok()?, usize::try_from(self.control.len).ok()?);
        // SAFETY: both regions are mapped read-write into this task for its whole life, the
        // control region page aligned (the root task maps whole pages).
        unsafe { Some((memclient::Window::new(window, window_len), memclient::Control::new(control, control_len))) }
    }
}

impl Drop for Sel4Session {
    /// The badge outlives the session: `Goodbye` makes the server reclaim the
    /// client and admit it afresh on its next `Hello` (an error reply, when the
    /// session never opened, changes nothing).
    fn drop(&mut self) {
        let mut request = [0u8; protocol::MAX_MESSAGE_BYTES];
        if let Ok(bytes) = protocol::encode_request(&Request::Goodbye, &mut request) {
            let len = bytes.len();
            let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
            let _ = call_raw(self.endpoint, &request[..len], &mut reply);
        }
    }
}

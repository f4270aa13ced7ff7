//! What every seL4 client task of memserver shares: the syscall glue.
//!
//! Design: the logic of a client task's calls (framing, the agent protocol) is in
//! `memserver-sel4-client`, tested on the host; here is its one seam, [`EndpointLink`]
//! (`seL4_Call` on an endpoint capability), and what a task needs around it: its heap
//! ([`heap`]: memclient's `GlobalKmalloc` over the session of the task's heap client, opened
//! by the entry before `main`), the boot info ([`boot_info`]),
//! copies in and out of its shared regions ([`Shared`]), the kernel's debug console
//! ([`Console`]), the virtual counter ([`counter`]) and its calls to the root task
//! ([`report`], [`rendezvous`], [`expect_fault`]). Its window is reserved and unmapped
//! until the memserver maps frames into it: only objects it holds may be touched.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod heap;

use core::fmt;
use core::ptr::NonNull;

use memclient::{Control, Memserver, Window};
use memserver_sel4_abi::root::{LABEL_EXPECT_FAULT, LABEL_REPORT};
use memserver_sel4_abi::start::{BOOT_INFO_BYTES, SLOT_MEMSERVER, SLOT_OWN_TCB};
use memserver_sel4_abi::{ClientBoot, ClientSession, Region};
use memserver_sel4_client::Link;
use protocol::framing::MessageWords;
use protocol::{MAX_MESSAGE_WORDS, Reply};

#[doc(hidden)]
pub use {sel4, sel4_panicking, sel4_panicking_env, sel4_runtime_common};

/// Declares a client task's entry: a stack of `$stack` bytes, the runtime's entry point and
/// panic console, and an entry function that installs the IPC buffer, reads the boot info
/// and calls `$main(boot: ClientBoot, root: sel4::cap::Endpoint) -> !` (`root`: the report
/// endpoint of the root task).
#[macro_export]
macro_rules! client_task {
    ($main:path, stack = $stack:expr) => {
        // The panic handler (prints the panic through seL4's debug console, then aborts).
        use $crate::sel4_panicking as _;

        $crate::sel4_runtime_common::declare_stack!($stack);
        $crate::sel4_runtime_common::declare_entrypoint_with_stack_init!();
        $crate::sel4_runtime_common::declare_rust_entrypoint! {
            __client_task_entry(
                ipc_buffer: *mut $crate::sel4::IpcBuffer,
                own_tcb: $crate::sel4::CPtrBits,
                report_endpoint: $crate::sel4::CPtrBits,
                boot_info: usize,
                boot_info_len: usize,
            )
        }
        $crate::sel4_panicking_env::register_debug_put_char!($crate::sel4::debug_put_char);

        fn __client_task_entry(
            ipc_buffer: *mut $crate::sel4::IpcBuffer,
            _own_tcb: $crate::sel4::CPtrBits,
            report_endpoint: $crate::sel4::CPtrBits,
            boot_info: usize,
            boot_info_len: usize,
        ) -> ! {
            // SAFETY: the start registers the root task set (memserver-sel4-abi::start): x0 a
            // fresh page mapped as this thread's IPC buffer, x3/x4 its read-only boot-info
            // pages.
            unsafe { $crate::enter(ipc_buffer, report_endpoint, boot_info, boot_info_len, $main) }
        }
    };
}

/// What [`client_task!`] runs: installs the IPC buffer, decodes the boot info, opens the
/// heap client's session if the task has one, calls `main` (a task whose boot info is
/// unreadable or whose heap cannot be opened reports one failure).
///
/// # Safety
/// - `ipc_buffer` is a page mapped read-write as this thread's IPC buffer, referred to by
///   nothing else;
/// - `boot_info .. boot_info + boot_info_len` is mapped readable for the task's life.
#[doc(hidden)]
pub unsafe fn enter(
    ipc_buffer: *mut sel4::IpcBuffer,
    report_endpoint: sel4::CPtrBits,
    boot_info_addr: usize,
    boot_info_len: usize,
    main: fn(ClientBoot, sel4::cap::Endpoint) -> !,
) -> ! {
    // SAFETY: the caller guarantees the page is this thread's IPC buffer and unaliased.
    sel4::set_ipc_buffer(unsafe { &mut *ipc_buffer });
    let root = sel4::cap::Endpoint::from_bits(report_endpoint);
    // SAFETY: the caller guarantees the boot-info range is mapped readable.
    let Some(boot) = (unsafe { boot_info(boot_info_addr, boot_info_len) }) else {
        sel4::debug_println!("client task: unreadable boot info");
        report(root, 1)
    };
    TASK_NAME.call_once(|| boot.session.name.clone());
    if let Some(heap_session) = &boot.heap {
        if let Err(why) = heap::open(heap_session) {
            sel4::debug_println!("{}: FAILED: heap client {}: {why}", boot.session.name, heap_session.name);
            report(root, 1)
        }
    }
    main(boot, root)
}

/// The name of this task's client, for the lines [`report`] prints.
static TASK_NAME: spin::Once<protocol::ClientName> = spin::Once::new();

/// Suspends this task.
pub fn stop() -> ! {
    let _ = sel4::cap::Tcb::from_bits(SLOT_OWN_TCB).tcb_suspend();
    unreachable!("a suspended task runs no more")
}

/// `seL4_Call` on an endpoint capability.
#[derive(Clone, Copy)]
pub struct EndpointLink(pub sel4::cap::Endpoint);

impl EndpointLink {
    /// The endpoint capability in `slot` of this task's CSpace.
    pub fn at(slot: u64) -> Self {
        EndpointLink(sel4::cap::Endpoint::from_bits(slot))
    }
}

impl Link for EndpointLink {
    fn call(&mut self, label: u64, words: &[u64], reply: &mut MessageWords) -> (u64, usize) {
        let len = words.len().min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[..len].copy_from_slice(&words[..len]));
        let info = self.0.call(sel4::MessageInfoBuilder::default().label(label).length(len).build());
        let reply_len = info.length().min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer(|buf| reply[..reply_len].copy_from_slice(&buf.msg_regs()[..reply_len]));
        (info.label(), reply_len)
    }
}

/// `memclient`'s transport: the memserver endpoint.
pub struct Sel4Transport(pub EndpointLink);

impl memclient::Transport for Sel4Transport {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, memclient::TransportError> {
        memserver_sel4_client::call(&mut self.0, request, reply).map_err(|_| memclient::TransportError::Truncated)
    }
}

/// `Hello` as `session`'s client on the memserver endpoint, then the `memclient` session over
/// its reserved window and mapped control region.
pub fn open(session: &ClientSession) -> Result<Memserver<Sel4Transport>, &'static str> {
    open_at(SLOT_MEMSERVER, session)
}

/// As [`open`], on the memserver endpoint capability in `slot` (its badge is the client's id).
pub fn open_at(slot: u64, session: &ClientSession) -> Result<Memserver<Sel4Transport>, &'static str> {
    open_with(slot, session, |transport| transport)
}

/// As [`open_at`], the session's transport wrapped by `wrap` (a task whose session goes to
/// a library that names its own transport type: the C API's).
pub fn open_with<T: memclient::Transport>(
    slot: u64,
    session: &ClientSession,
    wrap: impl FnOnce(Sel4Transport) -> T,
) -> Result<Memserver<T>, &'static str> {
    let mut link = EndpointLink::at(slot);
    let mut hello = [0u8; protocol::MAX_MESSAGE_BYTES];
    let len = memclient::hello_request(session.name.as_str(), &mut hello).map_err(|_| "bad client name")?;
    let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = memserver_sel4_client::call(&mut link, &hello[..len], &mut reply).map_err(|_| "hello: transport")?;
    let hello_reply = protocol::decode_reply(&reply[..n]).map_err(|_| "hello: bad reply")?;
    if !matches!(hello_reply, Reply::Hello(_)) {
        sel4::debug_println!("{}: hello refused: {hello_reply:?}", session.name);
        return Err("hello refused");
    }
    let window_base = NonNull::new(session.window.addr as *mut u8).ok_or("no window")?;
    let control_base = NonNull::new(session.control.addr as *mut u8).ok_or("no control region")?;
    // SAFETY: the root task reserved this client's window in this task's VSpace (the
    // memserver maps frames into it as objects are granted; the library touches only objects
    // it holds) and mapped its control region read-write, page aligned, for the task's life.
    let (window, control) = unsafe {
        (
            Window::new(window_base, session.window.len as usize),
            Control::new(control_base, session.control.len as usize),
        )
    };
    Memserver::new(wrap(Sel4Transport(link)), &hello_reply, window, control).map_err(|_| "session")
}

/// Decodes the boot info the root task wrote at `addr`.
///
/// # Safety
/// - `addr .. addr + len` is mapped readable (the boot-info pages of this task)
///   and stays so for the call.
pub unsafe fn boot_info(addr: usize, len: usize) -> Option<ClientBoot> {
    if len > BOOT_INFO_BYTES {
        return None;
    }
    // SAFETY: the caller guarantees the range is mapped and readable; the
    // root task wrote it before starting this task and nobody writes it since.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    postcard::from_bytes(bytes).ok()
}

/// Copies in and out of one of this task's shared regions (its window, its control region).
///
/// Bounds are checked; a window page the memserver has not mapped faults the task (the root
/// task reports it): only memory of objects the task holds may be named.
#[derive(Clone, Copy, Debug)]
pub struct Shared(pub Region);

impl Shared {
    /// Copies `buf.len()` bytes at `offset` out; `false` if they are not all in the region.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(at) = self.0.place(offset, buf.len()) else { return false };
        // SAFETY: `at .. at + len` lies in this region, which the root task mapped (control
        // region) or reserved for the memserver's mappings (window) in this task's VSpace; a
        // byte copy needs no alignment; the memserver writing concurrently only changes the
        // bytes copied.
        unsafe { core::ptr::copy_nonoverlapping(at as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies `data` to `offset`; `false` if it does not fit in the region.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        let Some(at) = self.0.place(offset, data.len()) else { return false };
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
        true
    }
}

/// Prints what the memserver served of the task's heap, then sends the number of failed
/// checks (the heap's included) to the root task, then stops. The root task then reclaims the
/// heap client: nothing runs here after the report that could touch the heap.
pub fn report(root: sel4::cap::Endpoint, failures: u64) -> ! {
    let task = TASK_NAME.get().map_or("client task", |n| n.as_str());
    let failures = failures + heap::summary(task);
    sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[0] = failures);
    root.send(sel4::MessageInfoBuilder::default().label(LABEL_REPORT).length(1).build());
    stop()
}

/// Calls the root task with `label` (`LABEL_READY`, `LABEL_PAUSE`) and waits for its answer.
pub fn rendezvous(root: sel4::cap::Endpoint, label: u64) {
    root.call(sel4::MessageInfoBuilder::default().label(label).length(0).build());
}

/// Tells the root task this task is about to touch window `offset`, which it no longer has,
/// holding `frames` frames; returns once the root task has noted it.
pub fn expect_fault(root: sel4::cap::Endpoint, offset: u64, frames: u32) {
    sel4::with_ipc_buffer_mut(|buf| {
        buf.msg_regs_mut()[0] = offset;
        buf.msg_regs_mut()[1] = u64::from(frames);
    });
    root.call(sel4::MessageInfoBuilder::default().label(LABEL_EXPECT_FAULT).length(2).build());
}

/// `core::fmt::Write` onto the kernel's debug console.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        sel4::debug_print!("{s}");
        Ok(())
    }
}

/// The ARM generic timer's virtual count (`CNTVCT_EL0`) and its frequency, if
/// the kernel lets user tasks read it (`KernelArmExportVCNTUser`).
pub fn counter() -> Option<(u64, u64)> {
    sel4::sel4_cfg_if! {
        if #[sel4_cfg(EXPORT_VCNT_USER)] {
            let (count, freq): (u64, u64);
            // SAFETY: reading the counter and its frequency has no side effects;
            // the kernel enabled EL0 access (EXPORT_VCNT_USER).
            unsafe {
                core::arch::asm!("isb", "mrs {0}, cntvct_el0", "mrs {1}, cntfrq_el0", out(reg) count, out(reg) freq);
            }
            Some((count, freq))
        } else {
            None
        }
    }
}

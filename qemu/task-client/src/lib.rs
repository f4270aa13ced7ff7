//! What every seL4 client task of memserver shares: the syscall glue.
//!
//! Design: the logic of a client task's calls (framing, the agent protocol) is in
//! `memserver-sel4-client`, tested on the host; here is its one seam, [`EndpointLink`]
//! (`seL4_Call` on an endpoint capability), and what a task needs around it: its heap
//! ([`GLOBAL_ALLOCATOR`], client tasks are single-threaded), the boot info ([`boot_info`]),
//! copies in and out of its shared regions ([`Shared`]), the kernel's debug console
//! ([`Console`]), the virtual counter ([`counter`]) and its calls to the root task
//! ([`report`], [`rendezvous`], [`expect_fault`]). Its window is reserved and unmapped
//! until the memserver maps frames into it: only objects it holds may be touched.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::fmt;

use memserver_sel4_abi::root::{LABEL_EXPECT_FAULT, LABEL_REPORT};
use memserver_sel4_abi::start::{BOOT_INFO_BYTES, SLOT_OWN_TCB};
use memserver_sel4_abi::{ClientBoot, Region};
use memserver_sel4_client::Link;
use protocol::MAX_MESSAGE_WORDS;
use protocol::framing::MessageWords;
use sel4_dlmalloc::{StaticDlmalloc, StaticHeap};
use sel4_sync::RawLazyNotificationMutex;

/// Heap of a client task (the conformance suite and the load generator's tables).
const HEAP_SIZE: usize = 4 * 1024 * 1024;

static HEAP: StaticHeap<HEAP_SIZE> = StaticHeap::new();

/// The client task's allocator. The task has one thread, so the lock is never
/// contended; contention would abort.
#[global_allocator]
static GLOBAL_ALLOCATOR: StaticDlmalloc<RawLazyNotificationMutex> = StaticDlmalloc::new_with_raw_mutex(
    RawLazyNotificationMutex::new(no_contention),
    HEAP.bounds(),
);

fn no_contention() -> sel4::cap::Notification {
    sel4::debug_println!("client task: heap lock contended in a single-threaded task");
    stop()
}

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

/// Sends the number of failed checks to the root task, then stops.
pub fn report(root: sel4::cap::Endpoint, failures: u64) -> ! {
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

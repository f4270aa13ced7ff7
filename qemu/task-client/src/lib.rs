//! What every seL4 client task of memserver shares.
//!
//! Design: a client task speaks the protocol over `seL4_Call` on a badged
//! endpoint capability, the postcard bytes packed into message registers by
//! `protocol::framing` ([`call_raw`], [`Sel4Transport`] for `memclient`). Its
//! window and control region are frames the root task mapped into its VSpace
//! (and into the memserver's); the addresses come from the boot-info pages
//! ([`boot_info`]). The task gets a heap ([`GLOBAL_ALLOCATOR`], a static dlmalloc
//! heap: client tasks are single-threaded), prints through the kernel's debug
//! console ([`Console`]), reads the virtual counter ([`counter`]) and finally
//! reports its number of failed checks to the root task ([`report`]).

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::fmt;

use memserver_task_abi::{ClientBoot, TEST_REPORT_LABEL};
use protocol::framing::{self, MessageWords};
use protocol::{MAX_MESSAGE_BYTES, MAX_MESSAGE_WORDS, MessageBuffer};
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
    sel4::cap::Tcb::from_bits(memserver_task_abi::SLOT_OWN_TCB).tcb_suspend().ok();
    unreachable!("a suspended task runs no more")
}

/// Why a call did not bring back a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The reply buffer is too small for the reply.
    Truncated,
    /// The reply's framing is bad.
    Malformed,
}

/// One round trip with `seL4_Call`: `request` (any bytes, so a test can send
/// malformed ones) out, the reply's bytes into `reply`.
///
/// A request longer than a message can carry goes out as the first 120 words
/// with its real length in the label, so the server sees (and must reject) a
/// length that does not match the words.
pub fn call_raw(endpoint: sel4::cap::Endpoint, request: &[u8], reply: &mut [u8]) -> Result<usize, CallError> {
    let (label, length) = sel4::with_ipc_buffer_mut(|buf| {
        let regs = buf.msg_regs_mut();
        match <&mut MessageWords>::try_from(&mut regs[..MAX_MESSAGE_WORDS]) {
            Ok(words) => match framing::pack(request, words) {
                Ok(packed) => packed,
                Err(_) => {
                    let head = request.get(..MAX_MESSAGE_BYTES).unwrap_or(request);
                    let (_, used) = framing::pack(head, words).unwrap_or((0, 0));
                    ((request.len() & 0xffff) as u64, used)
                }
            },
            Err(_) => (0, 0),
        }
    });
    let info = sel4::MessageInfoBuilder::default().label(label).length(length).build();
    let reply_info = endpoint.call(info);
    let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let bytes = sel4::with_ipc_buffer(|ipc| {
        let words = ipc.msg_regs().get(..reply_info.length()).ok_or(CallError::Malformed)?;
        let bytes = framing::unpack(reply_info.label(), words, &mut buf).map_err(|_| CallError::Malformed)?;
        Ok::<usize, CallError>(bytes.len())
    })?;
    let dst = reply.get_mut(..bytes).ok_or(CallError::Truncated)?;
    dst.copy_from_slice(&buf[..bytes]);
    Ok(bytes)
}

/// `memclient`'s transport over one badged endpoint capability.
pub struct Sel4Transport {
    /// The endpoint capability (its badge is the client id).
    pub endpoint: sel4::cap::Endpoint,
}

impl memclient::Transport for Sel4Transport {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, memclient::TransportError> {
        call_raw(self.endpoint, request, reply).map_err(|_| memclient::TransportError::Truncated)
    }
}

/// Decodes the boot info the root task wrote at `addr`.
///
/// # Safety
/// - `addr .. addr + len` is mapped readable (the boot-info pages of this task)
///   and stays so for the call.
pub unsafe fn boot_info(addr: usize, len: usize) -> Option<ClientBoot> {
    if len > memserver_task_abi::BOOT_INFO_BYTES {
        return None;
    }
    // SAFETY: the caller guarantees the range is mapped and readable; the
    // root task wrote it before starting this task and nobody writes it since.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
    postcard::from_bytes(bytes).ok()
}

/// Sends the number of failed checks to the root task on `report_endpoint`, then
/// suspends this task.
pub fn report(report_endpoint: sel4::cap::Endpoint, own_tcb: sel4::cap::Tcb, failures: u64) -> ! {
    sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[0] = failures);
    report_endpoint.send(sel4::MessageInfoBuilder::default().label(TEST_REPORT_LABEL).length(1).build());
    let _ = own_tcb.tcb_suspend();
    unreachable!("a suspended task runs no more")
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

/// Calls the root task on `report_endpoint` with `label` and waits for its
/// answer: [`TEST_READY_LABEL`](memserver_task_abi::TEST_READY_LABEL) or
/// [`TEST_PAUSE_LABEL`](memserver_task_abi::TEST_PAUSE_LABEL).
pub fn rendezvous(report_endpoint: sel4::cap::Endpoint, label: u64) {
    report_endpoint.call(sel4::MessageInfoBuilder::default().label(label).length(0).build());
}

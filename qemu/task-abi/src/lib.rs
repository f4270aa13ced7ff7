//! The contract between the seL4 root task and the tasks it starts.
//!
//! Design: a task is loaded from its own ELF image into its own VSpace with a
//! small CSpace of its own. Instead of baking addresses and slot numbers into
//! each task, the root task passes them in the first argument registers, so a
//! task's entry point reads them like function arguments (AAPCS64 x0..x2).
//! Only types and constants live here; no seL4 crate is needed to use them.

#![no_std]
#![forbid(unsafe_code)]

/// Start register x0: virtual address of the task's IPC buffer (one page).
pub const START_REG_IPC_BUFFER: usize = 0;
/// Start register x1: slot (in the task's own CSpace) of its badged endpoint
/// capability to the server.
pub const START_REG_SERVER_ENDPOINT: usize = 1;
/// Start register x2: slot of the task's own TCB capability (to suspend itself).
pub const START_REG_OWN_TCB: usize = 2;

/// log2 of the number of slots in a task's CSpace root CNode.
pub const TASK_CNODE_SIZE_BITS: usize = 4;
/// Slot of the badged endpoint capability to the server.
pub const SLOT_SERVER_ENDPOINT: u64 = 1;
/// Slot of the task's own TCB capability.
pub const SLOT_OWN_TCB: u64 = 2;

/// Label of the test-harness message a test task sends when it is done. It lies
/// outside the protocol's label range (the byte length, bits 0..16), so it can
/// never be mistaken for a protocol request. Message register 0 holds the
/// number of failed checks.
pub const TEST_REPORT_LABEL: u64 = 1 << 32;

//! How a task starts: its start registers and the fixed slots of a client task's CSpace.

/// Start register x0: virtual address of the task's IPC buffer (one page).
pub const REG_IPC_BUFFER: usize = 0;
/// Start register x1: slot of the task's own TCB capability (to suspend itself).
pub const REG_OWN_TCB: usize = 1;
/// Start register x2: slot of the task's first endpoint capability: the memserver task
/// receives on it; a client task reports to the root task on it.
pub const REG_ENDPOINT: usize = 2;
/// Start register x3: virtual address of the boot-info pages.
pub const REG_BOOT_INFO: usize = 3;
/// Start register x4: length in bytes of the postcard message there.
pub const REG_BOOT_INFO_LEN: usize = 4;

/// log2 of the number of slots in a client task's CSpace (one CNode).
pub const TASK_CNODE_SIZE_BITS: u8 = 6;
/// Slot of the task's own TCB capability (every task, the memserver too).
pub const SLOT_OWN_TCB: u64 = 1;
/// Memserver task: the endpoint it receives on (receive only). Client task: the endpoint it
/// calls the root task on (badged with its task number).
pub const SLOT_ENDPOINT: u64 = 2;
/// Client task: the badged endpoint capability to the memserver (badge = client id).
pub const SLOT_MEMSERVER: u64 = 3;
/// Client task: its fault endpoint (the root task's, with a fault badge). The kernel looks it
/// up here when the task faults; the task never needs to use it.
pub const SLOT_FAULT: u64 = 4;
/// Client task with peers: the endpoint it serves agent requests on (receive only).
pub const SLOT_AGENT: u64 = 5;
/// Client task with peers: the endpoint of its first peer's agent; peer `i` is at
/// `SLOT_PEER_BASE + i` (named in [`ClientBoot::peers`](crate::ClientBoot::peers)).
pub const SLOT_PEER_BASE: u64 = 6;
/// Most peers one client task can have (the slots after [`SLOT_PEER_BASE`]).
pub const MAX_PEERS: usize = 8;
/// Client task with a heap client: the badged endpoint capability to the memserver for it
/// (badge = the heap client's id), named in [`ClientBoot::heap`](crate::ClientBoot::heap).
pub const SLOT_HEAP_MEMSERVER: u64 = SLOT_PEER_BASE + MAX_PEERS as u64;

/// Pages of boot info mapped into every task.
pub const BOOT_INFO_PAGES: usize = 4;
/// Bytes of boot info.
pub const BOOT_INFO_BYTES: usize = BOOT_INFO_PAGES * protocol::PAGE_SIZE;

const _: () = assert!((SLOT_HEAP_MEMSERVER as usize) < 1 << TASK_CNODE_SIZE_BITS);

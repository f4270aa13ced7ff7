//! What the memserver task needs from the kernel and from its own address space: the seams
//! between this crate's logic and the task's syscall glue.

use memserver_sel4_abi::Region;

/// Why a kernel invocation failed (the `seL4_Error` codes the memserver tells apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A translation table on the way is missing (`seL4_FailedLookup`).
    FailedLookup,
    /// Something is mapped or stored there already (`seL4_DeleteFirst`).
    DeleteFirst,
    /// The untyped object has no room left (`seL4_NotEnoughMemory`).
    NotEnoughMemory,
    /// Any other error, by its `seL4_Error` number.
    Other(u32),
}

/// The kernel invocations of the memserver task, on slots of its own CNode.
///
/// Corresponds one to one to seL4 calls; the glue implements each with one invocation.
pub trait Kernel {
    /// Corresponds to `seL4_CNode_Copy`: a copy of the capability in `source` (a pool frame)
    /// into the empty slot `destination`; the copy is a child of the original, so revoking
    /// the original deletes it.
    fn copy_cap(&mut self, source: u64, destination: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_ARM_Page_Map`: the frame capability in `frame` mapped into the
    /// VSpace in slot `vspace` at `vaddr`, read-write, never executable.
    fn map_frame(&mut self, frame: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_ARM_Page_Unmap`.
    fn unmap_frame(&mut self, frame: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_CNode_Delete`.
    fn delete_cap(&mut self, slot: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_CNode_Revoke`: every child of the capability in `slot` deleted.
    fn revoke_cap(&mut self, slot: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_Untyped_Retype` of one translation table (`seL4_ARM_PageTableObject`)
    /// from the untyped object in `untyped` into the empty slot `destination`.
    fn retype_table(&mut self, untyped: u64, destination: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_ARM_PageTable_Map`: the table in `table` into `vspace` at `vaddr`.
    fn map_table(&mut self, table: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError>;
    /// Corresponds to `seL4_ARM_Page_GetAddress`: the physical address of the frame in
    /// `frame` (fails on an empty slot: the census uses it to check a capability exists).
    fn frame_address(&mut self, frame: u64) -> Result<u64, KernelError>;
    /// Corresponds to `seL4_DebugPutChar` for each character of `line` and a newline: the
    /// serial log (internal errors, the census).
    fn debug_line(&mut self, line: core::fmt::Arguments<'_>);
}

/// Copies in and out of memory mapped in the memserver's own VSpace (the direct map of the
/// pool, the clients' control regions): the only place where the task dereferences an
/// address. An implementation refuses (`false`) any range outside what is mapped.
pub trait Memory {
    /// Copies `buf.len()` bytes at `addr` out.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
    /// Copies `data` to `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> bool;
    /// Sets `len` bytes at `addr` to `byte`.
    fn fill(&mut self, addr: u64, len: usize, byte: u8) -> bool;
    /// The page at `addr` (page aligned) as server-private memory: only for pool frames that
    /// are never mapped into a client.
    fn private_page(&mut self, addr: u64) -> Option<&mut [u8; protocol::PAGE_SIZE]>;
}

/// Whether `[addr, addr + len)` lies inside one of `regions` (for [`Memory`] implementations).
pub fn inside(regions: &[Region], addr: u64, len: usize) -> bool {
    let Ok(len) = u64::try_from(len) else { return false };
    regions
        .iter()
        .any(|r| addr.checked_sub(r.addr).and_then(|offset| offset.checked_add(len)).is_some_and(|end| end <= r.len))
}

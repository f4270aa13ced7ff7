//! `memserver_sel4_server::Kernel` with rust-sel4: one invocation per method, on slots of the
//! task's own CNode (a single-level CNode whose guard makes every slot a full-word path).

use memserver_sel4_server::{Kernel, KernelError};

/// The memserver's kernel calls.
pub struct Sel4Kernel {
    cnode: sel4::cap::CNode,
}

impl Sel4Kernel {
    /// Invocations on the CNode whose capability is in slot `cnode` of itself.
    pub fn new(cnode: u64) -> Self {
        Sel4Kernel { cnode: sel4::cap::CNode::from_bits(cnode) }
    }

    fn path(&self, slot: u64) -> sel4::AbsoluteCPtr {
        self.cnode.absolute_cptr_from_bits_with_depth(slot, sel4::WORD_SIZE)
    }
}

fn error(e: sel4::Error) -> KernelError {
    match e {
        sel4::Error::FailedLookup => KernelError::FailedLookup,
        sel4::Error::DeleteFirst => KernelError::DeleteFirst,
        sel4::Error::NotEnoughMemory => KernelError::NotEnoughMemory,
        other => KernelError::Other(other.into_sys() as u32),
    }
}

fn attributes() -> sel4::VmAttributes {
    sel4::VmAttributes::default() | sel4::VmAttributes::EXECUTE_NEVER
}

impl Kernel for Sel4Kernel {
    fn copy_cap(&mut self, source: u64, destination: u64) -> Result<(), KernelError> {
        self.path(destination).copy(&self.path(source), sel4::CapRights::read_write()).map_err(error)
    }

    fn map_frame(&mut self, frame: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError> {
        sel4::cap::SmallPage::from_bits(frame)
            .frame_map(
                sel4::cap::VSpace::from_bits(vspace),
                vaddr as usize,
                sel4::CapRights::read_write(),
                attributes(),
            )
            .map_err(error)
    }

    fn unmap_frame(&mut self, frame: u64) -> Result<(), KernelError> {
        sel4::cap::SmallPage::from_bits(frame).frame_unmap().map_err(error)
    }

    fn delete_cap(&mut self, slot: u64) -> Result<(), KernelError> {
        self.path(slot).delete().map_err(error)
    }

    fn revoke_cap(&mut self, slot: u64) -> Result<(), KernelError> {
        self.path(slot).revoke().map_err(error)
    }

    fn retype_table(&mut self, untyped: u64, destination: u64) -> Result<(), KernelError> {
        use sel4::CapTypeForObjectOfFixedSize;
        sel4::cap::Untyped::from_bits(untyped)
            .untyped_retype(
                &sel4::cap_type::PT::object_blueprint(),
                &self.cnode.absolute_cptr_for_self(),
                destination as usize,
                1,
            )
            .map_err(error)
    }

    fn map_table(&mut self, table: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError> {
        sel4::cap::PT::from_bits(table)
            .pt_map(sel4::cap::VSpace::from_bits(vspace), vaddr as usize, sel4::VmAttributes::default())
            .map_err(error)
    }

    fn debug_line(&mut self, line: core::fmt::Arguments<'_>) {
        sel4::debug_println!("{line}");
    }

    fn frame_address(&mut self, frame: u64) -> Result<u64, KernelError> {
        sel4::cap::SmallPage::from_bits(frame).frame_get_address().map(|a| a as u64).map_err(error)
    }
}

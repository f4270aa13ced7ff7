//! The line a client task's fault is reported with.

use core::fmt;

use memserver_sel4_abi::Region;

/// What the kernel said about a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A VM fault: the address touched and the instruction that touched it.
    Vm {
        /// The faulting address.
        addr: u64,
        /// The program counter.
        ip: u64,
        /// An instruction fetch rather than a data access.
        prefetch: bool,
    },
    /// Any other fault (capability fault, unknown syscall, user exception), by name.
    Other {
        /// What kind.
        kind: &'static str,
    },
}

/// `client NAME: vm fault at window+0x…` (or where else it was), as one line.
pub struct FaultReport<'a> {
    /// The client's name.
    pub name: &'a str,
    /// Its window in its VSpace.
    pub window: Region,
    /// The fault.
    pub fault: FaultKind,
}

impl fmt::Display for FaultReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            FaultKind::Vm { addr, ip, prefetch } => {
                let access = if prefetch { "instruction fetch" } else { "vm fault" };
                match self.window.offset_of(addr) {
                    Some(offset) => write!(f, "client {}: {access} at window+{offset:#x} (pc {ip:#x})", self.name),
                    None => write!(f, "client {}: {access} at {addr:#x}, outside its window (pc {ip:#x})", self.name),
                }
            }
            FaultKind::Other { kind } => write!(f, "client {}: {kind} fault", self.name),
        }
    }
}

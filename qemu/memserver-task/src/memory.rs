//! `memserver_sel4_server::Memory`: copies in and out of what is mapped in this task.
//!
//! The direct map of the pool and the clients' control regions are mapped read-write here
//! for the task's life. Every access is checked against them first, so a wrong address from
//! the logic is a refusal, never a stray access. Clients can write their control regions and
//! the frames mapped into their windows concurrently: those bytes are only ever copied (no
//! reference into them is made), and the logic validates the copies.

use alloc::vec::Vec;

use memserver_sel4_abi::Region;
use memserver_sel4_server::Memory;
use memserver_sel4_server::kernel::inside;
use protocol::PAGE_SIZE;

/// The memory this task has mapped.
pub struct MappedMemory {
    /// The direct map (first), then each client's control region.
    regions: Vec<Region>,
    direct_map: Region,
}

impl MappedMemory {
    /// The direct map and the control regions the root task mapped.
    pub fn new(direct_map: Region, controls: impl Iterator<Item = Region>) -> Self {
        let mut regions = alloc::vec![direct_map];
        regions.extend(controls);
        MappedMemory { regions, direct_map }
    }
}

impl Memory for MappedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if !inside(&self.regions, addr, buf.len()) {
            return false;
        }
        // SAFETY: `addr .. addr + len` lies inside a region mapped readable in this task for
        // its whole life (checked above); a byte copy needs no alignment, and a client writing
        // concurrently only changes the bytes copied, which the caller validates.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        if !inside(&self.regions, addr, data.len()) {
            return false;
        }
        // SAFETY: as in `read`, mapped writable.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        true
    }

    fn fill(&mut self, addr: u64, len: usize, byte: u8) -> bool {
        if !inside(&self.regions, addr, len) {
            return false;
        }
        // SAFETY: as in `write`.
        unsafe { core::ptr::write_bytes(addr as *mut u8, byte, len) };
        true
    }

    fn private_page(&mut self, addr: u64) -> Option<&mut [u8; PAGE_SIZE]> {
        if !addr.is_multiple_of(PAGE_SIZE as u64) || !inside(core::slice::from_ref(&self.direct_map), addr, PAGE_SIZE) {
            return None;
        }
        // SAFETY: a page-aligned page of the direct map; the frame table hands out a pool frame
        // as private only while it is mapped into no client (and never maps it into one
        // afterwards), so nothing but this task can reach it, and the reference borrows `self`
        // mutably, so no second one exists meanwhile.
        Some(unsafe { &mut *(addr as *mut [u8; PAGE_SIZE]) })
    }
}

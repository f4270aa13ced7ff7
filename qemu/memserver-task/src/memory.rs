//! `memserver_sel4_server::Memory`: copies in and out of what is mapped in this task.
//!
//! The direct map of the pool and the clients' control regions are mapped read-write here
//! for the task's life. Every access is checked against them first, so a wrong address from
//! the logic is a refusal, never a stray access. Clients can write their control regions and
//! the frames mapped into their windows concurrently: those bytes are only ever copied, through
//! `peer_memory::PeerMemory` (volatile copies, no reference into them is made), and the logic
//! validates the copies.

use alloc::vec::Vec;
use core::ptr::NonNull;

use memserver_sel4_abi::Region;
use memserver_sel4_server::Memory;
use memserver_sel4_server::kernel::inside;
use peer_memory::PeerMemory;
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

/// The checked range `addr .. addr + len` as distrusted memory (clients write their control
/// regions and window frames concurrently: every access is a volatile copy).
fn peer(regions: &[Region], addr: u64, len: usize) -> Option<PeerMemory> {
    if !inside(regions, addr, len) {
        return None;
    }
    let base = NonNull::new(usize::try_from(addr).ok()? as *mut u8)?;
    // SAFETY: `addr .. addr + len` lies inside a region mapped read-write in this task for its
    // whole life (checked above); no reference into client-reachable memory is ever made
    // (`private_page` hands out only frames mapped into no client).
    Some(unsafe { PeerMemory::new(base, len) })
}

impl Memory for MappedMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        peer(&self.regions, addr, buf.len()).is_some_and(|m| m.read(0, buf))
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        peer(&self.regions, addr, data.len()).is_some_and(|m| m.write(0, data))
    }

    fn fill(&mut self, addr: u64, len: usize, byte: u8) -> bool {
        peer(&self.regions, addr, len).is_some_and(|m| m.fill(0, len, byte))
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

    fn private_page_ref(&self, addr: u64) -> Option<&[u8; PAGE_SIZE]> {
        if !addr.is_multiple_of(PAGE_SIZE as u64) || !inside(core::slice::from_ref(&self.direct_map), addr, PAGE_SIZE) {
            return None;
        }
        // SAFETY: as in `private_page`: a page of the direct map nothing but this task can
        // reach; the reference borrows `self`, so no `&mut` from `private_page` exists meanwhile.
        Some(unsafe { &*(addr as *const [u8; PAGE_SIZE]) })
    }
}

//! A fake kernel and a fake memory for the tests: capabilities, mappings and translation
//! tables kept the way seL4 keeps them (a copy is a child of its source; deleting a mapped
//! frame capability unmaps it; a frame maps only where every table is present), every call
//! logged in one shared log with the memory's fills, so tests can check the order.

extern crate std;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::vec::Vec;

use memserver_sel4_abi::layout::Paging;
use memserver_sel4_abi::{Region, ServerBoot};

use crate::kernel::{Kernel, KernelError, Memory, inside};

/// One logged operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Copy { source: u64, destination: u64 },
    MapFrame { frame: u64, vspace: u64, vaddr: u64 },
    Unmap { frame: u64 },
    Delete { slot: u64 },
    Revoke { slot: u64 },
    Retype { untyped: u64, destination: u64 },
    MapTable { table: u64, vspace: u64, vaddr: u64 },
    Fill { addr: u64, len: usize, byte: u8 },
}

pub type Log = Rc<RefCell<Vec<Op>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cap {
    Frame { frame: u32, parent: Option<u64>, mapped: Option<(u64, u64)> },
    Table { mapped: bool },
    Untyped { capacity: u64, used: u64 },
    VSpace,
}

/// Which kernel call to make fail once, after `after` successful calls of that kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    MapFrame { after: u32 },
    Unmap,
}

pub struct FakeKernel {
    pub log: Log,
    /// What went to the debug console.
    pub console: Vec<std::string::String>,
    caps: HashMap<u64, Cap>,
    /// (vspace, level, table span index) present.
    tables: HashSet<(u64, u8, u64)>,
    /// (vspace, page address) → the frame capability mapped there.
    mappings: HashMap<(u64, u64), u64>,
    paging: Paging,
    pub fail: Option<Fail>,
    map_frames: u32,
}

impl FakeKernel {
    /// The memserver's CSpace as the root task hands it over for `boot`.
    pub fn for_boot(boot: &ServerBoot, log: Log) -> FakeKernel {
        let mut caps = HashMap::new();
        let s = &boot.slots;
        caps.insert(s.own_vspace, Cap::VSpace);
        for i in 0..boot.clients.len() as u64 {
            caps.insert(s.client_vspaces + i, Cap::VSpace);
        }
        for f in 0..boot.pool_frames {
            caps.insert(s.pool + u64::from(f), Cap::Frame { frame: f, parent: None, mapped: None });
        }
        for (i, &bits) in boot.paging_untyped_bits.iter().enumerate() {
            caps.insert(s.paging_untyped + i as u64, Cap::Untyped { capacity: 1 << (bits - 12), used: 0 });
        }
        FakeKernel {
            log,
            console: Vec::new(),
            caps,
            tables: HashSet::new(),
            mappings: HashMap::new(),
            paging: boot.paging,
            fail: None,
            map_frames: 0,
        }
    }

    fn push(&self, op: Op) {
        self.log.borrow_mut().push(op);
    }

    /// The frame capability mapped at `vaddr` of `vspace`, and its frame.
    pub fn mapped_at(&self, vspace: u64, vaddr: u64) -> Option<(u64, u32)> {
        let slot = *self.mappings.get(&(vspace, vaddr))?;
        match self.caps.get(&slot) {
            Some(Cap::Frame { frame, .. }) => Some((slot, *frame)),
            _ => None,
        }
    }

    /// Whether `slot` holds a capability.
    pub fn has_cap(&self, slot: u64) -> bool {
        self.caps.contains_key(&slot)
    }

    /// Page mappings in `vspace`.
    pub fn mappings_in(&self, vspace: u64) -> usize {
        self.mappings.keys().filter(|(v, _)| *v == vspace).count()
    }

    fn missing_level(&self, vspace: u64, vaddr: u64) -> Option<u8> {
        (1..=self.paging.levels).find(|&l| !self.tables.contains(&(vspace, l, vaddr >> self.paging.span_bits(l))))
    }

    fn unmap_slot(&mut self, slot: u64) {
        if let Some(Cap::Frame { mapped, .. }) = self.caps.get_mut(&slot)
            && let Some(at) = mapped.take()
        {
            self.mappings.remove(&at);
        }
    }

    fn delete_slot(&mut self, slot: u64) {
        self.unmap_slot(slot);
        self.caps.remove(&slot);
    }
}

impl Kernel for FakeKernel {
    fn copy_cap(&mut self, source: u64, destination: u64) -> Result<(), KernelError> {
        self.push(Op::Copy { source, destination });
        if self.caps.contains_key(&destination) {
            return Err(KernelError::DeleteFirst);
        }
        let Some(Cap::Frame { frame, .. }) = self.caps.get(&source).copied() else { return Err(KernelError::Other(3)) };
        self.caps.insert(destination, Cap::Frame { frame, parent: Some(source), mapped: None });
        Ok(())
    }

    fn map_frame(&mut self, frame: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError> {
        self.push(Op::MapFrame { frame, vspace, vaddr });
        if let Some(Fail::MapFrame { after }) = self.fail
            && self.map_frames == after
        {
            self.fail = None;
            return Err(KernelError::Other(10));
        }
        self.map_frames += 1;
        if self.caps.get(&vspace) != Some(&Cap::VSpace) {
            return Err(KernelError::Other(3));
        }
        if self.missing_level(vspace, vaddr).is_some() {
            return Err(KernelError::FailedLookup);
        }
        if self.mappings.contains_key(&(vspace, vaddr)) {
            return Err(KernelError::DeleteFirst);
        }
        match self.caps.get_mut(&frame) {
            Some(Cap::Frame { mapped: mapped @ None, .. }) => *mapped = Some((vspace, vaddr)),
            Some(Cap::Frame { .. }) => return Err(KernelError::DeleteFirst),
            _ => return Err(KernelError::Other(3)),
        }
        self.mappings.insert((vspace, vaddr), frame);
        Ok(())
    }

    fn unmap_frame(&mut self, frame: u64) -> Result<(), KernelError> {
        self.push(Op::Unmap { frame });
        if self.fail == Some(Fail::Unmap) {
            self.fail = None;
            return Err(KernelError::Other(10));
        }
        if !matches!(self.caps.get(&frame), Some(Cap::Frame { .. })) {
            return Err(KernelError::Other(3));
        }
        self.unmap_slot(frame);
        Ok(())
    }

    fn delete_cap(&mut self, slot: u64) -> Result<(), KernelError> {
        self.push(Op::Delete { slot });
        self.delete_slot(slot);
        Ok(())
    }

    fn revoke_cap(&mut self, slot: u64) -> Result<(), KernelError> {
        self.push(Op::Revoke { slot });
        let children: Vec<u64> = self
            .caps
            .iter()
            .filter(|(_, c)| matches!(c, Cap::Frame { parent: Some(p), .. } if *p == slot))
            .map(|(s, _)| *s)
            .collect();
        for child in children {
            self.delete_slot(child);
        }
        Ok(())
    }

    fn retype_table(&mut self, untyped: u64, destination: u64) -> Result<(), KernelError> {
        self.push(Op::Retype { untyped, destination });
        if self.caps.contains_key(&destination) {
            return Err(KernelError::DeleteFirst);
        }
        match self.caps.get_mut(&untyped) {
            Some(Cap::Untyped { capacity, used }) if *used < *capacity => *used += 1,
            Some(Cap::Untyped { .. }) => return Err(KernelError::NotEnoughMemory),
            _ => return Err(KernelError::Other(3)),
        }
        self.caps.insert(destination, Cap::Table { mapped: false });
        Ok(())
    }

    fn map_table(&mut self, table: u64, vspace: u64, vaddr: u64) -> Result<(), KernelError> {
        self.push(Op::MapTable { table, vspace, vaddr });
        match self.caps.get_mut(&table) {
            Some(Cap::Table { mapped: mapped @ false }) => *mapped = true,
            _ => return Err(KernelError::Other(3)),
        }
        let level = self.missing_level(vspace, vaddr).ok_or(KernelError::DeleteFirst)?;
        self.tables.insert((vspace, level, vaddr >> self.paging.span_bits(level)));
        Ok(())
    }

    fn debug_line(&mut self, line: core::fmt::Arguments<'_>) {
        self.console.push(std::format!("{line}"));
    }

    fn frame_address(&mut self, frame: u64) -> Result<u64, KernelError> {
        match self.caps.get(&frame) {
            Some(Cap::Frame { frame, .. }) => Ok(0x4000_0000 + u64::from(*frame) * 4096),
            _ => Err(KernelError::Other(2)),
        }
    }
}

/// The memserver's mapped memory: the regions given, lazily backed, zero at first.
pub struct FakeMemory {
    pub log: Log,
    regions: Vec<Region>,
    pages: HashMap<u64, [u8; 4096]>,
}

impl FakeMemory {
    pub fn new(regions: Vec<Region>, log: Log) -> FakeMemory {
        FakeMemory { log, regions, pages: HashMap::new() }
    }

    fn byte(&self, addr: u64) -> u8 {
        self.pages.get(&(addr & !4095)).map_or(0, |p| p[(addr & 4095) as usize])
    }

    fn set(&mut self, addr: u64, byte: u8) {
        self.pages.entry(addr & !4095).or_insert([0; 4096])[(addr & 4095) as usize] = byte;
    }

    /// Whether the page at `addr` is all zero.
    pub fn page_is_zero(&self, addr: u64) -> bool {
        self.pages.get(&addr).is_none_or(|p| p.iter().all(|&b| b == 0))
    }
}

impl Memory for FakeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        if !inside(&self.regions, addr, buf.len()) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.byte(addr + i as u64);
        }
        true
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        if !inside(&self.regions, addr, data.len()) {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            self.set(addr + i as u64, b);
        }
        true
    }

    fn fill(&mut self, addr: u64, len: usize, byte: u8) -> bool {
        self.log.borrow_mut().push(Op::Fill { addr, len, byte });
        if !inside(&self.regions, addr, len) {
            return false;
        }
        for i in 0..len as u64 {
            self.set(addr + i, byte);
        }
        true
    }

    fn private_page(&mut self, addr: u64) -> Option<&mut [u8; 4096]> {
        if !addr.is_multiple_of(4096) || !inside(&self.regions, addr, 4096) {
            return None;
        }
        Some(self.pages.entry(addr).or_insert([0; 4096]))
    }
}

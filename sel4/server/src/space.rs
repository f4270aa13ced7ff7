//! Address ranges whose translation tables the memserver makes itself, and the paging reserve
//! they come from.
//!
//! A [`Space`] is one contiguous range of one VSpace (a client's window, the memserver's
//! direct map) in a top-level region nobody else maps into, so the memserver knows exactly
//! which tables exist there: one presence bit per table span at each level. Tables are made
//! on demand, the first time a page under them is mapped, from the untyped objects of the
//! paging reserve ([`Tables`]), and stay for the task's life (a client that comes back finds
//! them in place). The reserve was sized by the root task from the same ranges, so it never
//! runs out; if it did, the mapping fails with `OutOfMemory` and nothing is half done.

use alloc::vec::Vec;

use memserver_sel4_abi::layout::Paging;

use crate::kernel::{Kernel, KernelError};

/// Why a range could not be described or a table not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceError {
    /// The range overflows the address space or the paging geometry is not valid.
    Range,
    /// No memory for the presence bits.
    NoMemory,
    /// The paging reserve is used up.
    ReserveExhausted,
    /// The kernel refused.
    Kernel(KernelError),
}

/// One range of one VSpace whose tables the memserver makes.
#[derive(Debug)]
pub struct Space {
    /// Slot of the VSpace capability.
    pub vspace: u64,
    /// First address (page aligned).
    pub base: u64,
    /// Pages.
    pub pages: u32,
    /// Per level below the root: one bit per table span the range touches.
    present: Vec<Vec<u64>>,
}

impl Space {
    /// A range of `pages` pages at `base` of the VSpace in slot `vspace`, with no table yet.
    pub fn new(paging: &Paging, vspace: u64, base: u64, pages: u32) -> Result<Space, SpaceError> {
        if !paging.is_valid() || !base.is_multiple_of(protocol::PAGE_SIZE as u64) {
            return Err(SpaceError::Range);
        }
        let bytes = u64::from(pages).checked_mul(protocol::PAGE_SIZE as u64).ok_or(SpaceError::Range)?;
        let last = base.checked_add(bytes.max(1) - 1).ok_or(SpaceError::Range)?;
        let mut present = Vec::new();
        present.try_reserve_exact(usize::from(paging.levels)).map_err(|_| SpaceError::NoMemory)?;
        for level in 1..=paging.levels {
            let bits = paging.span_bits(level);
            let spans = (last >> bits) - (base >> bits) + 1;
            let words = usize::try_from(spans.div_ceil(64)).map_err(|_| SpaceError::Range)?;
            let mut level_bits = Vec::new();
            level_bits.try_reserve_exact(words).map_err(|_| SpaceError::NoMemory)?;
            level_bits.resize(words, 0u64);
            present.push(level_bits);
        }
        Ok(Space { vspace, base, pages, present })
    }

    /// The address of page `page` of the range, if it is inside.
    pub fn page_addr(&self, page: u32) -> Option<u64> {
        (page < self.pages).then(|| self.base + u64::from(page) * protocol::PAGE_SIZE as u64)
    }

    /// Word index and bit of the table span of `level` that `vaddr` falls into.
    fn bit(&self, paging: &Paging, level: u8, vaddr: u64) -> Option<(usize, u64)> {
        let bits = paging.span_bits(level);
        let index = usize::try_from((vaddr >> bits).checked_sub(self.base >> bits)?).ok()?;
        Some((index / 64, 1u64 << (index % 64)))
    }

    fn has_table(&self, paging: &Paging, level: u8, vaddr: u64) -> bool {
        let Some((word, mask)) = self.bit(paging, level, vaddr) else { return false };
        self.present.get(usize::from(level) - 1).and_then(|bits| bits.get(word)).is_some_and(|w| w & mask != 0)
    }

    fn set_table(&mut self, paging: &Paging, level: u8, vaddr: u64) {
        let Some((word, mask)) = self.bit(paging, level, vaddr) else { return };
        if let Some(w) = self.present.get_mut(usize::from(level) - 1).and_then(|bits| bits.get_mut(word)) {
            *w |= mask;
        }
    }

    /// Makes every table `vaddr` (inside the range) still lacks, top level first.
    pub fn ensure_tables(
        &mut self,
        paging: &Paging,
        tables: &mut Tables,
        kernel: &mut impl Kernel,
        vaddr: u64,
    ) -> Result<(), SpaceError> {
        for level in 1..=paging.levels {
            if self.has_table(paging, level, vaddr) {
                continue;
            }
            let table = tables.make(kernel)?;
            let span_start = vaddr >> paging.span_bits(level) << paging.span_bits(level);
            kernel.map_table(table, self.vspace, span_start).map_err(SpaceError::Kernel)?;
            self.set_table(paging, level, vaddr);
        }
        Ok(())
    }

    /// Tables made in this range.
    pub fn tables(&self) -> u32 {
        self.present.iter().flatten().map(|w| w.count_ones()).sum()
    }
}

/// One untyped object of the paging reserve.
#[derive(Clone, Copy, Debug)]
struct Reserve {
    slot: u64,
    /// Tables (pages) it holds.
    capacity: u64,
    used: u64,
}

/// The paging reserve: untyped objects tables are retyped from, one page each, into
/// consecutive slots.
#[derive(Debug)]
pub struct Tables {
    reserve: Vec<Reserve>,
    first_slot: u64,
    made: u32,
}

impl Tables {
    /// The untyped objects at `first_untyped..` with the given size bits; tables go to slots
    /// `first_table..`.
    pub fn new(first_untyped: u64, size_bits: &[u8], first_table: u64) -> Result<Tables, SpaceError> {
        let mut reserve = Vec::new();
        reserve.try_reserve_exact(size_bits.len()).map_err(|_| SpaceError::NoMemory)?;
        for (i, &bits) in size_bits.iter().enumerate() {
            let pages_bits = u32::from(bits).checked_sub(12).filter(|&b| b < 48).ok_or(SpaceError::Range)?;
            reserve.push(Reserve { slot: first_untyped + i as u64, capacity: 1 << pages_bits, used: 0 });
        }
        Ok(Tables { reserve, first_slot: first_table, made: 0 })
    }

    /// A fresh table in the next table slot.
    fn make(&mut self, kernel: &mut impl Kernel) -> Result<u64, SpaceError> {
        let reserve = self.reserve.iter_mut().find(|r| r.used < r.capacity).ok_or(SpaceError::ReserveExhausted)?;
        let slot = self.first_slot + u64::from(self.made);
        kernel.retype_table(reserve.slot, slot).map_err(SpaceError::Kernel)?;
        reserve.used += 1;
        self.made += 1;
        Ok(slot)
    }

    /// Tables made so far.
    pub fn made(&self) -> u32 {
        self.made
    }

    /// Tables the reserve holds in all.
    pub fn capacity(&self) -> u64 {
        self.reserve.iter().map(|r| r.capacity).sum()
    }
}

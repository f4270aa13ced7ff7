//! Where things sit in a task's virtual address space, and the shape of its paging structures.
//!
//! The root task maps every image, IPC buffer, boot-info page, control region and heap below
//! [`ROOT_MAPPINGS_END`]. Above it, in a top-level region of its own that the root task never
//! touches, a client task's window starts at [`WINDOW_BASE`] (reserved and unmapped until
//! the memserver maps frames into it), the window of its heap client, if it has one, in the
//! next region at [`HEAP_WINDOW_BASE`], and the memserver keeps every pool frame mapped at
//! [`DIRECT_MAP_BASE`] in its own VSpace. Every translation table below the VSpace root in
//! those regions is then created by the memserver, on demand, so it knows exactly which ones
//! exist ([`Paging`]).

use serde::{Deserialize, Serialize};

/// Addresses the root task may map at lie below this (512 GiB: the first entry of the VSpace
/// root).
pub const ROOT_MAPPINGS_END: u64 = 1 << 39;
/// A client task's window starts here (the second entry of the VSpace root).
pub const WINDOW_BASE: u64 = 1 << 39;
/// The window of a client task's heap client (`heap` in `system.toml`) starts here: the
/// third entry of the VSpace root, so its tables are apart from the task's own window's.
pub const HEAP_WINDOW_BASE: u64 = 2 << 39;
/// The memserver task's direct map of the pool: frame `f` at `DIRECT_MAP_BASE + f * 4096`.
pub const DIRECT_MAP_BASE: u64 = 1 << 39;
/// Largest window or direct map: one entry of the VSpace root (512 GiB).
pub const REGION_MAX_BYTES: u64 = 1 << 39;

/// The translation tables below the VSpace root: what one table at each level spans.
///
/// Level 1 is the table the VSpace root points to; the last level holds page entries. All are
/// one page each (AArch64 with a 4 KiB granule: 9 index bits per level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paging {
    /// Bits of address one table of level 1 spans (level `i` spans `top_span_bits - 9 * (i - 1)`).
    pub top_span_bits: u8,
    /// Index bits of every table below the root.
    pub index_bits: u8,
    /// Levels of tables below the root.
    pub levels: u8,
}

impl Paging {
    /// AArch64, 4 KiB granule, four levels (48-bit or 44-bit addresses): below the VSpace root,
    /// tables spanning 512 GiB, 1 GiB and 2 MiB.
    pub const AARCH64: Paging = Paging { top_span_bits: 39, index_bits: 9, levels: 3 };

    /// Bits of address one table of `level` (1-based, below the root) spans.
    pub const fn span_bits(&self, level: u8) -> u8 {
        self.top_span_bits - self.index_bits * (level - 1)
    }

    /// Whether it is consistent with 4 KiB pages (the last level's entries are pages).
    pub const fn is_valid(&self) -> bool {
        self.levels >= 1
            && self.levels <= 4
            && self.index_bits >= 1
            && (self.top_span_bits as u32) == 12 + (self.index_bits as u32) * (self.levels as u32)
            && self.top_span_bits < 64
    }

    /// Tables needed to map every page of `[base, base + bytes)`: at each level, the number of
    /// table spans the range touches. `None` on overflow.
    pub fn tables_for(&self, base: u64, bytes: u64) -> Option<u64> {
        if bytes == 0 {
            return Some(0);
        }
        let last = base.checked_add(bytes - 1)?;
        let mut total = 0u64;
        for level in 1..=self.levels {
            let bits = self.span_bits(level);
            total = total.checked_add((last >> bits) - (base >> bits) + 1)?;
        }
        Some(total)
    }
}

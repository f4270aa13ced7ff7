//! `/proc/slabinfo` version 2.1, column for column (Linux `mm/slab_common.c`).
//!
//! The engine fills [`SlabInfoRow`]s; the server sends them in paged `SlabInfo` replies; any
//! side renders them with [`write_header`] and [`write_row`] into a `core::fmt::Write`.

use core::fmt::{self, Write};

use serde::{Deserialize, Serialize};

use crate::{CACHE_NAME_MAX, ClientId};

/// The statistics of one cache, as the kernel's `struct slabinfo` carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabInfoRow {
    /// The client that owns the cache.
    pub client: ClientId,
    /// The cache name (at most 31 bytes).
    pub name: heapless::String<CACHE_NAME_MAX>,
    /// Objects currently allocated (including objects held in the client's magazines).
    pub active_objs: u32,
    /// Objects in all slabs of the cache.
    pub num_objs: u32,
    /// Object stride in bytes (size plus debug metadata, rounded to the alignment), as the
    /// kernel prints `s->size`.
    pub objsize: u32,
    /// Objects per slab.
    pub objperslab: u32,
    /// Pages per slab (`1 << order`).
    pub pagesperslab: u32,
    /// Slabs with at least one allocated object.
    pub active_slabs: u32,
    /// All slabs of the cache.
    pub num_slabs: u32,
}

/// The kernel's two header lines, each ending in `\n`.
pub fn write_header(w: &mut impl Write) -> fmt::Result {
    w.write_str("slabinfo - version: 2.1\n")?;
    w.write_str("# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>")?;
    w.write_str(" : tunables <limit> <batchcount> <sharedfactor>")?;
    w.write_str(" : slabdata <active_slabs> <num_slabs> <sharedavail>\n")
}

/// One line in the kernel's format: `%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u :
/// slabdata %6lu %6lu %6lu\n`. Tunables and shared counts are 0 (SLUB has none either).
pub fn write_row(w: &mut impl Write, row: &SlabInfoRow) -> fmt::Result {
    write_row_as(w, row.name.as_str(), row)
}

/// As [`write_row`], with `name` in the name column instead of the row's own (a tool that
/// shows several clients' caches in one table qualifies them, e.g. `app/kmalloc-64`).
pub fn write_row_as(w: &mut impl Write, name: &str, row: &SlabInfoRow) -> fmt::Result {
    writeln!(
        w,
        "{:<17} {:>6} {:>6} {:>6} {:>4} {:>4} : tunables {:>4} {:>4} {:>4} : slabdata {:>6} {:>6} {:>6}",
        name,
        row.active_objs,
        row.num_objs,
        row.objsize,
        row.objperslab,
        row.pagesperslab,
        0,
        0,
        0,
        row.active_slabs,
        row.num_slabs,
        0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Buf(heapless::String<512>);
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.push_str(s).map_err(|_| fmt::Error)
        }
    }

    #[test]
    fn slabinfo_matches_kernel_columns() {
        let mut b = Buf(heapless::String::new());
        write_header(&mut b).unwrap();
        let row = SlabInfoRow {
            client: 1,
            name: heapless::String::try_from("kmalloc-64").unwrap(),
            active_objs: 12,
            num_objs: 64,
            objsize: 64,
            objperslab: 64,
            pagesperslab: 1,
            active_slabs: 1,
            num_slabs: 1,
        };
        write_row(&mut b, &row).unwrap();
        let text = b.0.as_str();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
        assert_eq!(
            lines.next(),
            Some(
                "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "kmalloc-64            12     64     64   64    1 : tunables    0    0    0 : slabdata      1      1      0"
            )
        );
    }
}

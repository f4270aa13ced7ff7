//! `SLAB_CACHE_DMA` objects' physical addresses (`DmaAddr`): an address on seL4, where the
//! memserver holds its frames' capabilities, `NotSupported` on the host; the object checked
//! first on both.

use protocol::PAGE_SIZE;
use protocol::flags::SLAB_CACHE_DMA;
use protocol::{DmaAddress, Error};

use super::{CLIENT, connect};
use crate::client::{Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

pub fn dma_addr(h: &mut dyn Harness) -> Result<(), Failure> {
    let knows = h.knows_bus_addresses();
    let mut c = connect(h, CLIENT)?;
    let dma = ok("create dma", c.create("dma", 256, 0, SLAB_CACHE_DMA, false))?.cache;
    let plain = ok("create plain", c.create("plain", 256, 0, 0, false))?.cache;
    let first = ok("alloc", c.alloc(dma))?.handle;
    let second = ok("alloc", c.alloc(dma))?.handle;
    let other = ok("alloc plain", c.alloc(plain))?.handle;
    // The object is checked first, on every platform.
    err("object of a cache without SLAB_CACHE_DMA", c.dma_addr(other), Error::InvalidArgument)?;
    if knows {
        let a: DmaAddress = ok("dma_addr", c.dma_addr(first))?;
        let b: DmaAddress = ok("dma_addr", c.dma_addr(second))?;
        let page = PAGE_SIZE as u64;
        ensure!(a.addr != 0 && b.addr != 0, "a zero physical address: {a:?} {b:?}");
        ensure!(a.addr % page == first.0 % page, "{a:?}: not at the object's offset in its page ({first:?})");
        ensure!(a.contiguous >= 256 && b.contiguous >= 256, "a 256-byte object within one page: {a:?} {b:?}");
        if first.0 / page == second.0 / page {
            // One page, one frame: the addresses differ as the handles do.
            ensure!(
                b.addr.wrapping_sub(a.addr) == second.0.wrapping_sub(first.0),
                "objects of one page at {a:?} and {b:?} for handles {first:?} and {second:?}"
            );
        }
    } else {
        err("dma_addr", c.dma_addr(first), Error::NotSupported)?;
    }
    ok("free", c.free(dma, second))?;
    err("freed object", c.dma_addr(second), Error::InvalidObject)?;
    ok("free", c.free(dma, first))?;
    ok("free", c.free(plain, other))?;
    Ok(())
}

//! Rules 1-3: `kmem_cache_create()` arguments, alignment, slab order.

use alloc::format;
use protocol::flags::{SLAB_ALL, SLAB_HWCACHE_ALIGN};

use protocol::{Error, PAGE_SIZE, Reply, Request};

use super::{CLIENT, connect};
use crate::client::{Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

pub fn bad_names(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("empty name", c.create("", 64, 0, 0, false), Error::InvalidArgument)?;
    // A 32-byte name is no `CacheName`, so no typed request carries one: hand-made bytes
    // (the 31-byte encoding with one more name byte) must be refused by the server's decoder.
    let name = protocol::cache_name(&"n".repeat(31)).map_err(|e| format!("31-byte name: {e:?}"))?;
    let request = Request::CacheCreate { name, size: 64, align: 0, flags: 0, ctor: false, dtor: false };
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    let mut bytes = protocol::encode_request(&request, &mut buf).map_err(|e| format!("encode: {e:?}"))?.to_vec();
    ensure!(bytes.get(1) == Some(&31), "name length is not the second byte: {bytes:?}");
    bytes[1] = 32;
    bytes.insert(2, b'n');
    let reply = c.call_raw(&bytes)?;
    ensure!(reply == Reply::Error(Error::Malformed), "32-byte name: {reply:?}");
    ok("31-byte name", c.create(&"n".repeat(31), 64, 0, 0, false))?;
    Ok(())
}

/// Names slabinfo could not show unambiguously: invisible, right-to-left, non-ASCII, spaces and
/// control characters. Sent as the wire carries them (the client library's own check is
/// bypassed), so the server's check is what refuses them.
pub fn disguising_names(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    for name in ["dentry\u{200b}", "\u{202e}yrtned", "\u{feff}x", "caf\u{e9}", "a\u{a0}b", "a b", "a\tb", "a\u{7f}b"] {
        let name = protocol::CacheName::try_from(name).map_err(|_| "name longer than 31 bytes")?;
        let shown = alloc::format!("{name:?}");
        match c.call(&protocol::Request::CacheCreate {
            name,
            size: 64,
            align: 0,
            flags: 0,
            ctor: false,
            dtor: false,
        })? {
            protocol::Reply::Error(Error::InvalidArgument) => {}
            other => return Err(alloc::format!("name {shown}: {other:?}")),
        }
    }
    ok("printable ASCII punctuation", c.create("a.b-c_d:e+g", 64, 0, 0, false))?;
    Ok(())
}

pub fn duplicate_name(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    ok("first", c.create("twice", 64, 0, 0, false))?;
    err("second", c.create("twice", 128, 0, 0, false), Error::NameTaken)?;
    err("a kmalloc name", c.create("kmalloc-64", 64, 0, 0, false), Error::NameTaken)?;
    Ok(())
}

pub fn bad_sizes(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("size 0", c.create("size0", 0, 0, 0, false), Error::InvalidArgument)?;
    err("size 64 KiB + 1", c.create("huge", 65_537, 0, 0, false), Error::InvalidArgument)?;
    err("size u32::MAX", c.create("huger", u32::MAX, 0, 0, false), Error::InvalidArgument)?;
    ok("size 1", c.create("size1", 1, 0, 0, false))?;
    ok("size 64 KiB", c.create("size64k", 65_536, 0, 0, false))?;
    Ok(())
}

pub fn bad_alignments(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    for align in [3, 12, 8192, u32::MAX] {
        err("align", c.create("aligned", 64, align, 0, false), Error::InvalidArgument)?;
    }
    ok("align 4096", c.create("page-aligned", 64, 4096, 0, false))?;
    Ok(())
}

pub fn unknown_flags(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("bit 0", c.create("flags", 64, 0, 1, false), Error::InvalidArgument)?;
    err("every other bit", c.create("flags", 64, 0, !SLAB_ALL, false), Error::InvalidArgument)?;
    ok("every known flag", c.create("flags", 64, 0, SLAB_ALL, false))?;
    Ok(())
}

/// Linux `calculate_alignment()`.
fn linux_alignment(flags: u32, align: u32, size: u32) -> u32 {
    let mut align = align;
    if flags & SLAB_HWCACHE_ALIGN != 0 {
        let mut ralign = 64;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        align = align.max(ralign);
    }
    align.max(8)
}

pub fn hwcache_align(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    for (i, (size, align)) in [(8, 0), (20, 0), (24, 0), (40, 0), (100, 0), (20, 128), (1, 0)].into_iter().enumerate() {
        let name = alloc::format!("hw-{i}");
        let created = ok("create", c.create(&name, size, align, SLAB_HWCACHE_ALIGN, false))?;
        let want = linux_alignment(SLAB_HWCACHE_ALIGN, align, size);
        ensure!(created.layout.align == want, "size {size} align {align}: got {} want {want}", created.layout.align);
        ensure!(created.layout.stride % want == 0, "stride {} not a multiple of {want}", created.layout.stride);
        let handle = ok("alloc", c.alloc(created.cache))?.handle;
        ensure!(handle.0 % u64::from(want) == 0, "object {:#x} not {want}-aligned", handle.0);
    }
    let plain = ok("create", c.create("no-hw", 20, 0, 0, false))?;
    ensure!(plain.layout.align == 8, "without HWCACHE_ALIGN a 20-byte object is 8-aligned, got {}", plain.layout.align);
    ensure!(plain.layout.stride == 24, "stride of 20 bytes at align 8 is 24, got {}", plain.layout.stride);
    Ok(())
}

pub fn explicit_align(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("align256", 100, 256, 0, false))?;
    ensure!(created.layout.align == 256, "align {}", created.layout.align);
    ensure!(created.layout.stride == 256, "stride {}", created.layout.stride);
    for _ in 0..40 {
        let handle = ok("alloc", c.alloc(created.cache))?.handle;
        ensure!(handle.0 % 256 == 0, "object {:#x} not 256-aligned", handle.0);
    }
    Ok(())
}

pub fn slab_order(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let sizes = [8u32, 16, 24, 54, 100, 192, 200, 256, 500, 700, 1000, 1500, 3000, 4096, 6000, 8192];
    for (i, size) in sizes.into_iter().enumerate() {
        let created = ok("create", c.create(&alloc::format!("order-{i}"), size, 0, 0, false))?;
        let l = created.layout;
        let stride = l.stride as usize;
        let slab = l.pages_per_slab as usize * PAGE_SIZE;
        ensure!(l.pages_per_slab.is_power_of_two() && l.pages_per_slab <= 8, "size {size}: {} pages", l.pages_per_slab);
        ensure!(l.objects_per_slab as usize == slab / stride, "size {size}: {} objects", l.objects_per_slab);
        // Leftover of each order 0..=3, as a fraction of the slab (in 1/65536ths).
        let leftover = |order: u32| {
            let bytes = PAGE_SIZE << order;
            let objs = bytes / stride;
            if objs == 0 { usize::MAX } else { (bytes - objs * stride) * 65536 / bytes }
        };
        let chosen = l.pages_per_slab.trailing_zeros();
        let acceptable = (0..=3).find(|&o| leftover(o).saturating_mul(16) <= 65536);
        match acceptable {
            // The smallest order whose leftover is at most 1/16 of the slab.
            Some(order) => ensure!(chosen == order, "size {size}: order {chosen}, want {order}"),
            // None qualifies: the order that wastes the least.
            None => {
                let best = (0..=3).map(leftover).min().unwrap_or(usize::MAX);
                ensure!(leftover(chosen) == best, "size {size}: order {chosen} wastes more than order-{best}");
            }
        }
    }
    Ok(())
}

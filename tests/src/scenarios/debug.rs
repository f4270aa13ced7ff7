//! Rule 10: debug flags, with Linux's bytes.

use protocol::flags::{
    POISON_END, POISON_FREE, RED_ACTIVE, SLAB_CACHE_DMA, SLAB_CONSISTENCY_CHECKS, SLAB_PANIC, SLAB_POISON,
    SLAB_RED_ZONE, SLAB_STORE_USER,
};
use protocol::{Error, Handle, Owner};

use super::{CLIENT, connect};
use crate::client::{Failure, any_err, err, ok, outcome};
use crate::ensure;
use crate::harness::Harness;

pub fn poison_pattern(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("poisoned", 40, 0, SLAB_POISON, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    c.write(handle, 0, &[0x11; 40])?;
    ok("free", c.free(created.cache, handle))?;
    let bytes = c.read(handle, 0, 40)?;
    ensure!(bytes[..39].iter().all(|&b| b == POISON_FREE), "free object not 0x6b: {:02x?}", &bytes[..39]);
    ensure!(bytes[39] == POISON_END, "last byte {:#04x}, want 0xa5", bytes[39]);
    Ok(())
}

pub fn poison_write_after_free(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("uaf", 64, 0, SLAB_POISON, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    ok("free", c.free(created.cache, handle))?;
    c.write(handle, 17, &[0x00])?;
    // The corrupted object is the next one handed out, whichever order the slab uses: keep
    // allocating until the server reports it.
    let mut report = None;
    for _ in 0..=created.layout.objects_per_slab {
        match outcome("alloc", c.alloc(created.cache))? {
            Ok(_) => continue,
            Err(e) => {
                report = Some(e);
                break;
            }
        }
    }
    let Some(Error::PoisonCorrupted(found)) = report else {
        return Err(alloc::format!("write after free not reported: {report:?}"));
    };
    ensure!(found.cache == created.cache, "reported cache {:?}", found.cache);
    ensure!(found.object == handle, "reported object {:#x}, want {:#x}", found.object.0, handle.0);
    ensure!(found.offset == 17, "reported offset {}, want 17", found.offset);
    ensure!(found.found == 0x00 && found.expected == POISON_FREE, "bytes {:#x}/{:#x}", found.found, found.expected);
    ok("the server goes on", c.alloc(created.cache))?;
    Ok(())
}

pub fn red_zone_overrun(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("redzone", 32, 0, SLAB_RED_ZONE, false))?;
    ensure!(created.layout.stride >= 32 + 16, "stride {} leaves no room for red zones", created.layout.stride);
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    let neighbour = ok("alloc", c.alloc(created.cache))?.handle;
    let zone = c.read(handle, 32, 1)?;
    ensure!(zone[0] == RED_ACTIVE, "right red zone of a live object is {:#04x}, want 0xcc", zone[0]);
    c.write(handle, 32, &[0x42])?;
    match any_err("free after overrun", c.free(created.cache, handle))? {
        Error::RedZoneCorrupted(found) => {
            ensure!(found.object == handle, "reported object {:#x}", found.object.0);
            ensure!(found.offset == 32, "reported offset {}, want 32", found.offset);
            ensure!(
                found.found == 0x42 && found.expected == RED_ACTIVE,
                "bytes {:#x}/{:#x}",
                found.found,
                found.expected
            );
        }
        other => return Err(alloc::format!("expected RedZoneCorrupted, got {other:?}")),
    }
    ok("the neighbour frees cleanly", c.free(created.cache, neighbour))?;
    Ok(())
}

pub fn red_zone_underrun(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("redzone-left", 32, 0, SLAB_RED_ZONE, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    c.write(Handle(handle.0 - 1), 0, &[0x42])?;
    match any_err("free after underrun", c.free(created.cache, handle))? {
        Error::RedZoneCorrupted(found) => ensure!(found.offset == -1, "reported offset {}, want -1", found.offset),
        other => return Err(alloc::format!("expected RedZoneCorrupted, got {other:?}")),
    }
    Ok(())
}

pub fn store_user(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("tracked", 64, 0, SLAB_STORE_USER, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    let Owner { alloc, free } = ok("owner", c.object_owner(handle))?;
    let alloc = alloc.ok_or("no alloc record")?;
    ensure!(alloc.client == c.id, "alloc by client {}, want {}", alloc.client, c.id);
    ensure!(free.is_none(), "free record before any free: {free:?}");
    ok("free", c.free(created.cache, handle))?;
    let Owner { alloc: alloc2, free } = ok("owner", c.object_owner(handle))?;
    let free = free.ok_or("no free record")?;
    ensure!(alloc2 == Some(alloc), "alloc record changed by free");
    ensure!(free.client == c.id && free.seq > alloc.seq, "free record {free:?} after alloc {alloc:?}");
    err("owner of a non-object", c.object_owner(Handle(handle.0 + 8)), Error::InvalidObject)?;
    Ok(())
}

pub fn owner_without_store_user(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("untracked", 64, 0, 0, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    err("owner", c.object_owner(handle), Error::NotSupported)
}

pub fn debug_bypasses_magazines(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    for (i, flag) in [SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SLAB_CONSISTENCY_CHECKS].into_iter().enumerate() {
        let created = ok("create", c.create(&alloc::format!("debug-{i}"), 64, 0, flag, false))?;
        ensure!(
            created.debug && created.slot.is_none(),
            "flag {flag:#x}: debug {} slot {:?}",
            created.debug,
            created.slot
        );
        ensure!(created.magazine_capacity == 0, "flag {flag:#x}: capacity {}", created.magazine_capacity);
    }
    let plain = ok("create", c.create("not-debug", 64, 0, 0, false))?;
    ensure!(!plain.debug && plain.slot.is_some(), "a plain cache got no magazine slot");
    Ok(())
}

pub fn consistency_checks(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let flags = SLAB_CONSISTENCY_CHECKS | SLAB_POISON | SLAB_RED_ZONE;
    let created = ok("create", c.create("checked", 96, 0, flags, false))?;
    let mut held = alloc::vec::Vec::new();
    for _ in 0..(created.layout.objects_per_slab + 3) {
        held.push(ok("alloc", c.alloc(created.cache))?.handle);
    }
    let first = held[0];
    for handle in held {
        ok("free", c.free(created.cache, handle))?;
    }
    err("double free", c.free(created.cache, first), Error::DoubleFree)?;
    ok("shrink", c.shrink(created.cache))?;
    ok("destroy", c.destroy(created.cache))?;
    Ok(())
}

pub fn panic_dma_flags(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("dma-panic", 64, 0, SLAB_PANIC | SLAB_CACHE_DMA, false))?;
    ensure!(!created.debug, "PANIC|CACHE_DMA made a debug cache");
    let info = ok("info", c.cache_info(created.cache))?;
    ensure!(info.flags & (SLAB_PANIC | SLAB_CACHE_DMA) == SLAB_PANIC | SLAB_CACHE_DMA, "flags {:#x}", info.flags);
    Ok(())
}

//! Rules 4-8 and 12: alloc, zalloc, ctor, free validation, destroy, shrink, isolation.

use alloc::vec;
use alloc::vec::Vec;

use protocol::{Error, Handle, Object};

use super::{CLIENT, PEER, connect};
use crate::client::{Failure, any_err, err, ok, outcome};
use crate::ensure;
use crate::harness::Harness;

fn pattern(handle: Handle, len: usize) -> Vec<u8> {
    (0..len).map(|i| (handle.0 as usize / 8 + i) as u8 ^ 0x5a).collect()
}

pub fn distinct_aligned(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("distinct", 24, 0, 0, false))?;
    let (size, stride, align) = (24usize, created.layout.stride as u64, u64::from(created.layout.align));
    let mut handles = Vec::new();
    for _ in 0..300 {
        let handle = ok("alloc", c.alloc(created.cache))?.handle;
        ensure!(handle.0 % align == 0, "object {:#x} not {align}-aligned", handle.0);
        ensure!(handle.0 + size as u64 <= c.window_size, "object {:#x} outside the window", handle.0);
        c.write(handle, 0, &pattern(handle, size))?;
        handles.push(handle);
    }
    let mut sorted = handles.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        ensure!(pair[1].0 - pair[0].0 >= stride, "objects {:#x} and {:#x} overlap", pair[0].0, pair[1].0);
    }
    for &handle in &handles {
        ensure!(c.read(handle, 0, size)? == pattern(handle, size), "object {:#x} was overwritten", handle.0);
        ok("free", c.free(created.cache, handle))?;
    }
    Ok(())
}

pub fn quota(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("quota", 4096, 0, 0, false))?;
    let mut held = Vec::new();
    let failure = loop {
        match outcome("alloc", c.alloc(created.cache))? {
            Ok(object) => held.push(object.handle),
            Err(e) => break e,
        }
        ensure!(held.len() < 1 << 20, "quota never reached");
    };
    ensure!(failure == Error::QuotaExceeded, "expected QuotaExceeded, got {failure:?}");
    let stats = ok("stats", c.stats())?;
    ensure!(stats.client_pages <= stats.quota_pages, "{} pages over quota {}", stats.client_pages, stats.quota_pages);
    let info = ok("info", c.cache_info(created.cache))?;
    err("again", c.alloc(created.cache), Error::QuotaExceeded)?;
    ensure!(ok("info", c.cache_info(created.cache))? == info, "a failed alloc changed the cache");
    ensure!(ok("stats", c.stats())?.client_pages == stats.client_pages, "a failed alloc changed the accounting");
    let last = held.pop().ok_or("nothing allocated")?;
    ok("free", c.free(created.cache, last))?;
    ok("alloc after free", c.alloc(created.cache))?;
    Ok(())
}

pub fn zalloc_zeroes(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("zeroed", 200, 0, 0, false))?;
    let mut dirty = Vec::new();
    for _ in 0..8 {
        let handle = ok("alloc", c.alloc(created.cache))?.handle;
        c.write(handle, 0, &[0xff; 200])?;
        dirty.push(handle);
    }
    for handle in dirty {
        ok("free", c.free(created.cache, handle))?;
    }
    for _ in 0..8 {
        let handle = ok("zalloc", c.zalloc(created.cache))?.handle;
        ensure!(c.read(handle, 0, 200)? == vec![0u8; 200], "zalloc object {:#x} not zeroed", handle.0);
    }
    Ok(())
}

pub fn zalloc_ctor(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("with-ctor", 64, 0, 0, true))?;
    err("zalloc", c.zalloc(created.cache), Error::InvalidArgument)?;
    ok("alloc still works", c.alloc(created.cache))?;
    Ok(())
}

/// Constructors as Linux runs them: over every object of a new slab when the slab is first
/// handed out (the allocation that created it is reported `fresh`, and the client constructs
/// the whole slab), never again when an object is reused.
pub fn ctor_fresh_once(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("ctor", 128, 0, 0, true))?;
    let per_slab = created.layout.objects_per_slab as usize;
    let mut first = Vec::new();
    for i in 0..per_slab {
        let Object { handle, fresh } = ok("alloc", c.alloc(created.cache))?;
        ensure!(fresh == (i == 0), "object {i} ({:#x}) of a new slab: fresh {fresh}", handle.0);
        first.push(handle);
    }
    for &handle in &first {
        ok("free", c.free(created.cache, handle))?;
    }
    for _ in 0..per_slab {
        let Object { handle, fresh } = ok("realloc", c.alloc(created.cache))?;
        ensure!(!fresh, "reused object {:#x} reported fresh", handle.0);
        ensure!(first.contains(&handle), "reuse handed out {:#x}, not a freed object", handle.0);
    }
    let Object { handle, fresh } = ok("alloc from a second slab", c.alloc(created.cache))?;
    ensure!(fresh, "object {:#x}, the first of the second slab, not fresh", handle.0);
    let Object { handle, fresh } = ok("alloc from the second slab again", c.alloc(created.cache))?;
    ensure!(!fresh, "object {:#x} of a slab already constructed reported fresh", handle.0);
    Ok(())
}

pub fn free_outside_window(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("outside", 64, 0, 0, false))?;
    ok("alloc", c.alloc(created.cache))?;
    for bogus in [1u64 << 40, !7u64, (1 << 32) + 64] {
        err("free", c.free(created.cache, Handle(bogus)), Error::InvalidObject)?;
    }
    Ok(())
}

pub fn free_inside_object(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("inside", 64, 0, 0, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    for delta in [8u64, 32, 56, 1, 4] {
        err("free inside", c.free(created.cache, Handle(handle.0 + delta)), Error::InvalidObject)?;
    }
    ok("free the object itself", c.free(created.cache, handle))?;
    Ok(())
}

pub fn free_wrong_cache(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let a = ok("create a", c.create("cache-a", 64, 0, 0, false))?.cache;
    let b = ok("create b", c.create("cache-b", 64, 0, 0, false))?.cache;
    let handle = ok("alloc", c.alloc(a))?.handle;
    ok("alloc b", c.alloc(b))?;
    err("free to b", c.free(b, handle), Error::WrongCache)?;
    ok("free to a", c.free(a, handle))?;
    Ok(())
}

pub fn double_free(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("double", 48, 0, 0, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    let other = ok("alloc", c.alloc(created.cache))?.handle;
    ok("free", c.free(created.cache, handle))?;
    err("free again", c.free(created.cache, handle), Error::DoubleFree)?;
    ok("the neighbour is still live", c.free(created.cache, other))?;
    Ok(())
}

pub fn rejected_free_changes_nothing(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("unchanged", 64, 0, 0, false))?;
    let other = ok("create", c.create("unchanged-2", 64, 0, 0, false))?;
    let handle = ok("alloc", c.alloc(created.cache))?.handle;
    let freed = ok("alloc", c.alloc(created.cache))?.handle;
    ok("free", c.free(created.cache, freed))?;
    let info = ok("info", c.cache_info(created.cache))?;
    let stats = ok("stats", c.stats())?;
    any_err("inside", c.free(created.cache, Handle(handle.0 + 8)))?;
    any_err("wrong cache", c.free(other.cache, handle))?;
    any_err("double", c.free(created.cache, freed))?;
    any_err("outside", c.free(created.cache, Handle(1 << 45)))?;
    ensure!(ok("info", c.cache_info(created.cache))? == info, "rejected frees changed the cache");
    let after = ok("stats", c.stats())?;
    ensure!(
        after.client_pages == stats.client_pages && after.frees == stats.frees,
        "rejected frees changed accounting"
    );
    ok("the object is still freeable", c.free(created.cache, handle))?;
    Ok(())
}

pub fn destroy_busy(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("busy", 64, 0, 0, false))?;
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(ok("alloc", c.alloc(created.cache))?.handle);
    }
    err("destroy", c.destroy(created.cache), Error::CacheBusy { live: 3 })?;
    live.push(ok("alloc after busy destroy", c.alloc(created.cache))?.handle);
    for handle in live {
        ok("free", c.free(created.cache, handle))?;
    }
    ok("destroy when empty", c.destroy(created.cache))?;
    Ok(())
}

pub fn destroy_reuse(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let before = ok("stats", c.stats())?.client_pages;
    let first = ok("create", c.create("reused", 64, 0, 0, false))?.cache;
    let handle = ok("alloc", c.alloc(first))?.handle;
    ok("free", c.free(first, handle))?;
    ok("destroy", c.destroy(first))?;
    ensure!(ok("stats", c.stats())?.client_pages == before, "destroy left pages behind");
    err("alloc on a destroyed cache", c.alloc(first), Error::NoSuchCache)?;
    err("destroy twice", c.destroy(first), Error::NoSuchCache)?;
    let second = ok("create the same name", c.create("reused", 64, 0, 0, false))?.cache;
    ensure!(second != first, "a destroyed cache id was handed out again");
    err("old id still dead", c.alloc(first), Error::NoSuchCache)?;
    Ok(())
}

pub fn shrink(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("shrinkable", 512, 0, 0, false))?;
    let mut held = Vec::new();
    for _ in 0..(created.layout.objects_per_slab * 4) {
        held.push(ok("alloc", c.alloc(created.cache))?.handle);
    }
    let full = ok("stats", c.stats())?;
    for handle in held {
        ok("free", c.free(created.cache, handle))?;
    }
    let pages = ok("shrink", c.shrink(created.cache))?.pages;
    ensure!(pages == 4 * created.layout.pages_per_slab, "shrink released {pages} pages");
    let after = ok("stats", c.stats())?;
    ensure!(
        after.client_pages + pages == full.client_pages,
        "client pages {} -> {}",
        full.client_pages,
        after.client_pages
    );
    ensure!(after.pool_free_pages == full.pool_free_pages + pages, "pool did not get the pages back");
    let info = ok("info", c.cache_info(created.cache))?;
    ensure!(info.num_slabs == 0 && info.num_objs == 0, "slabs left: {}", info.num_slabs);
    ensure!(ok("shrink again", c.shrink(created.cache))?.pages == 0, "second shrink released pages");
    ok("usable after shrink", c.alloc(created.cache))?;
    Ok(())
}

pub fn other_clients_handles(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut a = connect(h, CLIENT)?;
    let mut b = connect(h, PEER)?;
    let cache = ok("create", a.create("isolated", 64, 0, 0, false))?.cache;
    let handle = ok("alloc", a.alloc(cache))?.handle;
    a.write(handle, 0, &pattern(handle, 64))?;
    let large = ok("kmalloc", a.kmalloc(100))?.handle;
    // The peer names the owner's cache id and handles: its own ids and window are separate.
    let refused = any_err("peer free", b.free(cache, handle))?;
    ensure!(matches!(refused, Error::NoSuchCache | Error::InvalidObject), "peer free: {refused:?}");
    let peer_cache = ok("peer create", b.create("isolated", 64, 0, 0, false))?.cache;
    err("peer free of owner's offset", b.free(peer_cache, handle), Error::InvalidObject)?;
    let refused = any_err("peer kfree", b.kfree(large))?;
    ensure!(matches!(refused, Error::InvalidObject | Error::DoubleFree), "peer kfree: {refused:?}");
    any_err("peer asks for the owner record", b.object_owner(handle))?;
    ensure!(a.read(handle, 0, 64)? == pattern(handle, 64), "owner's object changed");
    ok("owner frees", a.free(cache, handle))?;
    ok("owner kfrees", a.kfree(large))?;
    Ok(())
}

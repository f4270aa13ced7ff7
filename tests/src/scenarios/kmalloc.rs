//! Rule 11: kmalloc, as the server has it: size classes, natural alignment, `kfree` of any
//! cache's object, the kmalloc caches' magazine slots and the tables that let the client
//! find an object's cache without asking.

use alloc::vec::Vec;

use protocol::control::{MagazineRole, NO_SLOT, NOT_KMALLOC, PageOwnerKind};
use protocol::{Error, ExchangeOp, Handle, PAGE_SIZE};

use super::{CLIENT, connect};
use crate::client::{Client, Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

fn active(c: &mut Client, name: &str) -> Result<u32, Failure> {
    let rows = ok("slabinfo", c.slabinfo(false))?;
    rows.iter().find(|r| r.name.as_str() == name).map(|r| r.active_objs).ok_or_else(|| alloc::format!("no {name} row"))
}

fn served_from(c: &mut Client, size: u32, class: &str) -> Result<Handle, Failure> {
    let before = active(c, class)?;
    let handle = ok("kmalloc", c.kmalloc(size))?.handle;
    let after = active(c, class)?;
    ensure!(after == before + 1, "kmalloc({size}) did not come from {class} ({before} -> {after})");
    Ok(handle)
}

pub fn size_class_54(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let handle = served_from(&mut c, 54, "kmalloc-64")?;
    ensure!(handle.0 % 64 == 0, "kmalloc-64 object {:#x} not 64-aligned", handle.0);
    c.write(handle, 0, &[7; 54])?;
    ok("kfree", c.kfree(handle))?;
    Ok(())
}

pub fn classes(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let table = [
        (1, "kmalloc-8"),
        (8, "kmalloc-8"),
        (9, "kmalloc-16"),
        (17, "kmalloc-32"),
        (33, "kmalloc-64"),
        (65, "kmalloc-96"),
        (97, "kmalloc-128"),
        (129, "kmalloc-192"),
        (193, "kmalloc-256"),
        (257, "kmalloc-512"),
        (513, "kmalloc-1k"),
        (1025, "kmalloc-2k"),
        (2049, "kmalloc-4k"),
        (4097, "kmalloc-8k"),
        (8192, "kmalloc-8k"),
    ];
    for (size, class) in table {
        let handle = served_from(&mut c, size, class)?;
        ok("kfree", c.kfree(handle))?;
    }
    Ok(())
}

pub fn large(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let before = ok("stats", c.stats())?.client_pages;
    let handle = ok("kmalloc 20000", c.kmalloc(20_000))?.handle;
    ensure!(handle.0 % PAGE_SIZE as u64 == 0, "large object {:#x} not page aligned", handle.0);
    let during = ok("stats", c.stats())?.client_pages;
    ensure!(during >= before + 5, "20000 bytes took {} pages", during - before);
    c.write(handle, 19_990, &[1; 10])?;
    ok("kfree", c.kfree(handle))?;
    ensure!(ok("stats", c.stats())?.client_pages == before, "pages not returned by kfree");
    err("kfree twice", c.kfree(handle), Error::DoubleFree)?;
    Ok(())
}

pub fn kfree_checks(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let handle = ok("kmalloc", c.kmalloc(100))?.handle;
    ok("kfree", c.kfree(handle))?;
    err("kfree twice", c.kfree(handle), Error::DoubleFree)?;
    err("kfree of nothing", c.kfree(Handle(1 << 44)), Error::InvalidObject)?;
    let live = ok("kmalloc", c.kmalloc(100))?.handle;
    err("kfree inside", c.kfree(Handle(live.0 + 8)), Error::InvalidObject)?;
    ok("kfree", c.kfree(live))?;
    Ok(())
}

pub fn zero(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("kmalloc(0)", c.kmalloc(0), Error::InvalidArgument)
}

/// Linux's `kfree()` frees an object of any cache to the cache it belongs to.
pub fn kfree_takes_any_cache_object_back_to_its_cache(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let cache = ok("create", c.create("mine", 40, 0, 0, false))?.cache;
    let object = ok("alloc", c.alloc(cache))?.handle;
    ensure!(ok("info", c.cache_info(cache))?.active_objs == 1, "not allocated");
    ok("kfree of a cache object", c.kfree(object))?;
    ensure!(ok("info", c.cache_info(cache))?.active_objs == 0, "kfree did not free it to its cache");
    err("free after kfree", c.free(cache, object), Error::DoubleFree)?;
    Ok(())
}

/// Since Linux 5.4 a power-of-two `kmalloc` is aligned to its size, whole pages included;
/// other sizes to at least the largest power of two dividing them.
pub fn kmalloc_sizes_are_naturally_aligned(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let mut held = Vec::new();
    for size in (3..=16).map(|k| 1u32 << k).chain([24, 48, 80, 96, 160, 192, 3 * 4096, 6 * 4096]) {
        for _ in 0..3 {
            let handle = ok("kmalloc", c.kmalloc(size))?.handle;
            let natural = 1u64 << size.trailing_zeros();
            ensure!(handle.0 % natural == 0, "kmalloc({size}) at offset {:#x}, not {natural}-aligned", handle.0);
            held.push(handle);
        }
    }
    for handle in held {
        ok("kfree", c.kfree(handle))?;
    }
    Ok(())
}

/// The 13 kmalloc caches get magazine slots at `Hello` and are described in the cache table:
/// a `kmalloc` of up to 8 KiB is a magazine pop, like `kmem_cache_alloc()`.
pub fn kmalloc_caches_have_magazine_slots_from_hello(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let layout = c.control_layout()?;
    let mut classes = [None; 13];
    for index in 0..layout.caches {
        let entry = c.cache_entry(index)?;
        if entry.cache != 0 && entry.kmalloc_class != NOT_KMALLOC {
            let class = usize::from(entry.kmalloc_class);
            ensure!(class < 13 && classes[class].is_none(), "kmalloc class {class} listed twice");
            classes[class] = Some(entry);
        }
    }
    let sizes = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];
    for (class, (entry, size)) in classes.iter().zip(sizes).enumerate() {
        let entry = entry.ok_or_else(|| alloc::format!("kmalloc class {class} not in the cache table"))?;
        ensure!(entry.object_size == size, "class {class}: object size {}", entry.object_size);
        ensure!(entry.slot != NO_SLOT && entry.capacity > 0, "kmalloc-{size} got no magazine slot");
        ensure!(entry.slot < layout.slots, "slot {} outside the region", entry.slot);
    }
    // A refill of kmalloc-64's magazine hands out kmalloc-64 objects.
    let entry = classes[3].ok_or("kmalloc-64")?;
    let cache = protocol::CacheId(entry.cache);
    let refill = ok("refill kmalloc-64", c.magazine_exchange(cache, entry.slot, ExchangeOp::Refill))?;
    ensure!(refill.count == entry.capacity, "refill gave {} of {}", refill.count, entry.capacity);
    let info = ok("info", c.cache_info(cache))?;
    ensure!(info.name.as_str() == "kmalloc-64" && info.magazine_objs == u32::from(refill.count), "{info:?}");
    let m = c.magazine(entry.slot, MagazineRole::Loaded)?;
    ensure!(m.count == u32::from(refill.count), "the control region holds {} handles", m.count);
    ok("flush", c.magazine_exchange(cache, entry.slot, ExchangeOp::Flush))?;
    ensure!(ok("info", c.cache_info(cache))?.active_objs == 0, "flushed objects still allocated");
    Ok(())
}

/// The page-owner table says, for every window page, which cache's slab (and which page of it)
/// or which large kmalloc holds it, and is kept up to date as pages come and go.
pub fn page_owner_table_follows_slabs_and_large_kmallocs(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let cache = ok("create", c.create("owned", 2048, 0, 0, false))?;
    let object = ok("alloc", c.alloc(cache.cache))?.handle;
    let (index, entry) = c.cache_entry_of(cache.cache)?;
    ensure!(entry.object_size == 2048 && entry.stride == cache.layout.stride, "{entry:?}");
    let owner = c.page_owner(object)?;
    ensure!(owner.kind() == PageOwnerKind::Slab && owner.cache == index, "{owner:?} for cache slot {index}");
    let slab_start = object.0 / PAGE_SIZE as u64 - u64::from(owner.value);
    ensure!(
        slab_start.is_multiple_of(u64::from(cache.layout.pages_per_slab)),
        "slab not aligned to its size: {owner:?}"
    );
    let big = ok("kmalloc 3 pages", c.kmalloc(3 * 4096))?.handle;
    let head = c.page_owner(big)?;
    ensure!(head.kind() == PageOwnerKind::Large && head.value == 3, "{head:?}");
    let tail = c.page_owner(Handle(big.0 + 2 * 4096))?;
    ensure!(tail.kind() == PageOwnerKind::LargeTail && tail.value == 2, "{tail:?}");
    ok("kfree", c.kfree(big))?;
    ensure!(c.page_owner(big)?.kind() == PageOwnerKind::None, "freed pages still owned");
    ok("free", c.free(cache.cache, object))?;
    ok("shrink", c.shrink(cache.cache))?;
    ensure!(c.page_owner(object)?.kind() == PageOwnerKind::None, "released slab still owned");
    ok("destroy", c.destroy(cache.cache))?;
    ensure!(c.cache_entry(index)?.cache == 0, "destroyed cache still in the cache table");
    Ok(())
}

/// The tables are the client's own: a client that scribbles on them misleads only itself. The
/// server never reads them back; it answers from its private truth.
pub fn forged_tables_mislead_only_the_client(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let object = ok("kmalloc", c.kmalloc(100))?.handle;
    let layout = c.control_layout()?;
    let garbage = [0xa7u8; 256];
    let page = (object.0 / PAGE_SIZE as u64) as u32;
    c.control_write(layout.page_owner_offset(page), &garbage[..8])?;
    c.control_write(layout.cache_entry_offset(0), &garbage[..32])?;
    ok("kfree from the server's truth", c.kfree(object))?;
    err("the object is free", c.kfree(object), Error::DoubleFree)?;
    let again = ok("kmalloc", c.kmalloc(100))?.handle;
    ok("kfree", c.kfree(again))?;
    Ok(())
}

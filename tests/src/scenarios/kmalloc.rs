//! Rule 11: kmalloc size classes.

use protocol::{Error, Handle, PAGE_SIZE};

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

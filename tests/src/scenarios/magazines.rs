//! The magazine slow path as the server sees it: refill, drain, flush, and tampering.

use alloc::vec::Vec;

use protocol::control::MagazineRole::{Loaded, Previous};
use protocol::{Created, Error, ExchangeOp, Exchanged, Handle};

use super::{CLIENT, connect};
use crate::client::{Client, Failure, any_err, err, ok};
use crate::ensure;
use crate::harness::Harness;

fn magazine_cache(c: &mut Client, name: &str) -> Result<(Created, u16), Failure> {
    let created = ok("create", c.create(name, 64, 0, 0, false))?;
    let slot = created.slot.ok_or("a plain cache got no magazine slot")?;
    ensure!(created.magazine_capacity >= 2, "capacity {}", created.magazine_capacity);
    Ok((created, slot))
}

fn loaded_handles(c: &mut Client, slot: u16) -> Result<Vec<u64>, Failure> {
    let m = c.magazine(slot, Loaded)?;
    Ok(m.handles[..m.count as usize].to_vec())
}

pub fn refill_drain(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-roundtrip")?;
    let cap = created.magazine_capacity;
    let Exchanged { count, fresh_mask: fresh } =
        ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    ensure!(count == cap, "refill gave {count} of {cap}");
    // One bit per slab the refill created, on the first handle taken from it: 64-byte objects,
    // 64 to a slab, one magazine of 64 from one new slab.
    ensure!(fresh == 1, "a refill from one new slab: fresh mask {fresh:#x}");
    let handles = loaded_handles(&mut c, slot)?;
    ensure!(handles.len() == usize::from(cap), "control region holds {} handles", handles.len());
    let mut sorted = handles.clone();
    sorted.sort();
    sorted.dedup();
    ensure!(sorted.len() == handles.len(), "refill handed out a handle twice");
    for &h in &handles {
        c.write(Handle(h), 0, &h.to_le_bytes())?;
    }
    let info = ok("info", c.cache_info(created.cache))?;
    ensure!(info.active_objs == u32::from(cap), "active {} with a full magazine", info.active_objs);
    let count = ok("drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain))?.count;
    ensure!(count == 0 && c.magazine(slot, Loaded)?.count == 0, "drain left {count}");
    let Exchanged { count, fresh_mask: fresh } =
        ok("refill from the depot", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    ensure!(count == cap && fresh == 0, "second refill: {count} objects, fresh {fresh:#x}");
    let mut again = loaded_handles(&mut c, slot)?;
    again.sort();
    ensure!(again == sorted, "the depot did not hand back the drained objects");
    for &h in &again {
        ensure!(c.read(Handle(h), 0, 8)? == h.to_le_bytes(), "object {h:#x} changed in the depot");
    }
    ok("flush", c.magazine_exchange(created.cache, slot, ExchangeOp::Flush))?;
    let info = ok("info", c.cache_info(created.cache))?;
    ensure!(info.active_objs == 0, "{} objects live after flush", info.active_objs);
    ok("destroy", c.destroy(created.cache))?;
    Ok(())
}

pub fn count_above_capacity(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-count")?;
    ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    let honest = c.magazine(slot, Loaded)?;
    for bogus in [u32::from(created.magazine_capacity) + 1, 65, u32::MAX] {
        let mut m = honest;
        m.count = bogus;
        c.set_magazine(slot, Loaded, &m)?;
        err("drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain), Error::InvalidArgument)?;
    }
    c.set_magazine(slot, Loaded, &honest)?;
    ok("honest drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain))?;
    ok("flush", c.magazine_exchange(created.cache, slot, ExchangeOp::Flush))?;
    ensure!(ok("info", c.cache_info(created.cache))?.active_objs == 0, "objects lost");
    Ok(())
}

pub fn duplicate_handle(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-dup")?;
    ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    let honest = c.magazine(slot, Loaded)?;
    let mut m = honest;
    m.handles[1] = m.handles[0];
    c.set_magazine(slot, Loaded, &m)?;
    err("drain with a repeat", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain), Error::DoubleFree)?;
    // The same object in both magazines of the slot.
    let mut previous = protocol::control::Magazine::EMPTY;
    previous.count = 1;
    previous.handles[0] = honest.handles[0];
    c.set_magazine(slot, Loaded, &honest)?;
    c.set_magazine(slot, Previous, &previous)?;
    err("flush with a repeat", c.magazine_exchange(created.cache, slot, ExchangeOp::Flush), Error::DoubleFree)?;
    c.set_magazine(slot, Previous, &protocol::control::Magazine::EMPTY)?;
    ok("honest flush", c.magazine_exchange(created.cache, slot, ExchangeOp::Flush))?;
    ensure!(ok("info", c.cache_info(created.cache))?.active_objs == 0, "objects lost");
    Ok(())
}

pub fn foreign_handle(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-foreign")?;
    let other = ok("create", c.create("mag-other", 64, 0, 0, false))?.cache;
    let foreign = ok("alloc", c.alloc(other))?.handle;
    ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    let honest = c.magazine(slot, Loaded)?;
    let cases = [
        (foreign.0, Error::WrongCache),
        (1 << 42, Error::InvalidObject),
        (honest.handles[0] + 8, Error::InvalidObject),
    ];
    for (bad, expected) in cases {
        let mut m = honest;
        m.handles[2] = bad;
        c.set_magazine(slot, Loaded, &m)?;
        err("drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain), expected)?;
    }
    c.set_magazine(slot, Loaded, &honest)?;
    ok("honest drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain))?;
    ok("foreign object still live", c.free(other, foreign))?;
    // A drained object is the server's again: freeing it is a double free.
    ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    let m = c.magazine(slot, Loaded)?;
    ok("drain", c.magazine_exchange(created.cache, slot, ExchangeOp::Drain))?;
    err("free of a drained object", c.free(created.cache, Handle(m.handles[0])), Error::DoubleFree)?;
    Ok(())
}

pub fn refill_nonempty(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-nonempty")?;
    ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?;
    let before = ok("info", c.cache_info(created.cache))?;
    err("refill again", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill), Error::InvalidArgument)?;
    ensure!(ok("info", c.cache_info(created.cache))? == before, "a refused refill changed the cache");
    Ok(())
}

pub fn count_as_allocated(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (created, slot) = magazine_cache(&mut c, "mag-counted")?;
    let before = ok("stats", c.stats())?;
    let count = ok("refill", c.magazine_exchange(created.cache, slot, ExchangeOp::Refill))?.count;
    let after = ok("stats", c.stats())?;
    ensure!(
        after.live_objects == before.live_objects + u64::from(count),
        "live {} -> {}",
        before.live_objects,
        after.live_objects
    );
    ensure!(
        after.magazine_objects == before.magazine_objects + u64::from(count),
        "in magazines {}",
        after.magazine_objects
    );
    ensure!(after.refills == before.refills + 1, "refills {} -> {}", before.refills, after.refills);
    let info = ok("info", c.cache_info(created.cache))?;
    ensure!(info.magazine_objs == u32::from(count) && info.active_objs == u32::from(count), "info {info:?}");
    let row =
        ok("slabinfo", c.slabinfo(false))?.into_iter().find(|r| r.name.as_str() == "mag-counted").ok_or("no row")?;
    ensure!(row.active_objs == u32::from(count), "slabinfo active {}", row.active_objs);
    Ok(())
}

pub fn wrong_slot(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (a, slot_a) = magazine_cache(&mut c, "mag-slot-a")?;
    let (b, slot_b) = magazine_cache(&mut c, "mag-slot-b")?;
    err("a through b's slot", c.magazine_exchange(a.cache, slot_b, ExchangeOp::Refill), Error::InvalidArgument)?;
    err("b through a's slot", c.magazine_exchange(b.cache, slot_a, ExchangeOp::Drain), Error::InvalidArgument)?;
    err("slot out of range", c.magazine_exchange(a.cache, u16::MAX, ExchangeOp::Refill), Error::InvalidArgument)?;
    let debug = ok("create", c.create("mag-debug", 64, 0, protocol::flags::SLAB_POISON, false))?.cache;
    let e = any_err("debug cache exchange", c.magazine_exchange(debug, slot_a, ExchangeOp::Refill))?;
    ensure!(e == Error::InvalidArgument, "debug cache exchange: {e:?}");
    Ok(())
}

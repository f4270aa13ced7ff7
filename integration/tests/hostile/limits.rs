//! Attacks on limits and arguments: quota and pool exhaustion, hostile `CacheCreate`
//! arguments, `Destroy` of busy, unknown and destroyed caches.

use protocol::flags::SLAB_ALL;
use protocol::{CacheId, Error, Handle};

use crate::peer::{Failure, Peer, ok, outcome, refused};
use crate::world::World;

/// Allocates from `cache` until refused; returns the handles and the refusal.
fn alloc_until_refused(a: &mut Peer, cache: CacheId, limit: usize) -> Result<(Vec<Handle>, Error), Failure> {
    let mut held = Vec::new();
    for _ in 0..limit {
        match outcome("alloc", a.alloc(cache))? {
            Ok(object) => held.push(object.handle),
            Err(e) => return Ok((held, e)),
        }
    }
    Err(format!("{limit} allocations and no refusal"))
}

/// Attack 6: Quota exhaustion: allocating past the quota is refused with `QuotaExceeded` at exactly
/// the quota; after freeing, the same number of objects can be allocated again.
pub fn quota_exhaustion(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let c = ok("create", a.create("a-quota", 1024, 0, 0))?;
    let (held, e) = alloc_until_refused(&mut a, c.cache, 10_000)?;
    if e != Error::QuotaExceeded {
        return Err(format!("past the quota: {e:?}"));
    }
    let s = ok("stats", a.stats())?;
    let slab = c.layout.pages_per_slab;
    if s.client_pages > s.quota_pages || s.client_pages + slab <= s.quota_pages {
        return Err(format!("refused at {} of {} pages (slabs of {slab})", s.client_pages, s.quota_pages));
    }
    refused("large kmalloc past the quota", a.kmalloc(40 * 4096), |e| *e == Error::QuotaExceeded)?;
    for &h in &held {
        ok("free", a.free(c.cache, h))?;
    }
    ok("shrink", a.shrink(c.cache))?;
    let (again, e) = alloc_until_refused(&mut a, c.cache, 10_000)?;
    if e != Error::QuotaExceeded || again.len() != held.len() {
        return Err(format!("second round: {} objects then {e:?}, first {}", again.len(), held.len()));
    }
    a.close();
    Ok(())
}

/// Attack 7: The pool exhausted by one client (its quota is the whole pool) while the victims keep
/// allocating and freeing within the slabs they hold; once it lets go, the pool is whole.
pub fn pool_exhaustion(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-0")?;
    let mut large = 0usize;
    for size in [256 * 1024u32, 64 * 1024, 12 * 1024] {
        while outcome("kmalloc", a.kmalloc(size))?.is_ok() {
            large += 1;
        }
    }
    let small = ok("create", a.create("a-pool", 16, 0, 0))?;
    let (_, e) = alloc_until_refused(&mut a, small.cache, 1 << 20)?;
    if e != Error::OutOfMemory {
        return Err(format!("pool exhaustion ended with {e:?}"));
    }
    let free = w.pool_free()?;
    if free != 0 || large == 0 {
        return Err(format!("pool not exhausted: {free} pages free after {large} large allocations"));
    }
    // The victims work on within their own slabs: allocate, write, check, free.
    for v in &mut w.victims {
        let cache = v.caches[0];
        let info = ok("victim stats", v.peer.stats())?;
        let mut got = Vec::new();
        for i in 0..8u8 {
            match outcome("alloc", v.peer.alloc(cache))? {
                Ok(protocol::Object { handle: h, .. }) => {
                    v.peer.write(h.0, &[i; 8]);
                    got.push((h, i));
                }
                Err(Error::OutOfMemory) if info.client_pages < info.quota_pages => break,
                Err(e) => return Err(format!("{}: alloc under pool pressure: {e:?}", v.peer.name)),
            }
        }
        if got.is_empty() && v.peer.name != "victim-2" {
            return Err(format!("{} could not allocate within its slabs", v.peer.name));
        }
        for (h, i) in got {
            if v.peer.read(h.0, 8) != Some(vec![i; 8]) {
                return Err(format!("{}: object {h:?} changed under pool pressure", v.peer.name));
            }
            ok("victim free", v.peer.free(cache, h))?;
        }
    }
    a.close();
    Ok(())
}

/// A `CacheCreate` encoded by hand, so the name may be longer than the type allows.
pub fn raw_create(name: &[u8], size: u32, align: u32, flags: u32) -> Vec<u8> {
    let mut out = vec![1u8, name.len() as u8];
    out.extend_from_slice(name);
    for mut v in [size, align, flags] {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out.push(0); // ctor: false
    out.push(0); // dtor: false
    out
}

/// Attack 9: `CacheCreate` with hostile arguments: size 0 and huge, align 3 and too large, a 64-byte
/// name, an empty name, a duplicate name, unknown flags; and more caches than allowed.
pub fn hostile_cache_create(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-2")?;
    let bad = [
        ("size 0", "a-s0", 0, 0, 0),
        ("huge size", "a-huge", u32::MAX, 0, 0),
        ("size above the maximum", "a-big", 65537, 0, 0),
        ("align 3", "a-al3", 64, 3, 0),
        ("align above the maximum", "a-al8k", 64, 8192, 0),
        ("align u32::MAX", "a-almax", 64, u32::MAX, 0),
        ("unknown flags", "a-flags", 64, 0, 0x8000_0000),
        ("every unknown flag", "a-flags2", 64, 0, !SLAB_ALL),
        ("empty name", "", 64, 0, 0),
    ];
    for (what, name, size, align, flags) in bad {
        refused(what, a.create(name, size, align, flags), |e| *e == Error::InvalidArgument)?;
    }
    match a.call_raw(&raw_create(&[b'x'; 64], 64, 0, 0))? {
        Some(protocol::Reply::Error(Error::Malformed)) => {}
        other => return Err(format!("64-byte name: {other:?}")),
    }
    ok("create", a.create("a-dup", 64, 0, 0))?;
    refused("duplicate name", a.create("a-dup", 128, 0, 0), |e| *e == Error::NameTaken)?;
    refused("kmalloc name", a.create("kmalloc-64", 64, 0, 0), |e| *e == Error::NameTaken)?;
    // More caches than `max_caches_per_client`: refused, never more than the limit.
    let mut made = 0;
    let e = loop {
        match outcome("create", a.create(&format!("a-many-{made}"), 64, 0, 0))? {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        if made > 64 {
            return Err("no cache limit".into());
        }
    };
    if e != Error::OutOfMemory {
        return Err(format!("past the cache limit: {e:?}"));
    }
    let s = ok("stats", a.stats())?;
    if s.caches > 32 {
        return Err(format!("{} caches, limit 32", s.caches));
    }
    a.close();
    Ok(())
}

/// Attack 10: `Destroy` of a busy cache (refused with the live count, cache intact), of an unknown
/// id, of a kmalloc cache, and twice.
pub fn destroy_busy_unknown_twice(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let c = ok("create", a.create("a-destroy", 64, 0, 0))?;
    let held: Vec<Handle> =
        (0..3).map(|_| ok("alloc", a.alloc(c.cache)).map(|o| o.handle)).collect::<Result<_, _>>()?;
    a.write(held[0].0, b"still here");
    refused("busy destroy", a.destroy(c.cache), |e| *e == Error::CacheBusy { live: 3 })?;
    if a.read(held[0].0, 10).as_deref() != Some(b"still here".as_slice()) {
        return Err("a busy destroy touched a live object".into());
    }
    for &h in &held {
        ok("free after the busy destroy", a.free(c.cache, h))?;
    }
    ok("destroy", a.destroy(c.cache))?;
    // A busy destroy of a cache whose loaded magazine is full leaves the magazine alone.
    let m = ok("create", a.create("a-destroy-mag", 64, 0, 0))?;
    let slot = m.slot.ok_or("no slot")?;
    ok("refill", a.magazine_exchange(m.cache, slot, protocol::ExchangeOp::Refill))?;
    let loaded = a.magazine(slot, protocol::control::MagazineRole::Loaded);
    let extra = ok("alloc", a.alloc(m.cache))?.handle;
    refused("busy destroy with a full magazine", a.destroy(m.cache), |e| *e == Error::CacheBusy { live: 1 })?;
    if a.magazine(slot, protocol::control::MagazineRole::Loaded) != loaded {
        return Err("a refused destroy emptied the loaded magazine".into());
    }
    ok("free", a.free(m.cache, extra))?;
    ok("destroy takes the magazine back", a.destroy(m.cache))?;
    refused("second destroy", a.destroy(c.cache), |e| *e == Error::NoSuchCache)?;
    refused("alloc from a destroyed cache", a.alloc(c.cache), |e| *e == Error::NoSuchCache)?;
    for id in [0u32, 12, 31, 32, 0xffff, 0x1_0000, u32::MAX] {
        refused(&format!("destroy {id:#x}"), a.destroy(CacheId(id)), |e| {
            matches!(e, Error::NoSuchCache | Error::InvalidArgument)
        })?;
    }
    // Victims' cache ids name nothing of the attacker's.
    for cache in w.victims.iter().flat_map(|v| v.caches.clone()) {
        refused("destroy of a victim's cache id", a.destroy(cache), |e| *e == Error::NoSuchCache)?;
    }
    a.close();
    Ok(())
}

//! Attacks with handles: forged frees, double frees, other clients' objects, and writes past
//! or after an object on debug caches.

use protocol::control::{Magazine, MagazineRole};
use protocol::flags::{POISON_FREE, RED_ACTIVE, SLAB_POISON, SLAB_RED_ZONE};
use protocol::{Error, ExchangeOp, Handle};

use crate::peer::{Failure, ok, outcome, refused};
use crate::world::World;

/// Attack 1: `Free` of a forged handle: outside the window, inside but off an object boundary, with
/// flag bits set, and an object of another cache of the same client.
pub fn forged_free(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let c1 = ok("create", a.create("a-64", 64, 0, 0))?;
    let c2 = ok("create", a.create("a-96", 96, 0, 0))?;
    let h = ok("alloc", a.alloc(c1.cache))?.handle;
    let other = ok("alloc", a.alloc(c2.cache))?.handle;
    let window = 64 * 4096u64;
    let forged = [window, window + 64, u64::MAX, u64::MAX - 7, h.0 + 8, h.0 + 1, h.0 | 4, h.0 + 32, 4096 * 40];
    for f in forged {
        refused(&format!("free {f:#x}"), a.free(c1.cache, Handle(f)), |e| {
            matches!(e, Error::InvalidObject | Error::DoubleFree)
        })?;
        refused(&format!("kfree {f:#x}"), a.kfree(Handle(f)), |e| {
            matches!(e, Error::InvalidObject | Error::DoubleFree | Error::WrongCache)
        })?;
    }
    refused("free of another cache's object", a.free(c1.cache, other), |e| *e == Error::WrongCache)?;
    // Linux's kfree() takes an object of any cache back to its cache: not an attack, but once
    // kfreed the object is free.
    ok("kfree of a cache object", a.kfree(h))?;
    refused("free after kfree", a.free(c1.cache, h), |e| *e == Error::DoubleFree)?;
    ok("honest free", a.free(c2.cache, other))?;
    a.close();
    Ok(())
}

/// Attack 2: A double free through IPC (`Free` twice, `Kfree` twice) and through a magazine (an
/// object drained, then pushed into a magazine again; an object freed by IPC, then drained).
pub fn double_free(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let c = ok("create", a.create("a-dbl", 64, 0, 0))?;
    let h = ok("alloc", a.alloc(c.cache))?.handle;
    ok("free", a.free(c.cache, h))?;
    refused("second free", a.free(c.cache, h), |e| *e == Error::DoubleFree)?;
    let k = ok("kmalloc", a.kmalloc(40))?.handle;
    ok("kfree", a.kfree(k))?;
    refused("second kfree", a.kfree(k), |e| *e == Error::DoubleFree)?;
    let large = ok("large kmalloc", a.kmalloc(20000))?.handle;
    ok("large kfree", a.kfree(large))?;
    refused("second large kfree", a.kfree(large), |e| matches!(e, Error::DoubleFree | Error::InvalidObject))?;
    // Through a magazine: drain a full magazine into the depot, then drain the same handles.
    let slot = c.slot.ok_or("no magazine slot")?;
    ok("refill", a.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
    let full = a.magazine(slot, MagazineRole::Loaded);
    ok("drain", a.magazine_exchange(c.cache, slot, ExchangeOp::Drain))?;
    a.set_magazine(slot, MagazineRole::Loaded, &full);
    refused("drain of drained objects", a.magazine_exchange(c.cache, slot, ExchangeOp::Drain), |e| {
        *e == Error::DoubleFree
    })?;
    // An object freed by IPC, then returned in a magazine.
    a.set_magazine(slot, MagazineRole::Loaded, &Magazine::EMPTY);
    let h = ok("alloc", a.alloc(c.cache))?.handle;
    ok("free", a.free(c.cache, h))?;
    a.set_magazine(slot, MagazineRole::Loaded, &Magazine::from_handles(&[h.0]).map_err(|e| format!("{e:?}"))?);
    refused("drain of a freed object", a.magazine_exchange(c.cache, slot, ExchangeOp::Drain), |e| {
        *e == Error::DoubleFree
    })?;
    // Objects from the depot come back once, and only once.
    a.set_magazine(slot, MagazineRole::Loaded, &Magazine::EMPTY);
    ok("refill from the depot", a.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
    ok("flush", a.magazine_exchange(c.cache, slot, ExchangeOp::Flush))?;
    let info = ok("stats", a.stats())?;
    if info.live_objects != 0 {
        return Err(format!("{} objects live after honest flush", info.live_objects));
    }
    a.close();
    Ok(())
}

/// Attack 3: Handles of another client's objects (and guessed offsets): a handle is an offset in the
/// attacker's own window, so each names nothing of the victim.
pub fn foreign_handles(w: &mut World) -> Result<(), Failure> {
    let cache = w.victims[0].caches[0];
    let victim_handles: Vec<(protocol::CacheId, Handle)> =
        w.victims[0].handles().into_iter().map(|h| (cache, h)).collect();
    let mut a = w.attacker("hostile-2")?;
    for &(cache, h) in &victim_handles {
        // The victim's cache id may name one of the attacker's own caches or none.
        refused("free of a victim handle", a.free(cache, h), |e| {
            matches!(e, Error::NoSuchCache | Error::InvalidObject | Error::DoubleFree | Error::WrongCache)
        })?;
        refused("kfree of a victim handle", a.kfree(h), |e| matches!(e, Error::InvalidObject | Error::DoubleFree))?;
    }
    // Guessing: every 8-byte offset of the first pages, against the attacker's own cache.
    let own = ok("create", a.create("a-guess", 64, 0, 0))?;
    let mine = ok("alloc", a.alloc(own.cache))?.handle;
    let mut freed_mine = false;
    for off in (0..3 * 4096u64).step_by(8) {
        match outcome("free", a.free(own.cache, Handle(off)))? {
            Ok(()) if off == mine.0 => freed_mine = true,
            Ok(()) => return Err(format!("guessed handle {off:#x} was freed")),
            Err(Error::InvalidObject | Error::DoubleFree) => {}
            Err(e) => return Err(format!("guessed handle {off:#x}: {e:?}")),
        }
    }
    if !freed_mine {
        return Err("the attacker's own object was not found by guessing".into());
    }
    a.close();
    Ok(())
}

/// Attack 13: Writes past an object of a `RED_ZONE` cache and after free on a `POISON` cache: the
/// server reports each with the cache, the object and the offset.
pub fn red_zone_and_poison(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let rz = ok("create", a.create("a-redzone", 24, 0, SLAB_RED_ZONE))?;
    let h = ok("alloc", a.alloc(rz.cache))?.handle;
    a.write(h.0 + 24, &[0x11]);
    let e = refused("free with a trampled right red zone", a.free(rz.cache, h), |e| {
        matches!(e, Error::RedZoneCorrupted(_))
    })?;
    let Error::RedZoneCorrupted(c) = e else { unreachable!() };
    if c.cache != rz.cache || c.object != h || c.offset != 24 || c.found != 0x11 || c.expected != RED_ACTIVE {
        return Err(format!("red zone report {c:?} for {h:?} of {:?}", rz.cache));
    }
    ok("free after the repair", a.free(rz.cache, h))?;
    // The left red zone (negative offset).
    let h = ok("alloc", a.alloc(rz.cache))?.handle;
    if h.0 > 0 {
        a.write(h.0 - 1, &[0x22]);
        match outcome("free", a.free(rz.cache, h))? {
            Err(Error::RedZoneCorrupted(c)) if c.offset == -1 && c.object == h && c.found == 0x22 => {
                ok("free after the repair", a.free(rz.cache, h))?;
            }
            // A layout without a left zone puts the previous object's right zone there.
            Err(Error::RedZoneCorrupted(_)) | Ok(()) => {}
            Err(e) => return Err(format!("left red zone: {e:?}")),
        }
    }
    let p = ok("create", a.create("a-poison", 48, 0, SLAB_POISON))?;
    let h = ok("alloc", a.alloc(p.cache))?.handle;
    ok("free", a.free(p.cache, h))?;
    a.write(h.0 + 5, &[0x33]);
    let e = refused("alloc of a poisoned object", a.alloc(p.cache), |e| matches!(e, Error::PoisonCorrupted(_)))?;
    let Error::PoisonCorrupted(c) = e else { unreachable!() };
    if c.cache != p.cache || c.object != h || c.offset != 5 || c.found != 0x33 || c.expected != POISON_FREE {
        return Err(format!("poison report {c:?} for {h:?} of {:?}", p.cache));
    }
    ok("alloc after the repair", a.alloc(p.cache))?;
    a.close();
    Ok(())
}

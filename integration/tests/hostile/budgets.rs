//! Attacks on what one client's use may cost the others (issue 11): the `SLAB_STORE_USER`
//! tracking space, a client's own out-of-memory, and cache ids that must never come back.

use protocol::control::MagazineRole;
use protocol::flags::SLAB_STORE_USER;
use protocol::{Error, ExchangeOp};

use crate::peer::{Failure, ok, outcome, refused};
use crate::world::World;

/// More tracked objects than the shared table of the old server held (16 records per pool
/// frame: 16,384 here), in well under the pool.
const TRACKED: usize = 40_000;

/// Attack 30: `hostile-0` tracks 40,000 objects with `SLAB_STORE_USER` (more than a shared
/// tracking table sized for the pool holds); the records are its own memory, so another client
/// still creates a tracked cache and allocates from it.
pub fn store_user_tracking_exhaustion(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-0")?;
    let c = ok("create tracked", a.create("a-tracked", 8, 0, SLAB_STORE_USER))?;
    for held in 0..TRACKED {
        if let Err(e) = outcome("tracked alloc", a.alloc(c.cache))? {
            return Err(format!("hostile-0's tracked alloc refused after {held} objects: {e:?}"));
        }
    }
    let mut b = w.attacker("hostile-1")?;
    let d = ok("bystander create tracked", b.create("b-tracked", 8, 0, SLAB_STORE_USER))?;
    for i in 0..64 {
        if let Err(e) = outcome("bystander tracked alloc", b.alloc(d.cache))? {
            return Err(format!(
                "bystander's tracked alloc {i} refused ({e:?}) after hostile-0 tracked {TRACKED} objects"
            ));
        }
    }
    b.close();
    a.close();
    Ok(())
}

/// Attack 31: `hostile-1` runs into its own quota again and again (slab caches and large
/// kmallocs) while `hostile-2` keeps objects in its depot: the bystander's depot, objects and
/// pages stay exactly as they were (only real pool pressure may reclaim from others).
pub fn own_out_of_memory_spares_other_depots(w: &mut World) -> Result<(), Failure> {
    let mut b = w.attacker("hostile-2")?;
    let kept = ok("bystander create", b.create("b-depot", 256, 0, 0))?;
    let slot = kept.slot.ok_or("the bystander's cache got no magazine slot")?;
    ok("bystander refill", b.magazine_exchange(kept.cache, slot, ExchangeOp::Refill))?;
    if b.magazine(slot, MagazineRole::Loaded).count == 0 {
        return Err("the bystander's refill brought nothing to put in its depot".into());
    }
    ok("bystander drain", b.magazine_exchange(kept.cache, slot, ExchangeOp::Drain))?;
    let before = (ok("bystander stats", b.stats())?, ok("bystander info", b.cache_info(kept.cache))?);
    let mut a = w.attacker("hostile-1")?;
    let c = ok("create", a.create("a-own-oom", 2048, 0, 0))?;
    for round in 0..50 {
        loop {
            match outcome("alloc", a.alloc(c.cache))? {
                Ok(_) => {}
                Err(Error::QuotaExceeded | Error::OutOfMemory) => break,
                Err(e) => return Err(format!("round {round}: {e:?}")),
            }
        }
        refused("large kmalloc past the quota", a.kmalloc(16 * 4096), |e| {
            matches!(e, Error::QuotaExceeded | Error::OutOfMemory)
        })?;
    }
    let after = (ok("bystander stats", b.stats())?, ok("bystander info", b.cache_info(kept.cache))?);
    let pages = (before.0.client_pages, after.0.client_pages);
    let objects = (before.1.active_objs, after.1.active_objs);
    if pages.0 != pages.1 || objects.0 != objects.1 {
        return Err(format!("the bystander's pages went {pages:?} and its active objects {objects:?}"));
    }
    let back = ok("bystander refill from its depot", b.magazine_exchange(kept.cache, slot, ExchangeOp::Refill))?;
    if back.fresh_mask != 0 {
        return Err(format!("the refill made fresh objects ({:#x}): the depot was flushed", back.fresh_mask));
    }
    a.close();
    b.close();
    Ok(())
}

/// Attack 32: a cache id outlives 70,000 create/destroy cycles of its slot (a 16-bit
/// generation wraps after 65,535): the old id names no cache, never the new one.
pub fn cache_id_reuse_after_wrap(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-2")?;
    let first = ok("create", a.create("a-wrap", 32, 0, 0))?.cache;
    ok("destroy", a.destroy(first))?;
    for cycle in 0..70_000u32 {
        let c = ok("create", a.create("a-wrap", 32, 0, 0))?.cache;
        if c == first {
            return Err(format!("cycle {cycle}: the destroyed id {first:?} names a new cache"));
        }
        ok("destroy", a.destroy(c))?;
    }
    let live = ok("create", a.create("a-wrap", 32, 0, 0))?.cache;
    refused("alloc by the old id", a.alloc(first), |e| *e == Error::NoSuchCache)?;
    ok("alloc by the live id", a.alloc(live))?;
    a.close();
    Ok(())
}

//! Attacks on what issue 12 added: the page-owner and cache tables of the control region (the
//! server writes them and never reads them back), the dtor two-phase shrink (a commit for
//! slabs it was not asked about, a forged or replayed token, a disconnect with a plan
//! pending), and `Validate` of another client's cache.

use protocol::control::{CacheEntry, ControlHeader, ControlLayout, PageOwner, PageOwnerKind};
use protocol::flags::SLAB_RED_ZONE;
use protocol::{Error, Finding, Handle, PAGE_SIZE};
use zerocopy::{FromBytes, IntoBytes};

use crate::peer::{Failure, Peer, ok, refused};
use crate::world::World;

fn layout(p: &Peer) -> Result<ControlLayout, Failure> {
    let mut bytes = [0u8; size_of::<ControlHeader>()];
    if !p.connection().control().read(0, &mut bytes) {
        return Err("control header unreadable".into());
    }
    Ok(ControlHeader::read_from_bytes(&bytes).map_err(|_| "control header layout")?.layout())
}

fn page_owner(p: &Peer, l: &ControlLayout, handle: Handle) -> Result<PageOwner, Failure> {
    let page = u32::try_from(handle.0 / PAGE_SIZE as u64).map_err(|_| "page out of range")?;
    let mut bytes = [0u8; size_of::<PageOwner>()];
    if !p.connection().control().read(l.page_owner_offset(page), &mut bytes) {
        return Err(format!("page-owner entry of page {page} unreadable"));
    }
    Ok(PageOwner::read_from_bytes(&bytes).map_err(|_| "page-owner layout")?)
}

fn cache_entry(p: &Peer, l: &ControlLayout, index: u16) -> Result<CacheEntry, Failure> {
    let mut bytes = [0u8; size_of::<CacheEntry>()];
    if !p.connection().control().read(l.cache_entry_offset(index), &mut bytes) {
        return Err(format!("cache entry {index} unreadable"));
    }
    Ok(CacheEntry::read_from_bytes(&bytes).map_err(|_| "cache-entry layout")?)
}

/// The bytes of both tables (cache table and page-owner table) of a peer's control region.
fn tables(p: &Peer) -> Result<Vec<u8>, Failure> {
    let l = layout(p)?;
    let mut bytes = vec![0u8; l.size() - l.caches_offset()];
    if !p.connection().control().read(l.caches_offset(), &mut bytes) {
        return Err(format!("{}: tables unreadable", p.name));
    }
    Ok(bytes)
}

/// The cache a slab page's owner entry names, checked against the cache table.
fn owner_cache(p: &Peer, l: &ControlLayout, handle: Handle) -> Result<u32, Failure> {
    let owner = page_owner(p, l, handle)?;
    if owner.kind() != PageOwnerKind::Slab {
        return Err(format!("page of {handle:?} owned by {owner:?}, not a slab"));
    }
    Ok(cache_entry(p, l, owner.cache)?.cache)
}

/// Attack: A forged page-owner and cache table. The attacker checks its tables are honest,
/// then overwrites both whole (every page "a large kmalloc of 2^31 pages", every cache entry
/// naming a victim's cache with absurd geometry) and frees, kfrees, reallocates and validates
/// by IPC: the server answers from its own truth (every honest free succeeds, a forged one is
/// refused, validation finds nothing), rewrites the entries it changes correctly, and the
/// victims' tables do not change by a byte.
pub fn forged_kmalloc_tables(w: &mut World) -> Result<(), Failure> {
    let victims_before: Vec<Vec<u8>> = w.victims.iter().map(|v| tables(&v.peer)).collect::<Result<_, _>>()?;
    let mut a = w.attacker("hostile-1")?;
    let me = a.id;
    let l = layout(&a)?;
    let c = ok("create", a.create("a-tables", 64, 0, 0))?;
    let h = ok("alloc", a.alloc(c.cache))?.handle;
    let k = ok("kmalloc", a.kmalloc(100))?.handle;
    let big = ok("large kmalloc", a.kmalloc(3 * PAGE_SIZE as u32))?.handle;
    // The honest tables.
    if owner_cache(&a, &l, h)? != c.cache.0 {
        return Err("the page-owner table does not name the object's cache".into());
    }
    let kc = cache_entry(&a, &l, page_owner(&a, &l, k)?.cache)?;
    if kc.object_size != 128 || kc.kmalloc_class == protocol::control::NOT_KMALLOC {
        return Err(format!("kmalloc(100) in {kc:?}, not kmalloc-128"));
    }
    let tail = Handle(big.0 + PAGE_SIZE as u64);
    if page_owner(&a, &l, big)? != PageOwner::large(3) || page_owner(&a, &l, tail)? != PageOwner::large_tail(1) {
        return Err("the page-owner table does not describe the large kmalloc".into());
    }
    // The forgery: both tables, whole.
    let victim_cache = w.victims[0].caches[0];
    let forged_entry = CacheEntry {
        cache: victim_cache.0,
        object_size: 1,
        stride: 0,
        obj_offset: u32::MAX,
        flags: u32::MAX,
        align: 3,
        objects_per_slab: u16::MAX,
        slot: 0,
        capacity: u16::MAX,
        kmalloc_class: 0,
        order: 31,
    };
    for i in 0..l.caches {
        a.connection().control().write(l.cache_entry_offset(i), forged_entry.as_bytes());
    }
    for page in 0..l.window_pages {
        a.connection().control().write(l.page_owner_offset(page), PageOwner::large(1 << 31).as_bytes());
    }
    // The server does not read them: a forged large kmalloc's tail is no object, honest frees
    // of every kind succeed.
    refused("kfree of a large kmalloc's tail", a.kfree(tail), |e| *e == Error::InvalidObject)?;
    refused("kfree inside an object", a.kfree(Handle(h.0 + 8)), |e| *e == Error::InvalidObject)?;
    let past_window = Handle(u64::from(l.window_pages) * PAGE_SIZE as u64);
    refused("kfree past the window", a.kfree(past_window), |e| *e == Error::InvalidObject)?;
    ok("kfree of a cache object", a.kfree(h))?;
    ok("kfree", a.kfree(k))?;
    ok("large kfree", a.kfree(big))?;
    let r = ok("validate", a.validate(me, protocol::cache_name("a-tables").unwrap()))?;
    if r.errors != 0 {
        return Err(format!("validation of an untouched cache found {r:?}"));
    }
    // Entries the server changes are rewritten from its truth.
    let c2 = ok("create", a.create("a-tables-2", 256, 0, 0))?;
    let h2 = ok("alloc", a.alloc(c2.cache))?.handle;
    if owner_cache(&a, &l, h2)? != c2.cache.0 {
        return Err("the server did not rewrite the new slab's page and its cache entry".into());
    }
    let big2 = ok("large kmalloc", a.kmalloc(5 * PAGE_SIZE as u32))?.handle;
    if page_owner(&a, &l, big2)? != PageOwner::large(5) {
        return Err(format!("large kmalloc described as {:?}", page_owner(&a, &l, big2)?));
    }
    ok("free", a.free(c2.cache, h2))?;
    ok("large kfree", a.kfree(big2))?;
    let s = ok("stats", a.stats())?;
    if s.live_objects != 0 {
        return Err(format!("{} objects live after every free", s.live_objects));
    }
    a.close();
    for (v, before) in w.victims.iter().zip(&victims_before) {
        if tables(&v.peer)? != *before {
            return Err(format!("{}: its control-region tables changed", v.peer.name));
        }
    }
    Ok(())
}

/// Attack: The dtor two-phase shrink abused: a plain `Shrink`/`Destroy` of a dtor cache that
/// has slabs (refused: the dtor would not run), a commit with no plan, with a forged token,
/// for another cache, for a victim's cache id, a replayed commit, a free into a slab of the
/// plan, and a disconnect with a plan pending. The plan's slabs never serve an allocation,
/// the honest commit releases exactly them, and the pending plan is reclaimed at close.
pub fn dtor_commit_forged(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let name = protocol::cache_name("a-dtor").unwrap();
    let c = ok("create", a.cache_create(name, 1024, 0, 0, false, true))?;
    let other = ok("create", a.create("a-dtor-other", 64, 0, 0))?;
    let held: Vec<Handle> = (0..12)
        .map(|_| a.alloc(c.cache).map(|o| o.handle))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("alloc: {e}"))?;
    for &h in &held {
        ok("free", a.free(c.cache, h))?;
    }
    refused("Shrink of a dtor cache", a.shrink(c.cache), |e| *e == Error::InvalidArgument)?;
    refused("Destroy of a dtor cache with slabs", a.destroy(c.cache), |e| *e == Error::InvalidArgument)?;
    refused("commit with no plan", a.shrink_commit(c.cache, 1), |e| *e == Error::InvalidArgument)?;
    let plan = ok("shrink begin", a.shrink_begin(c.cache))?;
    let pages_per_slab = c.layout.pages_per_slab;
    let slab_bytes = u64::from(pages_per_slab) * PAGE_SIZE as u64;
    let in_plan = |h: Handle| plan.slabs.iter().any(|s| (s.0..s.0 + slab_bytes).contains(&h.0));
    if plan.slabs.is_empty() || !held.iter().all(|&h| in_plan(h)) {
        return Err(format!("the plan {plan:?} does not name the empty slabs"));
    }
    for forged in [plan.token.wrapping_add(1), plan.token ^ 0x8000_0000, 0] {
        refused("commit with a forged token", a.shrink_commit(c.cache, forged), |e| *e == Error::InvalidArgument)?;
    }
    refused("commit for another cache", a.shrink_commit(other.cache, plan.token), |e| *e == Error::InvalidArgument)?;
    let victim_cache = w.victims[0].caches[0];
    refused("commit for a victim's cache", a.shrink_commit(victim_cache, plan.token), |e| *e == Error::NoSuchCache)?;
    refused("begin on a victim's cache", a.shrink_begin(victim_cache), |e| *e == Error::NoSuchCache)?;
    refused("free into a slab of the plan", a.free(c.cache, held[0]), |e| *e == Error::DoubleFree)?;
    // The plan's slabs serve no allocation; asking again names the same plan.
    let fresh = ok("alloc during the plan", a.alloc(c.cache))?.handle;
    if in_plan(fresh) {
        return Err(format!("{fresh:?} was allocated from a slab the client is destroying"));
    }
    let again = ok("shrink begin again", a.shrink_begin(c.cache))?;
    if again.token != plan.token || again.slabs != plan.slabs {
        return Err(format!("asked again, the plan changed: {again:?} after {plan:?}"));
    }
    let pages = ok("honest commit", a.shrink_commit(c.cache, plan.token))?.pages;
    if pages as usize != plan.slabs.len() * pages_per_slab as usize {
        return Err(format!("{pages} pages released for {} slabs of {pages_per_slab} pages", plan.slabs.len()));
    }
    refused("replayed commit", a.shrink_commit(c.cache, plan.token), |e| *e == Error::InvalidArgument)?;
    // A plan left pending at disconnect: the world's accounting checks it is reclaimed.
    ok("free", a.free(c.cache, fresh))?;
    ok("shrink begin", a.shrink_begin(c.cache))?;
    a.close();
    Ok(())
}

/// Attack: `Validate` of caches that are not the caller's: a victim's cache by id and name, a
/// client id that is no session, a name the caller has no cache of. All refused without
/// introspection rights; the observer (memctl, introspecting) validates a victim's debug cache
/// and finds nothing (and so repairs nothing). The attacker's own corruption is found, counted
/// once, repaired, and not found again.
pub fn validate_foreign_cache(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-2")?;
    let me = a.id;
    let v1 = w.victims[1].peer.id;
    let debug = protocol::cache_name("v1-debug").unwrap();
    refused("validate of a victim's cache", a.validate(v1, debug.clone()), |e| *e == Error::PermissionDenied)?;
    refused("validate of no session", a.validate(999, debug.clone()), |e| *e == Error::PermissionDenied)?;
    refused("validate of a cache it does not have", a.validate(me, debug.clone()), |e| *e == Error::NoSuchCache)?;
    let r = ok("observer validates a victim", w.observer.validate(v1, debug))?;
    if r.errors != 0 || r.objects == 0 {
        return Err(format!("the victim's debug cache validated as {r:?}"));
    }
    // Its own corruption: found once, repaired.
    let c = ok("create", a.create("a-validate", 100, 0, SLAB_RED_ZONE))?;
    let h = ok("alloc", a.alloc(c.cache))?.handle;
    a.write(h.0 + 100, &[0u8; 4]);
    let name = protocol::cache_name("a-validate").unwrap();
    let r = ok("validate", a.validate(me, name.clone()))?;
    if r.errors != 1 || !matches!(r.first, Some(Finding::RedZone(_))) {
        return Err(format!("one overwritten red zone validated as {r:?}"));
    }
    let r = ok("validate again", a.validate(me, name.clone()))?;
    if r.errors != 0 {
        return Err(format!("the red zone was not repaired: {r:?}"));
    }
    ok("free after the repair", a.free(c.cache, h))?;
    a.close();
    Ok(())
}

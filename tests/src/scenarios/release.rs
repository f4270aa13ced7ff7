//! When memory leaves a cache: the two-phase shrink of a cache with a destructor, and the
//! flags Linux accepts that keep memory in a cache or describe it.

use alloc::vec::Vec;

use protocol::flags::{
    SLAB_ACCOUNT, SLAB_MEM_SPREAD, SLAB_NO_REAP, SLAB_NOLEAKTRACE, SLAB_POISON, SLAB_RECLAIM_ACCOUNT,
    SLAB_TYPESAFE_BY_RCU,
};
use protocol::{Error, Handle, PAGE_SIZE};

use super::{CLIENT, connect};
use crate::client::{Client, Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

/// A dtor cache of 1 KiB objects holding `slabs` empty slabs.
fn dtor_cache_with_empty_slabs(c: &mut Client, slabs: u32) -> Result<(protocol::CacheId, u32), Failure> {
    let created = ok("create with a dtor", c.create_with_dtor("dtor", 1024, 0, true))?;
    ensure!(created.slot.is_some(), "a dtor cache keeps its magazines");
    let per_slab = created.layout.objects_per_slab;
    let objects: Vec<Handle> = (0..per_slab * slabs)
        .map(|_| ok("alloc", c.alloc(created.cache)).map(|o| o.handle))
        .collect::<Result<_, _>>()?;
    for h in objects {
        ok("free", c.free(created.cache, h))?;
    }
    Ok((created.cache, per_slab))
}

/// A cache with a destructor gives slabs back only in two phases: `ShrinkBegin` names the
/// empty slabs (out of use from then on), the client runs its dtor over their objects,
/// `ShrinkCommit` with the plan's token releases exactly those. A plain `Shrink` would skip the
/// dtor and is refused, as is a commit with another token.
pub fn dtor_cache_releases_slabs_in_two_phases(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let (cache, _) = dtor_cache_with_empty_slabs(&mut c, 2)?;
    ensure!(ok("info", c.cache_info(cache))?.dtor, "CacheInfo does not say dtor");
    err("plain shrink", c.shrink(cache), Error::InvalidArgument)?;
    err("destroy with slabs left", c.destroy(cache), Error::InvalidArgument)?;
    let before = ok("stats", c.stats())?.client_pages;
    let plan = ok("shrink begin", c.shrink_begin(cache))?;
    ensure!(plan.slabs.len() == 2 && !plan.more, "{plan:?}");
    ensure!(plan.slabs.iter().all(|s| s.0 % PAGE_SIZE as u64 == 0), "slab offsets {:?}", plan.slabs);
    let again = ok("shrink begin again", c.shrink_begin(cache))?;
    ensure!(again == plan, "asked again: {again:?}, first {plan:?}");
    // The parked slabs are out of use: a new allocation takes a new slab.
    let h = ok("alloc", c.alloc(cache))?.handle;
    ensure!(plan.slabs.iter().all(|s| h.0 / 4096 != s.0 / 4096), "an object of a parked slab was handed out");
    ok("free", c.free(cache, h))?;
    err("commit another token", c.shrink_commit(cache, plan.token.wrapping_add(1)), Error::InvalidArgument)?;
    ensure!(ok("stats", c.stats())?.client_pages == before + 1, "a refused commit released pages");
    let released = ok("commit", c.shrink_commit(cache, plan.token))?.pages;
    ensure!(released == 2, "released {released} pages");
    err("commit twice", c.shrink_commit(cache, plan.token), Error::InvalidArgument)?;
    let last = ok("shrink begin", c.shrink_begin(cache))?;
    ok("commit", c.shrink_commit(cache, last.token))?;
    ok("destroy once every slab is gone", c.destroy(cache))?;
    Ok(())
}

/// The flags Linux 6.6 accepts beside the debug ones (values of its `include/linux/slab.h`),
/// and this server's `SLAB_NO_REAP`: accepted and reported; any other bit is refused.
pub fn linux_flags_are_accepted_and_reported(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    for (i, flag) in
        [SLAB_RECLAIM_ACCOUNT, SLAB_TYPESAFE_BY_RCU, SLAB_MEM_SPREAD, SLAB_NOLEAKTRACE, SLAB_ACCOUNT, SLAB_NO_REAP]
            .into_iter()
            .enumerate()
    {
        let created = ok("create", c.create(&alloc::format!("flag{i}"), 64, 0, flag, false))?;
        ensure!(!created.debug && created.slot.is_some(), "flag {flag:#x} made a debug cache");
        ensure!(ok("info", c.cache_info(created.cache))?.flags == flag, "flag {flag:#x} not kept");
    }
    err(
        "SLAB_KMALLOC (0x1000) is Linux's own",
        c.create("kmalloc-flag", 64, 0, 0x1000, false),
        Error::InvalidArgument,
    )?;
    Ok(())
}

/// `SLAB_RECLAIM_ACCOUNT` pages are shown as reclaimable in the client's statistics.
pub fn reclaim_account_pages_show_in_stats(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let r = ok("create", c.create("reclaimable", 2048, 0, SLAB_RECLAIM_ACCOUNT, false))?;
    ensure!(ok("stats", c.stats())?.reclaimable_pages == 0, "nothing allocated yet");
    for _ in 0..3 {
        ok("alloc", c.alloc(r.cache))?;
    }
    let info = ok("info", c.cache_info(r.cache))?;
    let stats = ok("stats", c.stats())?;
    ensure!(stats.reclaimable_pages == info.num_slabs * info.layout.pages_per_slab, "{stats:?}");
    Ok(())
}

/// `SLAB_TYPESAFE_BY_RCU`: a freed object's memory stays the cache's and is not poisoned (a
/// reader that found it before the free may still look at it).
pub fn typesafe_by_rcu_objects_are_not_poisoned(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("rcu", 64, 0, SLAB_POISON | SLAB_TYPESAFE_BY_RCU, false))?;
    let p = ok("alloc", c.alloc(created.cache))?.handle;
    c.write(p, 0, &[0x42; 64])?;
    ok("free", c.free(created.cache, p))?;
    ensure!(c.read(p, 0, 64)?.iter().all(|&b| b == 0x42), "the freed object was overwritten");
    Ok(())
}

/// Memory pressure from the client's own quota reaps the empty slabs of an ordinary cache but
/// never those of a `SLAB_NO_REAP`, `SLAB_TYPESAFE_BY_RCU` or dtor cache: with only those
/// holding the quota, the allocation fails instead.
pub fn pressure_never_reaps_no_reap_rcu_or_dtor_caches(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let quota = ok("stats", c.stats())?.quota_pages;
    let keepers = [
        ok("create", c.create("no-reap", 4096, 0, SLAB_NO_REAP, false))?.cache,
        ok("create", c.create("rcu-keep", 4096, 0, SLAB_TYPESAFE_BY_RCU, false))?.cache,
        ok("create with a dtor", c.create_with_dtor("dtor-keep", 4096, 0, false))?.cache,
    ];
    // Fill the quota with the three keepers' slabs (one page each), then free everything: the
    // pages stay, as empty slabs.
    let mut held = Vec::new();
    'fill: for round in 0.. {
        let cache = keepers[round % 3];
        match c.alloc(cache) {
            Ok(o) => held.push((cache, o.handle)),
            Err(_) => break 'fill,
        }
    }
    ensure!(ok("stats", c.stats())?.client_pages >= quota - 2, "quota not filled");
    for (cache, h) in held {
        ok("free", c.free(cache, h))?;
    }
    let plain = ok("create", c.create("plain", 4096, 0, 0, false))?.cache;
    err("no reapable memory", c.alloc(plain), Error::QuotaExceeded)?;
    // An ordinary cache's empty slabs are reaped: shrink the keepers by hand (two-phase for
    // the dtor cache), fill with the ordinary cache, free, and a new cache still gets memory.
    for &cache in &keepers[..2] {
        ok("explicit shrink", c.shrink(cache))?;
    }
    loop {
        let plan = ok("shrink begin", c.shrink_begin(keepers[2]))?;
        ok("commit", c.shrink_commit(keepers[2], plan.token))?;
        if !plan.more {
            break;
        }
    }
    let mut held = Vec::new();
    while let Ok(o) = c.alloc(plain) {
        held.push(o.handle);
    }
    for h in held {
        ok("free", c.free(plain, h))?;
    }
    let other = ok("create", c.create("other", 4096, 0, 0, false))?.cache;
    ok("pressure reaps the ordinary cache", c.alloc(other))?;
    Ok(())
}

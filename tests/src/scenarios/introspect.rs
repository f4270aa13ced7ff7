//! Introspection across clients (what `memctl` is built on): `ClientStats`, `Clients`, and the
//! magazine counters a client library publishes in its control-region header.

use protocol::Error;
use protocol::control::{ALLOC_HITS_OFFSET, FREE_HITS_OFFSET, MAGAZINE_MISSES_OFFSET};

use super::{CLIENT, PEER, connect};
use crate::client::{Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

/// A client id no system description of the suite uses.
const NOBODY: u16 = 999;

pub fn client_stats_of_self_needs_no_rights(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("own-stats", 256, 0, 0, false))?;
    ok("alloc", c.alloc(created.cache))?;
    let plain = ok("stats", c.stats())?;
    let id = c.id;
    let own = ok("client stats of self", c.client_stats(id))?;
    ensure!(own.client == c.id, "client {} vs {}", own.client, c.id);
    ensure!(own.requests == plain.requests + 1, "requests {} vs {}", own.requests, plain.requests);
    ensure!(
        own.client_pages == plain.client_pages && own.live_objects == plain.live_objects && own.allocs == plain.allocs,
        "own {own:?} vs stats {plain:?}"
    );
    Ok(())
}

pub fn client_stats_of_another_needs_introspection(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let mut peer = connect(h, PEER)?;
    // Without rights: refused, whether the target is connected or not (nothing leaks).
    err("another client without rights", c.client_stats(peer.id), Error::PermissionDenied)?;
    err("unknown client without rights", c.client_stats(NOBODY), Error::PermissionDenied)?;
    let created = ok("create", c.create("seen-by-peer", 512, 0, 0, false))?;
    for _ in 0..3 {
        ok("alloc", c.alloc(created.cache))?;
    }
    let own = ok("stats", c.stats())?;
    let seen = ok("client stats with rights", peer.client_stats(c.id))?;
    ensure!(seen.client == c.id, "client {} vs {}", seen.client, c.id);
    ensure!(seen.client_pages == own.client_pages && seen.quota_pages == own.quota_pages, "pages {seen:?} vs {own:?}");
    ensure!(seen.live_objects == 3 && seen.allocs == own.allocs, "live {} allocs {}", seen.live_objects, seen.allocs);
    ensure!(seen.requests == own.requests, "requests {} vs {}", seen.requests, own.requests);
    ensure!(seen.pool_free_pages == own.pool_free_pages, "pool {} vs {}", seen.pool_free_pages, own.pool_free_pages);
    Ok(())
}

pub fn client_stats_of_unconnected_client_is_invalid_argument(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut peer = connect(h, PEER)?;
    err("id 0", peer.client_stats(0), Error::InvalidArgument)?;
    err("unknown id", peer.client_stats(NOBODY), Error::InvalidArgument)?;
    err("id u16::MAX", peer.client_stats(u16::MAX), Error::InvalidArgument)?;
    let mut c = connect(h, CLIENT)?;
    let id = c.id;
    ok("connected", peer.client_stats(id))?;
    ok("goodbye", c.goodbye())?;
    drop(c);
    err("after goodbye", peer.client_stats(id), Error::InvalidArgument)?;
    Ok(())
}

pub fn clients_lists_open_sessions_and_needs_introspection(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("clients without rights", c.clients(0), Error::PermissionDenied)?;
    let mut peer = connect(h, PEER)?;
    let page = ok("clients", peer.clients(0))?;
    let list = &page.clients;
    ensure!(!page.more, "more on the only page");
    ensure!(list.windows(2).all(|w| w[0].client < w[1].client), "not in id order: {list:?}");
    ensure!(list.iter().any(|e| e.client == c.id && e.name == CLIENT), "{CLIENT} missing: {list:?}");
    ensure!(list.iter().any(|e| e.client == peer.id && e.name == PEER), "{PEER} missing: {list:?}");
    let past = ok("page past the end", peer.clients(1000))?;
    ensure!(past.clients.is_empty() && !past.more, "page past the end: {past:?}");
    let id = c.id;
    ok("goodbye", c.goodbye())?;
    drop(c);
    let list = ok("clients after goodbye", peer.clients(0))?.clients;
    ensure!(!list.iter().any(|e| e.client == id), "gone client still listed: {list:?}");
    Ok(())
}

pub fn stats_report_client_published_magazine_counters(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let fresh = ok("stats", c.stats())?;
    ensure!(fresh.alloc_hits == 0 && fresh.free_hits == 0 && fresh.magazine_misses == 0, "fresh counters {fresh:?}");
    c.control_write(ALLOC_HITS_OFFSET, &1000u64.to_ne_bytes())?;
    c.control_write(FREE_HITS_OFFSET, &999u64.to_ne_bytes())?;
    c.control_write(MAGAZINE_MISSES_OFFSET, &u64::MAX.to_ne_bytes())?;
    let own = ok("stats", c.stats())?;
    ensure!(
        (own.alloc_hits, own.free_hits, own.magazine_misses) == (1000, 999, u64::MAX),
        "published counters {} {} {}",
        own.alloc_hits,
        own.free_hits,
        own.magazine_misses
    );
    let mut peer = connect(h, PEER)?;
    let seen = ok("client stats", peer.client_stats(c.id))?;
    ensure!(seen.alloc_hits == 1000 && seen.free_hits == 999, "seen by peer {seen:?}");
    // The counters are informational: nonsense there changes nothing the server does.
    let created = ok("create", c.create("after-counters", 64, 0, 0, false))?;
    ok("alloc", c.alloc(created.cache))?;
    Ok(())
}

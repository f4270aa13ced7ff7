//! The memory-pressure policy: a client's own shortage (quota, window) is relieved from that
//! client alone and never changes another client's depot or slabs; real pool pressure
//! reclaims from the others, in turns, only what is missing plus a small batch; caches that
//! must not be reaped never are; and every cache of a client is reached, however many.

use std::cell::RefCell;
use std::rc::Rc;

use memserver_dispatch::pressure::RECLAIM_BATCH;
use memserver_dispatch::testing::ServerPlatform;
use memserver_dispatch::testing::setup::{call, client_digest, open_server};
use memserver_dispatch::{MagazineSizes, PressurePolicy, Reclaim, Server, ServerConfig};
use memserver_engine::{EngineConfig, Shortage, ShortageKind};
use protocol::{CacheId, ClientId, Error, ExchangeOp, Reply, Request};

type TestServer = Server<'static, ServerPlatform>;

// 13 of the slots go to the kmalloc classes at Hello; 4 are left for the caches here.
const SERVER: ServerConfig =
    ServerConfig { magazine_slots: 17, magazine_sizes: MagazineSizes { small: 8, medium: 8, large: 4, huge: 2 } };

fn server(pool: u32, clients: &[(u32, u32)]) -> TestServer {
    open_server(EngineConfig::new(pool, clients.len() as u16 + 1, 64), SERVER, clients)
}

fn create(s: &mut TestServer, c: ClientId, name: &str, size: u32) -> (CacheId, Option<u16>) {
    let name = protocol::cache_name(name).unwrap();
    match call(s, c, &Request::CacheCreate { name, size, align: 0, flags: 0, ctor: false, dtor: false }) {
        Reply::Created(protocol::Created { cache, slot, .. }) => (cache, slot),
        other => panic!("{other:?}"),
    }
}

fn alloc(s: &mut TestServer, c: ClientId, cache: CacheId) -> Result<protocol::Handle, Error> {
    match call(s, c, &Request::Alloc { cache }) {
        Reply::Object(protocol::Object { handle, .. }) => Ok(handle),
        Reply::Error(e) => Err(e),
        other => panic!("{other:?}"),
    }
}

/// `n` empty one-page slabs in a new cache `name` of `c`.
fn empty_slabs(s: &mut TestServer, c: ClientId, name: &str, n: usize) -> CacheId {
    let (cache, _) = create(s, c, name, 4096);
    let held: Vec<_> = (0..n).map(|_| alloc(s, c, cache).unwrap()).collect();
    for handle in held {
        assert_eq!(call(s, c, &Request::Free { cache, handle }), Reply::Done);
    }
    cache
}

/// A full magazine of `c` kept in the depot of a new cache `name` (its slab stays partial).
fn depot(s: &mut TestServer, c: ClientId, name: &str) -> CacheId {
    let (cache, slot) = create(s, c, name, 64);
    let slot = slot.expect("a magazine slot");
    for op in [ExchangeOp::Refill, ExchangeOp::Drain] {
        assert!(matches!(call(s, c, &Request::MagazineExchange { cache, slot, op }), Reply::Exchanged { .. }));
    }
    assert!(client_digest(s, c).contains("depot [["), "the depot holds a magazine");
    cache
}

/// A new cache "big" of `c` with `pages` one-page objects allocated.
fn big_cache(s: &mut TestServer, c: ClientId, pages: u32) -> CacheId {
    let (cache, _) = create(s, c, "big", 4096);
    for _ in 0..pages {
        alloc(s, c, cache).unwrap();
    }
    cache
}

/// Client `c` has something to lose (a depot, 3 empty slabs): its digest.
fn bystander(s: &mut TestServer, c: ClientId) -> String {
    depot(s, c, "d");
    empty_slabs(s, c, "e", 3);
    client_digest(s, c)
}

fn slabs(s: &TestServer, c: ClientId, cache: CacheId) -> u32 {
    s.engine().cache_info(c, cache).unwrap().num_slabs
}

#[test]
fn a_full_window_never_touches_another_clients_depot_or_slabs() {
    // Client 1's window holds 4 pages; the pool has plenty. It used to flush every client's
    // depots and shrink every client's caches on any OutOfMemory.
    let mut s = server(64, &[(4, 32), (64, 32)]);
    let other = bystander(&mut s, 2);
    let cache = big_cache(&mut s, 1, 4);
    assert_eq!(alloc(&mut s, 1, cache), Err(Error::OutOfMemory));
    assert_eq!(s.engine().pool_stats().free_frames, 64 - 4 - 1 - 3);
    assert_eq!(client_digest(&s, 2), other, "client 1's full window reclaimed from client 2");
}

#[test]
fn an_exhausted_quota_reclaims_from_the_client_itself_only() {
    let mut s = server(64, &[(64, 5), (64, 32)]);
    let own_depot = depot(&mut s, 1, "d"); // one page, its objects all in the depot
    let other = bystander(&mut s, 2);
    let cache = big_cache(&mut s, 1, 4);
    // The fifth page is over quota until client 1's own depot goes back and its slab with it.
    alloc(&mut s, 1, cache).unwrap();
    assert_eq!(slabs(&s, 1, own_depot), 0);
    assert!(!client_digest(&s, 1).contains("depot [["), "client 1's depot was flushed");
    assert_eq!(alloc(&mut s, 1, cache), Err(Error::QuotaExceeded));
    assert_eq!(client_digest(&s, 2), other, "client 1's quota reclaimed from client 2");
}

#[test]
fn pool_pressure_takes_only_what_is_missing_plus_a_batch_from_the_others_in_turn() {
    let mut s = server(32, &[(64, 32), (64, 32), (64, 32)]);
    let two = empty_slabs(&mut s, 2, "e", 10);
    let two_depot = depot(&mut s, 2, "d");
    let three = empty_slabs(&mut s, 3, "e", 10);
    let third = client_digest(&s, 3);
    let free = s.engine().pool_stats().free_frames;
    let cache = big_cache(&mut s, 1, free);
    // The pool is empty: one page missing, taken with a batch from the next client in turn.
    alloc(&mut s, 1, cache).unwrap();
    assert_eq!(slabs(&s, 2, two), 10 - (1 + RECLAIM_BATCH));
    assert_eq!(slabs(&s, 2, two_depot), 1, "empty slabs sufficed: client 2's depot was left alone");
    assert!(client_digest(&s, 2).contains("depot [["));
    assert_eq!(client_digest(&s, 3), third, "client 3 gave nothing");
    // The batch serves the next allocations; the next shortage takes from client 3.
    for _ in 0..RECLAIM_BATCH {
        alloc(&mut s, 1, cache).unwrap();
    }
    let second = client_digest(&s, 2);
    alloc(&mut s, 1, cache).unwrap();
    assert_eq!(slabs(&s, 3, three), 10 - (1 + RECLAIM_BATCH));
    assert_eq!(client_digest(&s, 2), second, "client 2 gave at the last event: client 3's turn");
    s.engine().check_invariants().unwrap();
}

#[test]
fn pool_pressure_flushes_another_clients_depot_only_when_its_empty_slabs_are_not_enough() {
    let mut s = server(16, &[(64, 32), (64, 32)]);
    let two_depot = depot(&mut s, 2, "d");
    let free = s.engine().pool_stats().free_frames;
    let cache = big_cache(&mut s, 1, free);
    alloc(&mut s, 1, cache).unwrap();
    assert_eq!(slabs(&s, 2, two_depot), 0, "the depot went back and its slab with it");
    assert!(!client_digest(&s, 2).contains("depot [["));
}

#[test]
fn a_cache_that_must_not_be_reaped_never_is() {
    let mut s = server(16, &[(64, 32), (64, 32)]);
    let kept = empty_slabs(&mut s, 2, "e", 6);
    s.engine_mut().cache_set_no_reap(2, kept, true).unwrap();
    let other = client_digest(&s, 2);
    let free = s.engine().pool_stats().free_frames;
    let cache = big_cache(&mut s, 1, free);
    assert_eq!(alloc(&mut s, 1, cache), Err(Error::OutOfMemory));
    assert_eq!(client_digest(&s, 2), other);
    // An explicit shrink still works.
    assert_eq!(call(&mut s, 2, &Request::Shrink { cache: kept }), Reply::Shrunk(protocol::Shrunk { pages: 6 }));
}

/// A client with 280 caches of its own (more than the 256 the server's lists once held).
fn many_caches(quota: u32) -> (TestServer, Vec<CacheId>) {
    let mut config = EngineConfig::new(64, 2, 64);
    config.max_caches_per_client = 300;
    let mut s = open_server(config, SERVER, &[(64, quota)]);
    let caches = (0..280).map(|i| create(&mut s, 1, &format!("k{i}"), 4096).0).collect();
    (s, caches)
}

#[test]
fn pressure_relief_reaches_caches_past_the_256th() {
    let (mut s, caches) = many_caches(2);
    let last = caches[279];
    let h = alloc(&mut s, 1, last).unwrap();
    assert_eq!(call(&mut s, 1, &Request::Free { cache: last, handle: h }), Reply::Done);
    alloc(&mut s, 1, caches[0]).unwrap();
    // Over quota unless the empty slab of the 280th cache goes back.
    alloc(&mut s, 1, caches[0]).unwrap();
    assert_eq!(slabs(&s, 1, last), 0);
}

#[test]
fn stats_count_the_objects_of_every_cache_past_the_256th() {
    let (mut s, caches) = many_caches(16);
    for &cache in &caches[270..] {
        alloc(&mut s, 1, cache).unwrap();
    }
    match call(&mut s, 1, &Request::Stats) {
        Reply::Stats(stats) => assert_eq!((stats.live_objects, stats.caches), (10, 280 + 13)),
        other => panic!("{other:?}"),
    }
}

/// Records every shortage it is asked about and frees nothing.
#[derive(Default)]
struct Recorder(Rc<RefCell<Vec<(ClientId, ShortageKind, u32)>>>);

impl PressurePolicy for Recorder {
    fn relieve(&mut self, shortage: &Shortage, _: &mut dyn Reclaim) -> bool {
        self.0.borrow_mut().push((shortage.client, shortage.kind, shortage.needed));
        false
    }
}

#[test]
fn a_policy_of_ones_own_sees_why_each_allocation_failed() {
    let recorder: &'static mut Recorder = Box::leak(Box::default());
    let seen = Rc::clone(&recorder.0);
    let mut s = server(8, &[(2, 32), (64, 3), (64, 32)]);
    s.set_pressure_policy(recorder);
    let (window, _) = create(&mut s, 1, "w", 4096);
    let (quota, _) = create(&mut s, 2, "q", 4096);
    let (pool, _) = create(&mut s, 3, "p", 4096);
    for _ in 0..2 {
        alloc(&mut s, 1, window).unwrap();
    }
    assert_eq!(alloc(&mut s, 1, window), Err(Error::OutOfMemory));
    for _ in 0..3 {
        alloc(&mut s, 2, quota).unwrap();
    }
    assert_eq!(alloc(&mut s, 2, quota), Err(Error::QuotaExceeded));
    for _ in 0..3 {
        alloc(&mut s, 3, pool).unwrap();
    }
    assert_eq!(alloc(&mut s, 3, pool), Err(Error::OutOfMemory));
    assert_eq!(*seen.borrow(), [(1, ShortageKind::Window, 1), (2, ShortageKind::Quota, 1), (3, ShortageKind::Pool, 1)]);
}

//! Shared helpers for the engine tests.
#![allow(dead_code)]

use memserver_engine::testing::{OwnedStorage, VecPlatform};
use memserver_engine::{Engine, EngineConfig};
use protocol::ClientId;

pub type TestEngine = Engine<'static, VecPlatform>;

/// An engine with a pool of `pool` frames and the given clients (window pages, quota).
/// The storage is leaked: fine for a few dozen unit tests.
pub fn engine_with(pool: u32, clients: &[(u32, u32)]) -> TestEngine {
    let config = EngineConfig::new(pool, clients.len().max(1) as u16, 1024);
    engine_config(config, clients)
}

pub fn engine_config(config: EngineConfig, clients: &[(u32, u32)]) -> TestEngine {
    let storage: &'static mut OwnedStorage = Box::leak(Box::new(OwnedStorage::new(&config)));
    let mut e = storage.engine(config);
    for (i, &(window, quota)) in clients.iter().enumerate() {
        e.client_attach(i as ClientId, window, quota).unwrap();
    }
    e.check_invariants().unwrap();
    e
}

/// 256 frames; clients 0, 1, 2 with 512-page windows and 128-frame quotas.
pub fn engine() -> TestEngine {
    engine_with(256, &[(512, 128), (512, 128), (512, 128)])
}

/// Everything observable about accounting: slabinfo of all clients, pool and client stats.
pub fn snapshot(e: &TestEngine) -> String {
    let mut s = String::new();
    e.write_slabinfo(None, &mut s).unwrap();
    s += &format!("{:?}\n", e.pool_stats());
    for c in 0..e.config().max_clients {
        s += &format!("{:?}\n", e.client_stats(c));
    }
    s
}

/// The invariant checker, and the platform's view of every frame agreeing with the engine's.
pub fn check(e: &TestEngine) {
    e.check_invariants().unwrap();
    e.platform().assert_agrees_with(e);
}

/// A new cache `name` of client 0 whose first object was allocated and freed again.
pub fn freed_object(e: &mut TestEngine, name: &str, size: u32, flags: u32) -> (protocol::CacheId, protocol::Handle) {
    let id = e.cache_create(0, name, size, 0, flags, false).unwrap();
    let h = e.cache_alloc(0, id).unwrap().handle;
    e.cache_free(0, id, h).unwrap();
    (id, h)
}

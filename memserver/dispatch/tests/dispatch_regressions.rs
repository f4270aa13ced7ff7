//! Regressions the fuzz targets found in the dispatch, each as a plain test.

use memserver_dispatch::testing::{InProcess, ServerPlatform};
use memserver_dispatch::{ClientSpec, MagazineSizes, Server, ServerConfig, Session};
use memserver_engine::{Engine, EngineConfig};
use protocol::api::{CallError, Client};
use protocol::control::{self, MagazineRole};
use protocol::{Created, Error, ExchangeOp, PROTOCOL_VERSION};

/// The typed client of client 1, for one call.
fn client<'s, 'a>(server: &'s mut Server<'a, ServerPlatform>) -> Client<InProcess<'s, 'a, ServerPlatform>> {
    Client::new(InProcess { server, client: 1 })
}

/// Runs `body` on a server with client 1 connected (64 pages, 16 magazine slots).
fn with_client(body: impl FnOnce(&mut Server<'_, ServerPlatform>)) {
    let config = EngineConfig::new(64, 2, 64);
    let mut storage = memserver_dispatch::testing::OwnedStorage::new(&config);
    let mut sessions = vec![Session::VACANT; 2];
    let engine = Engine::new(config, storage.storage(), ServerPlatform::default()).unwrap();
    let server_config = ServerConfig { magazine_slots: 16, magazine_sizes: MagazineSizes::DEFAULT };
    let mut server = Server::new(engine, &mut sessions, server_config).unwrap();
    let name = protocol::client_name("c").unwrap();
    let size = server.control_size(64);
    server.engine_mut().platform_mut().create_control(1, size);
    let spec = ClientSpec {
        name: name.clone(),
        window_pages: 64,
        quota_pages: 64,
        introspect: false,
        slub_debug: Default::default(),
    };
    server.admit(1, &spec).unwrap();
    client(&mut server).hello(PROTOCOL_VERSION, name).unwrap();
    body(&mut server);
    server.engine().check_invariants().unwrap();
    server.disconnect(1);
    let pool = server.engine().pool_stats();
    assert_eq!(pool.free_frames, pool.total_frames);
}

/// A `Destroy` refused as busy changes nothing: the magazines keep their objects (it used to
/// take them back first, so the objects a client still had in its loaded magazine were free
/// in the server and handed out again).
#[test]
fn busy_destroy_leaves_the_magazines_alone() {
    with_client(busy_destroy);
}

fn busy_destroy(server: &mut Server<'_, ServerPlatform>) {
    let name = protocol::cache_name("busy").unwrap();
    let Created { cache, slot: Some(slot), .. } = client(server).cache_create(name, 64, 0, 0, false, false).unwrap()
    else {
        panic!("no magazine cache")
    };
    let count = client(server).magazine_exchange(cache, slot, ExchangeOp::Refill).unwrap().count;
    let handle = client(server).alloc(cache).unwrap().handle;
    let region = |s: &mut Server<'_, ServerPlatform>| {
        control::read_magazine(s.engine_mut().platform_mut().control_bytes(1).as_slice(), slot, MagazineRole::Loaded)
            .unwrap()
    };
    let loaded = region(server);
    let active = |s: &mut Server<'_, ServerPlatform>| client(s).cache_info(cache).unwrap().active_objs;
    assert_eq!(active(server), u32::from(count) + 1);
    assert_eq!(client(server).destroy(cache), Err(CallError::Server(Error::CacheBusy { live: 1 })));
    assert_eq!(region(server), loaded, "a refused destroy emptied the loaded magazine");
    assert_eq!(active(server), u32::from(count) + 1, "a refused destroy took objects back");
    // Once the last object outside the magazines is freed, the destroy takes them back.
    assert_eq!(client(server).free(cache, handle), Ok(()));
    assert_eq!(client(server).destroy(cache), Ok(()));
}

/// A `Destroy` of a dtor cache refused because it still has slabs changes nothing either:
/// the objects in the client's magazines stay the client's (it used to take them back before
/// the engine refused, so a later `ShrinkBegin` named the slab of objects the client held).
#[test]
fn refused_dtor_destroy_leaves_the_magazines_alone() {
    with_client(|server| {
        let name = protocol::cache_name("dtor").unwrap();
        let Created { cache, slot: Some(slot), .. } = client(server).cache_create(name, 8, 0, 0, false, true).unwrap()
        else {
            panic!("no magazine cache")
        };
        let count = client(server).magazine_exchange(cache, slot, ExchangeOp::Refill).unwrap().count;
        assert_eq!(client(server).destroy(cache), Err(CallError::Server(Error::InvalidArgument)));
        assert_eq!(client(server).cache_info(cache).unwrap().active_objs, u32::from(count));
        let plan = client(server).shrink_begin(cache).unwrap();
        assert!(plan.slabs.is_empty(), "a slab of objects the client holds was named: {plan:?}");
        assert_eq!(client(server).shrink_commit(cache, plan.token).unwrap().pages, 0);
        // The client flushes, runs its dtor over the named slab, commits, then destroys.
        client(server).magazine_exchange(cache, slot, ExchangeOp::Flush).unwrap();
        let plan = client(server).shrink_begin(cache).unwrap();
        assert_eq!(plan.slabs.len(), 1);
        assert_eq!(client(server).shrink_commit(cache, plan.token).unwrap().pages, 1);
        assert_eq!(client(server).destroy(cache), Ok(()));
    });
}

/// Nor does a `Destroy` of a kmalloc cache (never allowed) take back its magazines: it used
/// to, before the engine refused it, and the next refill handed the same objects out again.
#[test]
fn refused_kmalloc_destroy_leaves_the_magazines_alone() {
    with_client(|server| {
        let kmalloc = server.engine().kmalloc_cache(1, 3).unwrap(); // kmalloc-64
        let slot = client(server).cache_info(kmalloc).unwrap().slot.expect("kmalloc-64 has a slot");
        let count = client(server).magazine_exchange(kmalloc, slot, ExchangeOp::Refill).unwrap().count;
        assert_eq!(client(server).destroy(kmalloc), Err(CallError::Server(Error::InvalidArgument)));
        assert_eq!(client(server).cache_info(kmalloc).unwrap().active_objs, u32::from(count));
        client(server).magazine_exchange(kmalloc, slot, ExchangeOp::Flush).unwrap();
        assert_eq!(client(server).cache_info(kmalloc).unwrap().active_objs, 0);
    });
}

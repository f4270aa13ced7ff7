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

/// A `Destroy` refused as busy changes nothing: the magazines keep their objects (it used to
/// take them back first, so the objects a client still had in its loaded magazine were free
/// in the server and handed out again).
#[test]
fn busy_destroy_leaves_the_magazines_alone() {
    let config = EngineConfig::new(64, 2, 64);
    let mut storage = memserver_dispatch::testing::OwnedStorage::new(&config);
    let mut sessions = vec![Session::VACANT; 2];
    let engine = Engine::new(config, storage.storage(), ServerPlatform::default()).unwrap();
    let server_config = ServerConfig { magazine_slots: 16, magazine_sizes: MagazineSizes::DEFAULT };
    let mut server = Server::new(engine, &mut sessions, server_config).unwrap();
    let name = protocol::client_name("c").unwrap();
    let size = server.control_size(64);
    server.engine_mut().platform_mut().create_control(1, size);
    server
        .admit(
            1,
            &ClientSpec {
                name: name.clone(),
                window_pages: 64,
                quota_pages: 64,
                introspect: false,
                slub_debug: Default::default(),
            },
        )
        .unwrap();
    client(&mut server).hello(PROTOCOL_VERSION, name).unwrap();
    let name = protocol::cache_name("busy").unwrap();
    let Created { cache, slot: Some(slot), .. } =
        client(&mut server).cache_create(name, 64, 0, 0, false, false).unwrap()
    else {
        panic!("no magazine cache")
    };
    let count = client(&mut server).magazine_exchange(cache, slot, ExchangeOp::Refill).unwrap().count;
    let handle = client(&mut server).alloc(cache).unwrap().handle;
    let region = |s: &mut Server<'_, ServerPlatform>| {
        control::read_magazine(s.engine_mut().platform_mut().control_bytes(1).as_slice(), slot, MagazineRole::Loaded)
            .unwrap()
    };
    let loaded = region(&mut server);
    let active = |s: &mut Server<'_, ServerPlatform>| client(s).cache_info(cache).unwrap().active_objs;
    assert_eq!(active(&mut server), u32::from(count) + 1);
    assert_eq!(client(&mut server).destroy(cache), Err(CallError::Server(Error::CacheBusy { live: 1 })));
    assert_eq!(region(&mut server), loaded, "a refused destroy emptied the loaded magazine");
    assert_eq!(active(&mut server), u32::from(count) + 1, "a refused destroy took objects back");
    // Once the last object outside the magazines is freed, the destroy takes them back.
    assert_eq!(client(&mut server).free(cache, handle), Ok(()));
    assert_eq!(client(&mut server).destroy(cache), Ok(()));
    server.engine().check_invariants().unwrap();
    server.disconnect(1);
    let pool = server.engine().pool_stats();
    assert_eq!(pool.free_frames, pool.total_frames);
}

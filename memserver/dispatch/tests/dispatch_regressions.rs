//! Regressions the fuzz targets found in the dispatch, each as a plain test.

use memserver_dispatch::testing::ServerPlatform;
use memserver_dispatch::testing::fuzz::encode;
use memserver_dispatch::{ClientSpec, MagazineSizes, Server, ServerConfig, Session};
use memserver_engine::{Engine, EngineConfig};
use protocol::control::{self, MagazineRole};
use protocol::{CacheId, Created, Error, ExchangeOp, Exchanged, Object, PROTOCOL_VERSION, Reply, Request};

fn call(server: &mut Server<'_, ServerPlatform>, request: &Request) -> Reply {
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = server.dispatch(1, &encode(request), &mut buf);
    protocol::decode_reply(&buf[..n]).unwrap()
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
    let server_config = ServerConfig { magazine_slots: 2, magazine_sizes: MagazineSizes::DEFAULT };
    let mut server = Server::new(engine, &mut sessions, server_config).unwrap();
    let name = protocol::client_name("c").unwrap();
    let size = server.config().control_size();
    server.engine_mut().platform_mut().create_control(1, size);
    server.admit(1, &ClientSpec { name: name.clone(), window_pages: 64, quota_pages: 64, introspect: false }).unwrap();
    assert!(matches!(
        call(&mut server, &Request::Hello { version: PROTOCOL_VERSION, client_name: name }),
        Reply::Hello(_)
    ));
    let name = protocol::cache_name("busy").unwrap();
    let Reply::Created(Created { cache, slot: Some(slot), .. }) =
        call(&mut server, &Request::CacheCreate { name, size: 64, align: 0, flags: 0, ctor: false })
    else {
        panic!("no magazine cache")
    };
    let Reply::Exchanged(Exchanged { count, .. }) =
        call(&mut server, &Request::MagazineExchange { cache, slot, op: ExchangeOp::Refill })
    else {
        panic!("refill")
    };
    let Reply::Object(Object { handle, .. }) = call(&mut server, &Request::Alloc { cache }) else { panic!("alloc") };
    let region = |s: &mut Server<'_, ServerPlatform>| {
        control::read_magazine(s.engine_mut().platform_mut().control_bytes(1).as_slice(), slot, MagazineRole::Loaded)
            .unwrap()
    };
    let loaded = region(&mut server);
    let info = |s: &mut Server<'_, ServerPlatform>, cache: CacheId| match call(s, &Request::CacheInfo { cache }) {
        Reply::CacheInfo(i) => i.active_objs,
        other => panic!("{other:?}"),
    };
    assert_eq!(info(&mut server, cache), u32::from(count) + 1);
    assert_eq!(call(&mut server, &Request::Destroy { cache }), Reply::Error(Error::CacheBusy { live: 1 }));
    assert_eq!(region(&mut server), loaded, "a refused destroy emptied the loaded magazine");
    assert_eq!(info(&mut server, cache), u32::from(count) + 1, "a refused destroy took objects back");
    // Once the last object outside the magazines is freed, the destroy takes them back.
    assert_eq!(call(&mut server, &Request::Free { cache, handle }), Reply::Done);
    assert_eq!(call(&mut server, &Request::Destroy { cache }), Reply::Done);
    server.engine().check_invariants().unwrap();
    server.disconnect(1);
    let pool = server.engine().pool_stats();
    assert_eq!(pool.free_frames, pool.total_frames);
}

//! The server's own failures are counted and logged (`ControlAccess::internal_error`); a
//! client's bad input is its own error code and is neither.

use memserver_dispatch::testing::ServerPlatform;
use memserver_dispatch::testing::setup::{call, open_server};
use memserver_dispatch::{MagazineSizes, Server, ServerConfig};
use memserver_engine::testing::Failure;
use memserver_engine::{EngineConfig, Hook};
use protocol::flags::SLAB_POISON;
use protocol::{CacheId, Error, Handle, Reply, Request};

/// A server with clients 1 and 2 open.
fn server() -> Server<'static, ServerPlatform> {
    let config = ServerConfig { magazine_slots: 2, magazine_sizes: MagazineSizes::DEFAULT };
    open_server(EngineConfig::new(64, 3, 64), config, &[(64, 32), (64, 32)])
}

fn create(server: &mut Server<'_, ServerPlatform>, flags: u32) -> CacheId {
    let name = protocol::cache_name("x").unwrap();
    match call(server, 1, &Request::CacheCreate { name, size: 64, align: 0, flags, ctor: false, dtor: false }) {
        Reply::Created(protocol::Created { cache, .. }) => cache,
        other => panic!("{other:?}"),
    }
}

fn alloc(server: &mut Server<'_, ServerPlatform>, cache: CacheId) -> Handle {
    match call(server, 1, &Request::Alloc { cache }) {
        Reply::Object(protocol::Object { handle, .. }) => handle,
        other => panic!("{other:?}"),
    }
}
#[test]
fn a_failed_release_is_counted_and_logged_while_the_request_completes() {
    let mut s = server();
    let cache = create(&mut s, 0);
    let h = alloc(&mut s, cache);
    assert_eq!(call(&mut s, 1, &Request::Free { cache, handle: h }), Reply::Done);
    s.engine_mut().platform_mut().windows.fail_release = Failure::next(Error::Internal);
    assert_eq!(call(&mut s, 1, &Request::Shrink { cache }), Reply::Shrunk(protocol::Shrunk { pages: 1 }));
    assert_eq!(s.internal_errors(), 1);
    let log = &s.engine().platform().internal_errors;
    assert_eq!(log.len(), 1);
    let e = log[0];
    assert_eq!((e.client, e.request, e.failed, e.count), (1, Some(6), false, 1));
    assert_eq!(e.fault.map(|f| f.hook), Some(Hook::Release));
    s.engine().check_invariants().unwrap();
}

#[test]
fn a_request_the_server_fails_is_answered_internal_and_logged() {
    let mut s = server();
    let cache = create(&mut s, SLAB_POISON);
    let h = alloc(&mut s, cache);
    assert_eq!(call(&mut s, 1, &Request::Free { cache, handle: h }), Reply::Done);
    s.engine_mut().platform_mut().windows.fail_read.set(Failure::next(Error::Internal));
    assert_eq!(call(&mut s, 1, &Request::Alloc { cache }), Reply::Error(Error::Internal));
    assert_eq!(s.internal_errors(), 1);
    let e = s.engine().platform().internal_errors[0];
    assert!(e.failed);
    assert_eq!(e.fault.map(|f| f.hook), Some(Hook::Read));
    // The next one succeeds, and is not logged.
    assert_eq!(alloc(&mut s, cache), h);
    assert_eq!(s.internal_errors(), 1);
}

#[test]
fn a_clients_bad_input_is_its_own_error_and_not_an_internal_one() {
    let mut s = server();
    let cache = create(&mut s, 0);
    let h = alloc(&mut s, cache);
    let bad = [
        (Request::Free { cache, handle: Handle(h.0 + 8) }, Error::InvalidObject),
        (Request::Free { cache, handle: Handle(1 << 40) }, Error::InvalidObject),
        (Request::Free { cache: CacheId(u32::MAX), handle: h }, Error::NoSuchCache),
        (Request::Free { cache: s.engine().kmalloc_cache(1, 0).unwrap(), handle: h }, Error::WrongCache),
        (Request::Kfree { handle: Handle(h.0 + 8) }, Error::InvalidObject),
    ];
    for (request, error) in bad {
        assert_eq!(call(&mut s, 1, &request), Reply::Error(error), "{request:?}");
    }
    assert_eq!(call(&mut s, 1, &Request::Free { cache, handle: h }), Reply::Done);
    assert_eq!(call(&mut s, 1, &Request::Free { cache, handle: h }), Reply::Error(Error::DoubleFree));
    let mut raw = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = s.dispatch(1, &[0xff, 0xff], &mut raw);
    assert_eq!(protocol::decode_reply(&raw[..n]), Ok(Reply::Error(Error::Malformed)));
    assert_eq!(s.internal_errors(), 0);
    assert!(s.engine().platform().internal_errors.is_empty());
}

#[test]
fn a_failed_release_while_a_client_is_reclaimed_is_logged_as_its_disconnect() {
    let mut s = server();
    let cache = create(&mut s, 0);
    alloc(&mut s, cache);
    s.engine_mut().platform_mut().windows.fail_release = Failure::next(Error::Internal);
    assert_eq!(s.disconnect(1), 1);
    let e = s.engine().platform().internal_errors[0];
    assert_eq!((e.client, e.request, e.failed), (1, None, false));
    let pool = s.engine().pool_stats();
    assert_eq!((pool.free_frames, pool.quarantined_frames), (63, 1));
    s.engine().check_invariants().unwrap();
}

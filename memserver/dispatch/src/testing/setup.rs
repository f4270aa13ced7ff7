//! A server ready for a test: storage leaked (fine in tests), clients admitted and open, one
//! call per request, and a digest of everything one client holds.

extern crate std;

use std::boxed::Box;
use std::format;
use std::string::String;
use std::vec;

use memserver_engine::{Engine, EngineConfig};
use protocol::{ClientId, PROTOCOL_VERSION, Reply, Request};

use super::fuzz::encode;
use super::{OwnedStorage, ServerPlatform};
use crate::{ClientSpec, Server, ServerConfig, Session};

/// A server whose clients `1..=clients.len()` (each `(window_pages, quota_pages)`, named
/// `c1`, `c2`, …) are admitted and have said `Hello`.
pub fn open_server(
    engine: EngineConfig,
    server: ServerConfig,
    clients: &[(u32, u32)],
) -> Server<'static, ServerPlatform> {
    let storage = Box::leak(Box::new(OwnedStorage::new(&engine)));
    let sessions = Box::leak(vec![Session::VACANT; usize::from(engine.max_clients)].into_boxed_slice());
    let engine = Engine::new(engine, storage.storage(), ServerPlatform::default()).expect("engine");
    let mut s = Server::new(engine, sessions, server).expect("server");
    for (i, &(window_pages, quota_pages)) in clients.iter().enumerate() {
        let c = ClientId::try_from(i + 1).expect("client id");
        let name = protocol::client_name(&format!("c{c}")).expect("name");
        let size = s.control_size(window_pages);
        s.engine_mut().platform_mut().create_control(c, size);
        let spec = ClientSpec {
            name: name.clone(),
            window_pages,
            quota_pages,
            introspect: false,
            slub_debug: protocol::slub_debug::SlubDebug::NONE,
        };
        s.admit(c, &spec).expect("admit");
        let hello = call(&mut s, c, &Request::Hello { version: PROTOCOL_VERSION, client_name: name });
        assert!(matches!(hello, Reply::Hello { .. }), "{hello:?}");
    }
    s
}

/// Sends `request` as `client`; the decoded reply.
pub fn call(server: &mut Server<'_, ServerPlatform>, client: ClientId, request: &Request) -> Reply {
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = server.dispatch(client, &encode(request), &mut buf);
    protocol::decode_reply(buf.get(..n).expect("reply length")).expect("every reply decodes")
}

/// Everything `client` holds, as text: its slabinfo rows, its accounting, every depot's
/// handles. Equal digests: nothing of the client changed.
pub fn client_digest(server: &Server<'_, ServerPlatform>, client: ClientId) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    server.engine().slabinfo_rows(Some(client), |row| {
        let _ = writeln!(s, "{row:?}");
    });
    let _ = writeln!(s, "{:?}", server.engine().client_stats(client));
    if let Some(session) = server.sessions.get(usize::from(client)) {
        for slot in session.slots.iter().filter(|slot| slot.cache.is_some()) {
            let held: std::vec::Vec<_> = slot.depot.full.iter().take(slot.depot.len).map(|m| m.handles()).collect();
            let _ = writeln!(s, "{:?} depot {held:?}", slot.cache);
        }
    }
    s
}

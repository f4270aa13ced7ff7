//! The conformance suite against the in-process dispatch (tier (i) of the protocol issue).

use std::cell::RefCell;
use std::rc::Rc;

use conformance::{Harness, Session, TransportError};
use memserver_dispatch::testing::{OwnedStorage, ServerPlatform};
use memserver_dispatch::{ClientSpec, MagazineSizes, Server, ServerConfig, Session as ServerSession};
use memserver_engine::{Engine, EngineConfig};
use protocol::slub_debug::SlubDebug;
use protocol::{ClientId, Handle};

type Shared = Rc<RefCell<Server<'static, ServerPlatform>>>;

/// One server, two client tasks: `conformance` (id 1) and `conformance-peer` (id 2, with
/// introspection rights), as the host system.toml declares them.
struct InProcess {
    server: Shared,
}

/// The suite's client tasks as the host `system.toml` declares them: name, id, introspection
/// rights, `slub_debug`.
const CLIENTS: [(&str, ClientId, bool, &str); 3] = [
    (conformance::CLIENT, 1, false, ""),
    (conformance::PEER, 2, true, ""),
    (conformance::DEBUG, 3, false, conformance::DEBUG_SLUB_DEBUG),
];
const WINDOW_PAGES: u32 = 4096;
const QUOTA_PAGES: u32 = 512;

impl InProcess {
    fn new() -> Self {
        let mut config = EngineConfig::new(2048, 4, WINDOW_PAGES);
        config.max_caches_per_client = 96;
        let storage: &'static mut OwnedStorage = Box::leak(Box::new(OwnedStorage::new(&config)));
        let engine = Engine::new(config, storage.storage(), ServerPlatform::default()).expect("engine");
        let sessions: &'static mut [ServerSession] = Box::leak(vec![ServerSession::VACANT; 4].into_boxed_slice());
        let server_config = ServerConfig { magazine_slots: 32, magazine_sizes: MagazineSizes::DEFAULT };
        let server = Server::new(engine, sessions, server_config).expect("server");
        InProcess { server: Rc::new(RefCell::new(server)) }
    }
}

struct InProcessSession {
    server: Shared,
    client: ClientId,
}

impl Harness for InProcess {
    fn open(&mut self, name: &str) -> Result<Box<dyn Session>, TransportError> {
        let (name, client, introspect, slub_debug) = CLIENTS
            .iter()
            .copied()
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| TransportError(format!("no client task {name}")))?;
        let spec = ClientSpec {
            name: protocol::client_name(name).expect("name"),
            window_pages: WINDOW_PAGES,
            quota_pages: QUOTA_PAGES,
            introspect,
            slub_debug: SlubDebug::parse(slub_debug).expect("slub_debug"),
        };
        let mut server = self.server.borrow_mut();
        let control_size = server.control_size(WINDOW_PAGES);
        server.engine_mut().platform_mut().create_control(client, control_size);
        server.admit(client, &spec).map_err(|e| TransportError(format!("admit {name}: {e:?}")))?;
        Ok(Box::new(InProcessSession { server: self.server.clone(), client }))
    }
}

impl Session for InProcessSession {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
        let n = self.server.borrow_mut().dispatch(self.client, request, &mut buf);
        reply.get_mut(..n).ok_or_else(|| TransportError("reply buffer too small".into()))?.copy_from_slice(&buf[..n]);
        Ok(n)
    }

    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let server = self.server.borrow();
        memserver_engine::Platform::read(server.engine().platform(), self.client, handle.0 + offset as u64, buf)
            .map_err(|e| TransportError(format!("window read: {e}")))
    }

    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let mut server = self.server.borrow_mut();
        memserver_engine::Platform::write(
            server.engine_mut().platform_mut(),
            self.client,
            handle.0 + offset as u64,
            data,
        )
        .map_err(|e| TransportError(format!("window write: {e}")))
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let mut server = self.server.borrow_mut();
        let region = server.engine_mut().platform_mut().control_bytes(self.client);
        let src = region
            .get(offset..offset + buf.len())
            .ok_or_else(|| TransportError("outside the control region".into()))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let mut server = self.server.borrow_mut();
        let region = server.engine_mut().platform_mut().control_bytes(self.client);
        let dst = region
            .get_mut(offset..offset + data.len())
            .ok_or_else(|| TransportError("outside the control region".into()))?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

impl Drop for InProcessSession {
    fn drop(&mut self) {
        let mut server = self.server.borrow_mut();
        server.disconnect(self.client);
        server.engine().check_invariants().expect("invariants after a session");
    }
}

#[test]
fn conformance_suite_in_process() {
    let mut harness = InProcess::new();
    let mut out = String::new();
    let summary = conformance::run_all(&mut harness, "", &mut out);
    print!("{out}");
    assert!(summary.ok(), "{} scenarios failed:\n{out}", summary.failed);
    assert!(summary.passed >= 30, "only {} scenarios", summary.passed);
    harness.server.borrow().engine().check_invariants().expect("invariants at the end");
    let pool = harness.server.borrow().engine().pool_stats();
    assert_eq!(pool.free_frames, pool.total_frames, "frames leaked after every session closed");
}

//! The conformance suite against the in-process dispatch (tier (i) of the protocol issue).

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::rc::Rc;

use conformance::{Harness, Session, TransportError};
use memserver_dispatch::testing::{OwnedStorage, VecPlatform};
use memserver_dispatch::{
    ClientSpec, ControlAccess, InternalError, MagazineSizes, Server, ServerConfig, Session as ServerSession,
};
use memserver_engine::{Engine, EngineConfig, Platform};
use protocol::control::ControlMemory;
use protocol::slub_debug::SlubDebug;
use protocol::{ClientId, Error, Handle, PAGE_SIZE};

type Shared = Rc<RefCell<Server<'static, MappedPlatform>>>;

/// Memory of one client at a fixed address: the client library in the suite works on it
/// through raw pointers (as a client task does on its mappings), the server through copies.
struct Region {
    base: NonNull<u8>,
    layout: Layout,
}

impl Region {
    fn new(len: usize, align: usize) -> Region {
        let layout = Layout::from_size_align(len, align).expect("region layout");
        // SAFETY: a non-zero size (every region has at least one page).
        let base = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) }).expect("region memory");
        Region { base, layout }
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    /// The address of `len` bytes at `offset`, if they lie in the region.
    fn at(&self, offset: u64, len: usize) -> Result<*mut u8, Error> {
        let start = usize::try_from(offset).map_err(|_| Error::Internal)?;
        match start.checked_add(len) {
            // SAFETY: start + len <= the region's size, so the pointer stays inside it.
            Some(end) if end <= self.len() => Ok(unsafe { self.base.as_ptr().add(start) }),
            _ => Err(Error::Internal),
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}

impl ControlMemory for Region {
    fn len(&self) -> usize {
        self.layout.size()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let src = self.at(offset as u64, dst.len()).map_err(|_| Error::InvalidArgument)?;
        // SAFETY: `src .. src + len` lies in the region; `dst` is distinct private memory.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let dst = self.at(offset as u64, src.len()).map_err(|_| Error::InvalidArgument)?;
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }
}

/// The in-process platform: each client's window and control region at a fixed address
/// (the window aligned to `WINDOW_BASE_ALIGN`, as the host maps it), so the client library can
/// run in the suite; a [`VecPlatform`] beside them checks the engine's use of the frame hooks
/// and keeps its private frames.
#[derive(Default)]
struct MappedPlatform {
    checks: VecPlatform,
    windows: BTreeMap<ClientId, Region>,
    controls: BTreeMap<ClientId, Region>,
    internal_errors: Vec<InternalError>,
}

impl MappedPlatform {
    fn window(&self, client: ClientId, offset: u64, len: usize) -> Result<*mut u8, Error> {
        self.windows.get(&client).ok_or(Error::Internal)?.at(offset, len)
    }
}

impl Platform for MappedPlatform {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        self.checks.map(client, first_page, frames)
    }

    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        self.checks.release(client, first_page, frames)?;
        self.fill(client, u64::from(first_page) * PAGE_SIZE as u64, frames.len() * PAGE_SIZE, 0)
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let src = self.window(client, offset, buf.len())?;
        // SAFETY: inside the client's window; `buf` is private memory.
        unsafe { std::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        let dst = self.window(client, offset, data.len())?;
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        let dst = self.window(client, offset, len)?;
        // SAFETY: inside the client's window.
        unsafe { dst.write_bytes(byte, len) };
        Ok(())
    }

    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        self.checks.private_frame(frame)
    }

    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        self.checks.private_release(frame)
    }
}

impl ControlAccess for MappedPlatform {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.controls.get_mut(&client).map(|r| r as &mut dyn ControlMemory)
    }

    fn internal_error(&mut self, error: &InternalError) {
        self.internal_errors.push(*error);
    }
}

/// One server, three client tasks: `conformance` (id 1), `conformance-peer` (id 2, with
/// introspection rights) and `conformance-debug` (id 3, its kmalloc caches debug caches), as
/// the host system.toml declares them.
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
        let engine = Engine::new(config, storage.storage(), MappedPlatform::default()).expect("engine");
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
        let platform = server.engine_mut().platform_mut();
        let window = WINDOW_PAGES as usize * PAGE_SIZE;
        platform.windows.insert(client, Region::new(window, protocol::WINDOW_BASE_ALIGN));
        platform.controls.insert(client, Region::new(control_size, PAGE_SIZE));
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
        let region = server.engine_mut().platform_mut().controls.get(&self.client);
        let region = region.ok_or_else(|| TransportError("no control region".into()))?;
        region.read(offset, buf).map_err(|_| TransportError("outside the control region".into()))
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let mut server = self.server.borrow_mut();
        let region = server.engine_mut().platform_mut().controls.get_mut(&self.client);
        let region = region.ok_or_else(|| TransportError("no control region".into()))?;
        region.write(offset, data).map_err(|_| TransportError("outside the control region".into()))
    }

    fn mapped(&self) -> Option<(memclient::Window, memclient::Control)> {
        let server = self.server.borrow();
        let platform = server.engine().platform();
        let (window, control) = (platform.windows.get(&self.client)?, platform.controls.get(&self.client)?);
        // SAFETY: both regions stay allocated, read-write, until this client is admitted again,
        // which happens only after this session (and the library session using it) is gone;
        // the control region is page aligned.
        unsafe {
            Some((
                memclient::Window::new(window.base, window.len()),
                memclient::Control::new(control.base, control.len()),
            ))
        }
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
    assert!(harness.server.borrow().engine().platform().internal_errors.is_empty(), "internal errors");
}

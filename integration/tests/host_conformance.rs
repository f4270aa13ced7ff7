//! The conformance suite against the real `memserver` process (tier (ii) of the protocol
//! issue): every scenario over a Unix socket, object memory through the mapped memfds.

mod host;

use std::path::PathBuf;
use std::time::Duration;

use conformance::{Harness, Session, TransportError};
use memclient::host::{ConnectError, Connection};
use memserver_system::SystemText;
use protocol::Handle;

/// The conformance suite's three clients (the peer introspects, the debug one runs `slub_debug`).
fn system() -> String {
    SystemText::new(2048)
        .server("max_caches_per_client", 64)
        .client("conformance", 512, 4096)
        .client("conformance-peer", 512, 4096)
        .client_key("introspect", true)
        .client("conformance-debug", 512, 4096)
        .client_key("slub_debug", "\"FZPU,kmalloc-*\"")
        .into()
}

struct HostHarness {
    socket: PathBuf,
}

/// A session connects on its first request (the host admits a connection by its first
/// message, which must be a `Hello`); a refused first message leaves it unconnected.
struct HostSession {
    socket: PathBuf,
    connection: Option<Connection>,
}

fn io(e: impl std::fmt::Display) -> TransportError {
    TransportError(e.to_string())
}

impl Harness for HostHarness {
    fn open(&mut self, _name: &str) -> Result<Box<dyn Session>, TransportError> {
        Ok(Box::new(HostSession { socket: self.socket.clone(), connection: None }))
    }
}

impl HostSession {
    fn connection(&self) -> Result<&Connection, TransportError> {
        self.connection.as_ref().ok_or_else(|| TransportError("not connected".into()))
    }
}

impl Session for HostSession {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let Some(connection) = self.connection.as_mut() else {
            let bytes = match Connection::connect(&self.socket, request) {
                Ok((connection, bytes)) => {
                    self.connection = Some(connection);
                    bytes
                }
                Err(ConnectError::Refused(bytes)) => bytes,
                Err(e) => return Err(io(e)),
            };
            let dst = reply.get_mut(..bytes.len()).ok_or_else(|| io("reply too long"))?;
            dst.copy_from_slice(&bytes);
            return Ok(bytes.len());
        };
        match connection.call(request, reply) {
            Ok(0) => {
                self.connection = None;
                Err(io("server closed the connection"))
            }
            Ok(n) => Ok(n),
            Err(e) => Err(io(e)),
        }
    }

    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let at = usize::try_from(handle.0).map_err(io)? + offset;
        self.connection()?.window().read(at, buf).then_some(()).ok_or_else(|| io("outside the window"))
    }

    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let at = usize::try_from(handle.0).map_err(io)? + offset;
        self.connection()?.window().write(at, data).then_some(()).ok_or_else(|| io("outside the window"))
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        self.connection()?.control().read(offset, buf).then_some(()).ok_or_else(|| io("outside the control region"))
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.connection()?.control().write(offset, data).then_some(()).ok_or_else(|| io("outside the control region"))
    }

    fn is_open(&self) -> bool {
        self.connection.is_some()
    }

    fn mapped(&self) -> Option<(memclient::Window, memclient::Control)> {
        let c = self.connection.as_ref()?;
        let (window, control) = (std::ptr::NonNull::new(c.window_base())?, std::ptr::NonNull::new(c.control_base())?);
        // SAFETY: both mappings belong to the connection, which lives as long as this session
        // (and so as long as the library session built on it); the control region is page
        // aligned.
        unsafe {
            Some((memclient::Window::new(window, c.window_len()), memclient::Control::new(control, c.control_len())))
        }
    }
}

impl Drop for HostSession {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.close(Duration::from_secs(10));
        }
    }
}

#[test]
fn conformance_suite_against_the_real_server() {
    let server = host::start_real(&system());
    let mut harness = HostHarness { socket: server.socket.clone() };
    let mut out = String::new();
    let summary = conformance::run_all(&mut harness, "", &mut out);
    print!("{out}");
    assert!(summary.ok(), "{} scenarios failed:\n{out}\nserver log:\n{}", summary.failed, server.stderr_so_far());
    assert!(summary.passed >= 30, "only {} scenarios", summary.passed);
    let (status, log) = server.stop();
    assert!(status.success(), "server exit {status:?}: {log}");
}

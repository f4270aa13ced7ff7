//! The Linux host transport: [`Connection`] to a running `memserver`.
//!
//! `Connection::connect` sends the (already encoded) `Hello`, receives the reply with the
//! window and control-region memfds (`SCM_RIGHTS`, window first), and maps both `MAP_SHARED`.
//! Requests then go one at a time with [`Connection::call`]. Objects are handles (window
//! offsets); `window_base() + handle` is the object's address in this process.
//!
//! [`LazySession`] makes the session on first use from `MEMSERVER_SOCKET` and
//! `MEMSERVER_CLIENT`, for code without a place to connect first; [`GlobalKmalloc`] is the
//! `#[global_allocator]` built on it.

mod connection;
mod cpu;
mod global_alloc;
mod lazy;
mod mapping;

pub use connection::{ConnectError, Connection, MESSAGE_MAX};
pub use global_alloc::GlobalKmalloc;
pub use lazy::{CLIENT_VARIABLE, LazyError, LazySession, SOCKET_VARIABLE, Target};
pub use mapping::Mapping;

use std::path::Path;
use std::ptr::NonNull;

use crate::server::{Memserver, hello_request};
use crate::shm::{Control, Window};
use crate::transport::{Transport, TransportError};

impl Transport for Connection {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        match Connection::call(self, request, reply) {
            Ok(0) => Err(TransportError::Disconnected),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(TransportError::Truncated),
            Err(e) => Err(TransportError::Os(e.raw_os_error().unwrap_or(0))),
        }
    }
}

/// Connects to the `memserver` at `socket_path` as the client task `name` of its
/// `system.toml`, and maps the window and control region: a ready [`Memserver`] session.
pub fn connect(socket_path: &Path, name: &str) -> Result<Memserver<Connection>, crate::Error> {
    let mut hello = [0u8; protocol::MAX_MESSAGE_BYTES];
    let len = hello_request(name, &mut hello)?;
    let (connection, reply) = match Connection::connect(socket_path, hello.get(..len).unwrap_or(&[])) {
        Ok(ok) => ok,
        Err(ConnectError::Refused(reply)) => {
            return Err(match protocol::decode_reply(&reply) {
                Ok(protocol::Reply::Error(e)) => crate::Error::Server(e),
                _ => crate::Error::UnexpectedReply,
            });
        }
        Err(ConnectError::Io(e)) => {
            return Err(crate::Error::Transport(TransportError::Os(e.raw_os_error().unwrap_or(0))));
        }
    };
    let reply = protocol::decode_reply(&reply).map_err(|_| crate::Error::UnexpectedReply)?;
    let window_base = NonNull::new(connection.window_base()).ok_or(crate::Error::NotInWindow)?;
    let control_base = NonNull::new(connection.control_base()).ok_or(crate::Error::NotInWindow)?;
    // SAFETY: both mappings belong to `connection`, which the Memserver owns from here on, so
    // they stay mapped (read/write, page aligned) for as long as the window and control
    // region are used.
    #[allow(unsafe_code)]
    let (window, control) = unsafe {
        (Window::new(window_base, connection.window_len()), Control::new(control_base, connection.control_len()))
    };
    Memserver::new(connection, &reply, window, control)
}

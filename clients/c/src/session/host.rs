//! Linux: the session is made on first use from `MEMSERVER_SOCKET` and `MEMSERVER_CLIENT` (a
//! [`LazySession`] over memclient's Unix-socket transport), or by `memclient_connect()`.

use core::ffi::c_int;
use std::path::Path;

use memclient::Memserver;
use memclient::host::{Connection, LazyError, LazySession, Target};

use crate::error::{self, errno};

/// The transport of the process's session.
pub type SessionTransport = Connection;

/// Why there is no session.
pub type SessionError = LazyError;

static SESSION: LazySession = LazySession::new(Target::Environment, "memclient calls fail (return NULL)");

/// The session, connecting first if nobody has tried yet (waits while another thread does).
pub(super) fn get() -> Result<&'static Memserver<SessionTransport>, SessionError> {
    SESSION.get()
}

/// Connects now to `socket` as `client`.
pub(super) fn connect(socket: &str, client: &str) -> Result<&'static Memserver<SessionTransport>, SessionError> {
    SESSION.connect_to(Path::new(socket), client)
}

/// The errno value for `error`.
pub(crate) fn errno_of(error: &SessionError) -> c_int {
    match error {
        LazyError::Connecting => errno::EAGAIN,
        LazyError::NotConfigured(_) => errno::ENOTCONN,
        LazyError::Connect(e) => error::code_of(e),
        LazyError::AlreadyConnected => errno::EISCONN,
    }
}

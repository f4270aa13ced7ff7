//! Without `std` (seL4): the platform makes the session and installs it ([`install`]) before
//! any C code runs; there are no sockets to connect to. The session's transport is whatever
//! the platform has, boxed ([`BoxedTransport`]): this crate cannot name the seL4 task's
//! transport type, and one indirect call is nothing beside an IPC.

use alloc::boxed::Box;
use core::ffi::c_int;
use core::fmt;

use memclient::{Memserver, Transport, TransportError};

use crate::error::errno;

/// Any transport, boxed.
pub struct BoxedTransport(Box<dyn Transport + Send>);

impl BoxedTransport {
    /// Boxes `transport`.
    pub fn new(transport: impl Transport + Send + 'static) -> Self {
        BoxedTransport(Box::new(transport))
    }
}

impl Transport for BoxedTransport {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        self.0.call(request, reply)
    }
}

/// The transport of the process's session.
pub type SessionTransport = BoxedTransport;

/// Why there is no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The platform has not installed one (yet).
    NotInstalled,
    /// `memclient_connect()` after the platform installed one.
    AlreadyInstalled,
    /// `memclient_connect()` before: this platform has no sockets; its runtime installs the
    /// session.
    NoSockets,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::NotInstalled => "no memserver session: the task's runtime installed none",
            SessionError::AlreadyInstalled => "already connected (the task's runtime installed the session)",
            SessionError::NoSockets => "no sockets on this platform: the task's runtime installs the session",
        })
    }
}

static SESSION: spin::Once<Memserver<SessionTransport>> = spin::Once::new();

/// Makes `server` the process's session, which every C call uses from now on. Once: with a
/// session installed already, `server` is dropped and `AlreadyInstalled` comes back.
pub fn install(server: Memserver<SessionTransport>) -> Result<&'static Memserver<SessionTransport>, SessionError> {
    let mut offered = Some(server);
    // The closure runs only if nothing is installed yet, and then takes the offer.
    let installed = SESSION.try_call_once(|| offered.take().ok_or(SessionError::AlreadyInstalled))?;
    if offered.is_some() { Err(SessionError::AlreadyInstalled) } else { Ok(installed) }
}

/// The installed session.
pub(super) fn get() -> Result<&'static Memserver<SessionTransport>, SessionError> {
    SESSION.get().ok_or(SessionError::NotInstalled)
}

/// `memclient_connect()`: refused, there are no sockets here.
pub(super) fn connect(_socket: &str, _client: &str) -> Result<&'static Memserver<SessionTransport>, SessionError> {
    Err(if SESSION.is_completed() { SessionError::AlreadyInstalled } else { SessionError::NoSockets })
}

/// The errno value for `error`.
pub(crate) fn errno_of(error: &SessionError) -> c_int {
    match error {
        SessionError::NotInstalled => errno::ENOTCONN,
        SessionError::AlreadyInstalled => errno::EISCONN,
        SessionError::NoSockets => errno::EOPNOTSUPP,
    }
}

//! Sessions of the client library (`memclient`), for the scenarios of the rules the library
//! implements over the protocol: `kmalloc(0)` is `ZERO_SIZE_PTR`, `kmalloc`/`kfree` through
//! magazines and the server's page-owner table, `ksize`, `krealloc`, `kcalloc`, natural
//! alignment of addresses, bulk allocation, constructors over whole slabs, destructors.
//!
//! A library session is an ordinary [`Session`](crate::Session) whose platform maps the
//! client's window and control region into the suite ([`Session::mapped`]).

use alloc::format;

use memclient::Memserver;
use protocol::{PROTOCOL_VERSION, Request};

use crate::client::{Failure, SessionTransport};
use crate::harness::Harness;

/// A client-library session over the platform's transport.
pub type Library = Memserver<SessionTransport>;

/// Opens a session as `name`, says `Hello`, and builds the library's session over the mapped
/// window and control region.
pub fn library(h: &mut dyn Harness, name: &str) -> Result<Library, Failure> {
    let mut session = h.open(name).map_err(|e| format!("open {name}: {}", e.0))?;
    let client_name = protocol::client_name(name).map_err(|e| format!("{e}"))?;
    let hello = Request::Hello { version: PROTOCOL_VERSION, client_name };
    let mut bytes = [0u8; protocol::MAX_MESSAGE_BYTES];
    let request = protocol::encode_request(&hello, &mut bytes).map_err(|e| format!("encode Hello: {e}"))?.len();
    let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = session.call(&bytes[..request], &mut reply).map_err(|e| format!("Hello: {}", e.0))?;
    let reply = protocol::decode_reply(reply.get(..n).unwrap_or(&[])).map_err(|e| format!("Hello reply: {e}"))?;
    let (window, control) = session
        .mapped()
        .ok_or_else(|| format!("this platform does not map {name}'s window and control region into the suite"))?;
    Memserver::new(SessionTransport::new(session), &reply, window, control).map_err(|e| format!("library session: {e}"))
}

/// The value of a library call that must succeed, else a failure naming `what`.
pub fn must<T>(what: &str, result: Result<T, memclient::Error>) -> Result<T, Failure> {
    result.map_err(|e| format!("{what}: {e}"))
}

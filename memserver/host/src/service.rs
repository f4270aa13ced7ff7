//! The narrow interface between the host runner (sockets, memfds, epoll) and the protocol
//! layer (decoding, the engine, dispatch).
//!
//! The runner knows nothing about message contents; the service knows nothing about sockets.
//! Every call gets a reply buffer of [`REPLY_MAX`] bytes and returns how many it filled.

use protocol::ClientId;

use crate::memory::Windows;

/// Largest request the runner accepts, in bytes. A longer message is a transport error: the
/// connection is closed.
pub const REQUEST_MAX: usize = 64 * 1024;

/// Size of the reply buffer handed to the service, in bytes.
pub const REPLY_MAX: usize = 64 * 1024;

/// The service's verdict on the first message of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admit the connection as `client` (an id from system.toml, 1-based). The runner creates
    /// the client's window (`window_pages` of system.toml) and a control region of
    /// `control_len` bytes (rounded up to whole pages), then sends `reply[..reply_len]` with
    /// both memfds attached (window first, control second). From now on the service owes the
    /// runner nothing until `disconnected(client)`, which the runner calls exactly once for
    /// every `Admit` it accepted.
    Admit {
        /// Who the connection is.
        client: ClientId,
        /// Control region size in bytes (at least 1).
        control_len: usize,
        /// Bytes of the Hello reply written into `reply`.
        reply_len: usize,
    },
    /// Refuse: the runner sends `reply[..reply_len]` (if not empty) and closes the connection.
    Refuse {
        /// Bytes of the refusal written into `reply`.
        reply_len: usize,
    },
    /// Answer, and go on waiting for a `Hello` on this connection (a `Hello` of another
    /// protocol version: the client may retry). The connection's Hello deadline is unchanged.
    Retry {
        /// Bytes of the answer written into `reply`.
        reply_len: usize,
    },
}

/// Refusals the runner decides on its own; the service turns them into reply bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pool of connections waiting for their `Hello` is full and this one (the oldest
    /// silent one) was evicted to make room.
    TooManyConnections,
    /// The peer's credentials are not the identity of the client task it named; it was
    /// admitted and at once `disconnected`.
    NotPermitted,
    /// The client's memory could not be created (memfd, mmap); it was admitted and at once
    /// `disconnected`.
    OutOfResources,
}

/// The protocol layer, as the runner sees it. All methods run on the runner's one thread and
/// must not block; none may panic on anything a client sent or wrote.
pub trait Service {
    /// Decides on the first message of a connection, which must be a `Hello`: decode it, check
    /// the protocol version and that it names a client task of system.toml not already
    /// connected. On `Admit` the service records the client as connected. Whether the peer
    /// may be that client (its kernel credentials) is the runner's check, made after `Admit`.
    fn admit(&mut self, hello: &[u8], reply: &mut [u8]) -> Admission;

    /// Encodes a refusal the runner decided on (see [`Refusal`]); returns the reply length.
    fn refusal(&mut self, why: Refusal, reply: &mut [u8]) -> usize;

    /// Handles one request from an admitted client; returns the reply length (0 sends no
    /// reply). When `admit` returned a `reply_len` of 0, the runner calls this with the Hello
    /// itself once the client's memory exists, and sends that reply with the memfds.
    fn handle(&mut self, client: ClientId, request: &[u8], reply: &mut [u8]) -> usize;

    /// `client` has gone (EOF, error, killed, refused to read its replies, broke its grant, or
    /// server shutdown): reclaim everything it held. Its memory is still mapped during this
    /// call and unmapped right after. A client the runner refused right after `Admit` (its
    /// peer is not that client's identity, or its memory could not be made) never had memory.
    fn disconnected(&mut self, client: ClientId);

    /// The memory of every connected client. The service owns it (the engine's platform layer
    /// reaches client memory through it); the runner creates each client's memory on
    /// admission, inserts it here, and removes it after `disconnected`.
    fn memory(&mut self) -> &mut Windows;
}

//! How a client reaches the server: anything that carries one request and brings back one
//! reply (a Unix socket on the host, `seL4_Call` on seL4). The trait lives in `protocol`
//! (a pure trait, shared with the conformance and hostile suites); it is re-exported here so
//! `memclient::Transport` keeps working.

pub use protocol::transport::{Transport, TransportError};

//! The Linux host transport: [`Connection`] to a running `memserver`.
//!
//! `Connection::connect` sends the (already encoded) `Hello`, receives the reply with the
//! window and control-region memfds (`SCM_RIGHTS`, window first), and maps both `MAP_SHARED`.
//! Requests then go one at a time with [`Connection::call`]. Objects are handles (window
//! offsets); `window_base() + handle` is the object's address in this process.

mod connection;
mod mapping;

pub use connection::{ConnectError, Connection, MESSAGE_MAX};
pub use mapping::Mapping;

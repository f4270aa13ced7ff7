//! memclient: the Linux `kmem_cache` API for memserver clients.
//!
//! # Design
//! The core is `no_std` so seL4 client tasks can use it; the `std` feature (on by default)
//! adds [`host`], the Linux transport: a Unix `SOCK_SEQPACKET` connection to the `memserver`
//! process and the client's window and control region mapped from the memfds the server
//! passes in its Hello reply. This crate never depends on the server crate.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "std")]
pub mod host;

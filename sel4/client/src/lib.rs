//! memserver-sel4-client: what an seL4 client task does besides its syscalls.
//!
//! # Design
//! A client task's kernel calls are one operation, `seL4_Call` on an endpoint capability: a
//! label and message-register words out, a label and words back. This crate is everything
//! around it, behind the [`Link`] trait that the task's glue implements with that one call:
//! how request bytes go into message registers and a reply comes out ([`call`]), and both
//! sides of the agent protocol by which one task acts as a client for another
//! ([`agent::Agent`] serves requests on its own window and session; [`agent::RemoteClient`]
//! is the driver's view of a peer client). The task's glue keeps only the syscall and the
//! unsafe copies in and out of its mapped regions; everything here is tested on the host.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod agent;
pub mod call;

use protocol::framing::MessageWords;

/// One `seL4_Call` on an endpoint: `label` and `words` out; the reply's label and number of
/// words (written into `reply`) back.
pub trait Link {
    /// Calls and waits for the answer.
    fn call(&mut self, label: u64, words: &[u64], reply: &mut MessageWords) -> (u64, usize);
}

pub use call::{CallError, call};

//! conformance: the memserver protocol conformance suite, written once for every platform.
//!
//! # Design
//! Each scenario is a function named after the rule it checks; it opens sessions through a
//! [`Harness`] ("send these request bytes, give me the reply bytes", plus copy access to object
//! memory and the control region) and speaks the protocol through [`Client`], the protocol's
//! one typed client (`protocol::api::Client`) over that session. The crate
//! is `no_std` + `alloc`, so the same scenarios run in-process against the dispatch in
//! `cargo test`, against the real host server process, and inside an seL4 client task.
//! [`run_all`] prints one line per scenario and ends with `conformance: N passed, M failed`.
//! The rules the client library implements over the protocol (`kmalloc(0)`, `krealloc`, bulk,
//! destructors …) are scenarios too, over a [`library`] session: `memclient` on the window and
//! control region the platform maps into the suite.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod harness;
pub mod library;
pub mod runner;
pub mod scenarios;

pub use client::{Client, Failure};
pub use harness::{Harness, Session, TransportError};
pub use runner::{Summary, run_all};
pub use scenarios::{CLIENT, DEBUG, DEBUG_SLUB_DEBUG, PEER, SCENARIOS, Scenario};

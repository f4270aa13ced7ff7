//! The Linux global allocator: [`GlobalKmalloc`] with a [`LazySession`] made from the
//! environment on first use, and the system allocator while there is no session.
//!
//! When the server cannot be reached (`MEMSERVER_SOCKET` unset, nothing listening, the client
//! name refused), the allocator says so once on stderr and keeps serving every allocation
//! from the system allocator: the program runs as it would without memclient. Aborting
//! instead would kill the program at its first allocation, before `main`, where it cannot
//! even report why; a program that must not run without the server checks
//! [`GlobalKmalloc::session`] at the start of `main`.

use std::alloc::System;

use super::Connection;
use super::lazy::{LazyError, LazySession, Target};
use crate::global::SessionSource;
use crate::server::Memserver;

/// `#[global_allocator] static A: GlobalKmalloc = GlobalKmalloc::from_env();`
pub type GlobalKmalloc = crate::global::GlobalKmalloc<LazySession, System>;

/// What the one-line warning says the allocator does without a server.
const ON_FAILURE: &str = "allocating from the system allocator instead";

impl GlobalKmalloc {
    /// The allocator of a program whose environment names the server (`MEMSERVER_SOCKET`)
    /// and the client task (`MEMSERVER_CLIENT`).
    pub const fn from_env() -> Self {
        Self::with_source(LazySession::new(Target::Environment, ON_FAILURE), System)
    }

    /// The allocator of client task `client` of the server at `socket`.
    pub const fn to(socket: &'static str, client: &'static str) -> Self {
        Self::with_source(LazySession::new(Target::Fixed { socket, client }, ON_FAILURE), System)
    }

    /// The session, made now if need be (stats, counters; or to fail early in `main`).
    pub fn session(&self) -> Result<&Memserver<Connection>, LazyError> {
        self.source().get()
    }
}

impl SessionSource for LazySession {
    type Transport = Connection;

    fn session(&self) -> Option<&Memserver<Connection>> {
        self.try_get().ok()
    }

    fn ready(&self) -> Option<&Memserver<Connection>> {
        LazySession::ready(self)
    }
}

//! memserver-dispatch: the one place that decodes, checks and routes a client's request.
//!
//! # Design
//! [`Server::dispatch`] is a pure function of (client id, request bytes, state) → reply bytes,
//! the same on every platform: the host runner feeds it from Unix sockets, the seL4 runner
//! from message registers. It decodes with [`protocol::decode_request`] (a message that does
//! not decode is a client fault: `Malformed`), checks the session phase and the version, and
//! routes the request (`protocol::api::route`) to its handler: the dispatch implements the
//! interface's `Service` trait, one method per request, which receives typed, already-checked
//! values and calls the engine ([`Engine`]). Beside the engine it keeps per-client [`Session`]s: the handshake, introspection rights, counters, and
//! for every magazine-enabled cache a control-region slot and a depot of full magazines
//! ([`magazine`]). An allocation that finds no memory goes to the memory-pressure policy
//! ([`pressure`]), which reclaims from the client itself for its own shortage and from others
//! only under real pool pressure. Nothing a client sends or writes into its control region can panic it.
//! The server's own failures (`Error::Internal`, and platform faults the engine survived) are
//! counted and handed to the runner's log ([`ControlAccess::internal_error`]); a client's bad
//! input is always its own error code.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "testing")]
extern crate std;

#[cfg(feature = "testing")]
pub mod testing;

mod handlers;
mod introspect;
pub mod magazine;
pub mod pressure;
mod session;
mod tables;

use protocol::control::{ControlLayout, ControlMemory};
use protocol::request::ClientName;
use protocol::slub_debug::SlubDebug;
use protocol::{ClientId, Error, PROTOCOL_VERSION, Reply, Request};

use handlers::Handlers;

pub use magazine::MagazineSizes;
use memserver_engine::{Engine, Fault, Platform};
pub use pressure::{FairReclaim, PressurePolicy, Reclaim};
pub use session::{DEPOT_MAGAZINES, MAX_SLOTS, Phase, Session};

/// What the dispatch layer needs from a platform beyond the engine's [`Platform`]: access to
/// each client's control region, by copying only, and a log for the server's own failures.
pub trait ControlAccess {
    /// The control region of `client`, if it has one.
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory>;

    /// `client`'s window as a platform that audits windows sees it (the Linux runner: pages
    /// granted, pages resident in the memfd, violations of the grant), for `Stats`. `None`
    /// where nothing needs auditing (seL4: a page the client was not granted is not mapped).
    fn window_usage(&mut self, client: ClientId) -> Option<WindowUsage> {
        let _ = client;
        None
    }

    /// The server met an internal error ([`InternalError`]): log it. Called on the serving
    /// thread, so it must never block (drop or rate-limit lines when the sink is slow); the
    /// dispatch has already counted it ([`Server::internal_errors`]).
    fn internal_error(&mut self, error: &InternalError);

    /// The physical (bus) address of `len` bytes at window `offset` of `client` (an object of
    /// a `SLAB_CACHE_DMA` cache the engine checked): the address of the first byte and how
    /// many bytes from there are physically contiguous. A platform that does not know
    /// physical addresses (the host) keeps this default: `NotSupported`.
    fn bus_address(&mut self, client: ClientId, offset: u64, len: u32) -> Result<protocol::DmaAddress, Error> {
        let _ = (client, offset, len);
        Err(Error::NotSupported)
    }
}

/// A client's window against its grant, where the platform audits it (see
/// [`ControlAccess::window_usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowUsage {
    /// Window pages the engine granted (slabs and large kmallocs).
    pub granted_pages: u32,
    /// Window pages holding memory now.
    pub resident_pages: u32,
    /// Audits that found more resident than granted plus slack, since admission.
    pub violations: u32,
}

/// One internal error, as the dispatch hands it to the runner's log: the server's own fault,
/// never a client's bad input (that is the client's error code, and not logged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternalError {
    /// The client being served.
    pub client: ClientId,
    /// The request's wire tag (`docs/protocol.md` request index); `None` when no request of
    /// this client was being served (its disconnect, or memory pressure reclaiming from it).
    pub request: Option<u8>,
    /// Whether the request failed with [`Error::Internal`]; `false`: it completed, but a
    /// platform hook failed on the way (a frame whose release failed was quarantined).
    pub failed: bool,
    /// Internal errors this event counts (platform faults the engine recorded meanwhile, at
    /// least one).
    pub count: u64,
    /// The engine's latest platform fault, if any was recorded meanwhile.
    pub fault: Option<Fault>,
}

/// Server-wide settings (from `system.toml` `[server]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Control-region slots per client (at most [`MAX_SLOTS`]).
    pub magazine_slots: u16,
    /// Magazine capacity by object size.
    pub magazine_sizes: MagazineSizes,
}

/// A client task as the system description declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// Its name (what `Hello` must say).
    pub name: ClientName,
    /// Its window, in pages.
    pub window_pages: u32,
    /// Frames it may hold.
    pub quota_pages: u32,
    /// Whether it may look at other clients (`SlabInfo { all_clients: true }`).
    pub introspect: bool,
    /// Its `slub_debug` setting: debug flags for its kmalloc caches (at admission) and for the
    /// caches it creates whose names match.
    pub slub_debug: SlubDebug,
}

/// The memory server: the engine plus the per-client sessions.
pub struct Server<'a, P: Platform + ControlAccess> {
    pub(crate) engine: Engine<'a, P>,
    pub(crate) sessions: &'a mut [Session],
    pub(crate) config: ServerConfig,
    /// Internal errors met so far.
    internal_errors: u64,
    /// The engine's fault count already accounted for.
    faults_seen: u64,
    /// The memory-pressure policy.
    pub(crate) pressure: pressure::Pressure<'a>,
}

impl<'a, P: Platform + ControlAccess> Server<'a, P> {
    /// A server over `engine`, with one [`Session`] per possible client id in `sessions`
    /// (filled with [`Session::VACANT`]). `InvalidArgument` if the slot count is too large.
    pub fn new(engine: Engine<'a, P>, sessions: &'a mut [Session], config: ServerConfig) -> Result<Self, Error> {
        if usize::from(config.magazine_slots) > MAX_SLOTS || !config.magazine_sizes.is_valid() {
            return Err(Error::InvalidArgument);
        }
        sessions.fill(Session::VACANT);
        let faults_seen = engine.faults();
        Ok(Server { engine, sessions, config, internal_errors: 0, faults_seen, pressure: pressure::Pressure::DEFAULT })
    }

    /// The engine (statistics, tests, the invariant checker).
    pub fn engine(&self) -> &Engine<'a, P> {
        &self.engine
    }

    /// The engine, mutably (tests scribble on object memory through its platform).
    pub fn engine_mut(&mut self) -> &mut Engine<'a, P> {
        &mut self.engine
    }

    /// Internal errors met so far (each also went to [`ControlAccess::internal_error`]).
    pub fn internal_errors(&self) -> u64 {
        self.internal_errors
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Where the magazine slots and the server's tables lie in the control region of a client
    /// with a window of `window_pages` pages.
    pub fn control_layout(&self, window_pages: u32) -> ControlLayout {
        ControlLayout {
            slots: self.config.magazine_slots,
            caches: self.engine.config().max_caches_per_client,
            window_pages,
        }
    }

    /// Bytes of the control region of a client with a window of `window_pages` pages (the
    /// runner creates it, zeroed, before admitting the client).
    pub fn control_size(&self, window_pages: u32) -> usize {
        self.control_layout(window_pages).size()
    }

    /// The session of `client`, if admitted.
    pub fn session(&self, client: ClientId) -> Option<&Session> {
        self.sessions.get(usize::from(client)).filter(|s| s.phase != Phase::Vacant)
    }

    /// The runner admits a client task (it named one of `system.toml`, and the runner prepared
    /// its window and control region): the engine attaches it; `Hello` comes next.
    /// `InvalidArgument` if the id is out of range or already in use.
    pub fn admit(&mut self, client: ClientId, spec: &ClientSpec) -> Result<(), Error> {
        let session = self.sessions.get_mut(usize::from(client)).ok_or(Error::InvalidArgument)?;
        if session.phase != Phase::Vacant {
            return Err(Error::InvalidArgument);
        }
        let kmalloc_flags = memserver_engine::KMALLOC_NAMES.map(|name| spec.slub_debug.flags_for(name));
        self.engine.client_attach_with(client, spec.window_pages, spec.quota_pages, kmalloc_flags)?;
        *session = Session::VACANT;
        session.phase = Phase::Admitted;
        session.name = spec.name.clone();
        session.introspect = spec.introspect;
        session.window_pages = spec.window_pages;
        session.slub_debug = spec.slub_debug.clone();
        session.stats.client = client;
        Ok(())
    }

    /// The client is gone (disconnected, killed, or said `Goodbye`): everything it held goes
    /// back to the pool at once. Returns the frames reclaimed.
    pub fn disconnect(&mut self, client: ClientId) -> u32 {
        let Some(session) = self.sessions.get_mut(usize::from(client)) else { return 0 };
        if session.phase == Phase::Vacant {
            return 0;
        }
        *session = Session::VACANT;
        let detached = self.engine.client_detach(client);
        self.account_internal(client, None, detached.is_err());
        self.publish_page_owners();
        detached.unwrap_or(0)
    }

    /// Counts and logs the internal errors of one request (`failed`: it was answered with
    /// `Error::Internal`), including the platform faults the engine recorded meanwhile.
    pub(crate) fn account_internal(&mut self, client: ClientId, request: Option<u8>, failed: bool) {
        let faults = self.engine.faults();
        let new = faults.saturating_sub(self.faults_seen);
        self.faults_seen = faults;
        if !failed && new == 0 {
            return;
        }
        let count = new.max(1);
        self.internal_errors = self.internal_errors.saturating_add(count);
        let fault = if new > 0 { self.engine.last_fault() } else { None };
        let event = InternalError { client, request, failed, count, fault };
        self.engine.platform_mut().internal_error(&event);
    }

    /// Answers one request: decodes `request`, serves it, encodes the reply into `reply` and
    /// returns its length. Never panics; every failure is a `Reply::Error`.
    pub fn dispatch(&mut self, client: ClientId, request: &[u8], reply: &mut protocol::MessageBuffer) -> usize {
        let answer = match self.sessions.get_mut(usize::from(client)) {
            None => Reply::Error(Error::PermissionDenied),
            Some(session) if session.phase == Phase::Vacant => Reply::Error(Error::PermissionDenied),
            Some(session) => {
                session.stats.requests = session.stats.requests.saturating_add(1);
                match protocol::decode_request(request) {
                    Err(e) => Reply::Error(e),
                    Ok(req) => self.serve(client, req).unwrap_or_else(Reply::Error),
                }
            }
        };
        if let (Reply::Error(_), Some(session)) = (&answer, self.sessions.get_mut(usize::from(client))) {
            session.stats.errors = session.stats.errors.saturating_add(1);
        }
        // Before the reply leaves: every page whose owner changed (this client's, or another's
        // that memory pressure reclaimed from) is stated anew in its client's table.
        self.publish_page_owners();
        let (len, encoded) = encode(&answer, reply);
        let failed = !encoded || matches!(answer, Reply::Error(Error::Internal));
        self.account_internal(client, request.first().copied(), failed);
        len
    }

    /// The door's checks on a decoded request, then its handler: `Hello` only in an admitted
    /// session and with this server's version, every other request only in an open one.
    fn serve(&mut self, client: ClientId, request: Request) -> Result<Reply, Error> {
        let phase = self.sessions.get(usize::from(client)).map_or(Phase::Vacant, |s| s.phase);
        let hello_version = match &request {
            Request::Hello { version, .. } => Some(*version),
            _ => None,
        };
        let passes = match phase {
            Phase::Admitted => hello_version.is_some(),
            Phase::Open => hello_version.is_none(),
            Phase::Vacant => false,
        };
        if !passes {
            return Err(Error::PermissionDenied);
        }
        if hello_version.is_some_and(|v| v != PROTOCOL_VERSION) {
            return Err(Error::VersionMismatch { server: PROTOCOL_VERSION });
        }
        protocol::api::route(&mut Handlers(self), client, request)
    }
}

/// Encodes `reply`: its length, and whether it was `reply` that was encoded. A reply that
/// cannot be encoded (never expected: every reply has a compile-time maximum that fits)
/// becomes `Error(Internal)`.
fn encode(reply: &Reply, buf: &mut protocol::MessageBuffer) -> (usize, bool) {
    match protocol::encode_reply(reply, buf) {
        Ok(bytes) => (bytes.len(), true),
        Err(_) => (protocol::encode_reply(&Reply::Error(Error::Internal), buf).map_or(0, |b| b.len()), false),
    }
}

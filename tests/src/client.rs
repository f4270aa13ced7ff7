//! The suite's [`Client`]: the protocol's one typed client over a [`Session`], plus copy
//! access to object memory and the control region, and the helpers that turn a typed call's
//! result into a scenario's verdict.
//!
//! Every request is a method of [`protocol::api::Client`] (reached through `Deref`):
//! `c.alloc(cache)` returns `Result<Object, CallError>`. [`ok`], [`err`] and [`any_err`]
//! sort such a result: the server's error is the domain outcome the scenario checks, any other
//! failure (transport, a reply of the wrong kind) fails the scenario.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};

use protocol::api::{self, CallError};
use protocol::control::{self, MagazineRole};
use protocol::{
    ClientId, Created, Error, Handle, PROTOCOL_VERSION, Reply, SessionInfo, SlabInfoRow, Transport, TransportError,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::harness::Session;

/// Why a scenario failed.
pub type Failure = String;

/// Result of one request: the domain outcome, or a failure of the run itself.
pub type Outcome<T> = Result<Result<T, Error>, Failure>;

/// Carries the typed client's requests over a [`Session`]. A session explains a failed call
/// in text; the typed client carries a [`TransportError`] only, so any failed call is
/// reported as `Disconnected`: the session cannot be used any more.
pub struct SessionTransport(Box<dyn Session>);

impl SessionTransport {
    /// Carries requests over `session`.
    pub fn new(session: Box<dyn Session>) -> Self {
        SessionTransport(session)
    }
}

impl Transport for SessionTransport {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        self.0.call(request, reply).map_err(|_| TransportError::Disconnected)
    }
}

/// A client of the server under test.
pub struct Client {
    api: api::Client<SessionTransport>,
    /// The id the server gave in `Hello` (0 before).
    pub id: ClientId,
    /// The window size the server gave in `Hello` (0 before).
    pub window_size: u64,
}

impl Deref for Client {
    type Target = api::Client<SessionTransport>;
    fn deref(&self) -> &Self::Target {
        &self.api
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.api
    }
}

/// Turns a session's memory-access failure into a scenario failure.
fn transport(e: crate::harness::TransportError) -> Failure {
    format!("transport: {}", e.0)
}

impl Client {
    /// Wraps an open session (no `Hello` sent yet).
    pub fn new(session: Box<dyn Session>) -> Self {
        Client { api: api::Client::new(SessionTransport(session)), id: 0, window_size: 0 }
    }

    fn session(&mut self) -> &mut dyn Session {
        &mut *self.api.transport_mut().0
    }

    /// `Hello` as `name` with the current version; remembers the id and window size.
    pub fn hello(&mut self, name: &str) -> Result<SessionInfo, CallError> {
        self.hello_version(name, PROTOCOL_VERSION)
    }

    /// `Hello` with any version.
    pub fn hello_version(&mut self, name: &str, version: u16) -> Result<SessionInfo, CallError> {
        let client_name = protocol::client_name(name).map_err(|_| CallError::Encode)?;
        let info = self.api.hello(version, client_name)?;
        self.id = info.client;
        self.window_size = info.window_size;
        Ok(info)
    }

    /// `kmem_cache_create()` with a name as text (a name over 31 bytes cannot be encoded:
    /// `CallError::Encode`).
    pub fn create(&mut self, name: &str, size: u32, align: u32, flags: u32, ctor: bool) -> Result<Created, CallError> {
        let name = protocol::cache_name(name).map_err(|_| CallError::Encode)?;
        self.api.cache_create(name, size, align, flags, ctor, false)
    }

    /// `kmem_cache_create()` of a cache with a destructor (Linux 2.4's API).
    pub fn create_with_dtor(&mut self, name: &str, size: u32, flags: u32, ctor: bool) -> Result<Created, CallError> {
        let name = protocol::cache_name(name).map_err(|_| CallError::Encode)?;
        self.api.cache_create(name, size, 0, flags, ctor, true)
    }

    /// Every slabinfo row, all pages.
    pub fn slabinfo(&mut self, all_clients: bool) -> Result<Vec<SlabInfoRow>, CallError> {
        let mut all = Vec::new();
        for page in 0..=u16::MAX {
            let page = self.slab_info(page, all_clients)?;
            all.extend(page.rows);
            if !page.more {
                break;
            }
        }
        Ok(all)
    }

    /// Sends raw bytes and decodes the reply (`Reply::Error` included).
    pub fn call_raw(&mut self, request: &[u8]) -> Result<Reply, Failure> {
        self.api.call_raw(request).map_err(|e| format!("raw request: {e}"))
    }

    /// Sends one request; the reply as it came (`Reply::Error` included).
    pub fn call(&mut self, request: &protocol::Request) -> Result<Reply, Failure> {
        self.api.call(request).map_err(|e| format!("{}: {e}", request.name()))
    }

    /// Reads object memory.
    pub fn read(&mut self, handle: Handle, offset: usize, len: usize) -> Result<Vec<u8>, Failure> {
        let mut buf = alloc::vec![0u8; len];
        self.session().read(handle, offset, &mut buf).map_err(transport)?;
        Ok(buf)
    }

    /// Writes object memory.
    pub fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), Failure> {
        self.session().write(handle, offset, data).map_err(transport)
    }

    /// Copies a magazine out of the control region.
    pub fn magazine(&mut self, slot: u16, role: MagazineRole) -> Result<control::Magazine, Failure> {
        let mut bytes = [0u8; control::MAGAZINE_SIZE];
        self.session().control_read(control::magazine_offset(slot, role), &mut bytes).map_err(transport)?;
        control::Magazine::read_from_bytes(&bytes).map_err(|_| Failure::from("magazine layout"))
    }

    /// Writes a magazine into the control region.
    pub fn set_magazine(&mut self, slot: u16, role: MagazineRole, m: &control::Magazine) -> Result<(), Failure> {
        self.session().control_write(control::magazine_offset(slot, role), m.as_bytes()).map_err(transport)
    }

    /// Writes raw bytes into the control region (what a client library or a hostile client
    /// may do at any time).
    pub fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), Failure> {
        self.session().control_write(offset, data).map_err(transport)
    }

    /// Reads the control-region header.
    pub fn control_header(&mut self) -> Result<control::ControlHeader, Failure> {
        let mut bytes = [0u8; control::HEADER_SIZE];
        self.session().control_read(0, &mut bytes).map_err(transport)?;
        control::ControlHeader::read_from_bytes(&bytes).map_err(|_| Failure::from("header layout"))
    }

    /// Where the server's tables lie in the control region (from its header).
    pub fn control_layout(&mut self) -> Result<control::ControlLayout, Failure> {
        Ok(self.control_header()?.layout())
    }

    /// The server's cache-table entry `index` (the client's cache slot `index`).
    pub fn cache_entry(&mut self, index: u16) -> Result<control::CacheEntry, Failure> {
        let layout = self.control_layout()?;
        let mut bytes = [0u8; control::CACHE_ENTRY_SIZE];
        self.session().control_read(layout.cache_entry_offset(index), &mut bytes).map_err(transport)?;
        control::CacheEntry::read_from_bytes(&bytes).map_err(|_| Failure::from("cache entry layout"))
    }

    /// The index and cache-table entry of `cache` (a scan of the table).
    pub fn cache_entry_of(&mut self, cache: protocol::CacheId) -> Result<(u16, control::CacheEntry), Failure> {
        let caches = self.control_layout()?.caches;
        for index in 0..caches {
            let entry = self.cache_entry(index)?;
            if entry.cache == cache.0 {
                return Ok((index, entry));
            }
        }
        Err(format!("no cache-table entry for {cache:?}"))
    }

    /// The server's page-owner entry of the window page holding `handle`.
    pub fn page_owner(&mut self, handle: Handle) -> Result<control::PageOwner, Failure> {
        let layout = self.control_layout()?;
        let page = u32::try_from(handle.0 / protocol::PAGE_SIZE as u64).map_err(|_| Failure::from("page"))?;
        let mut bytes = [0u8; control::PAGE_OWNER_SIZE];
        self.session().control_read(layout.page_owner_offset(page), &mut bytes).map_err(transport)?;
        control::PageOwner::read_from_bytes(&bytes).map_err(|_| Failure::from("page owner layout"))
    }

    /// Whether the transport is still open.
    pub fn is_open(&self) -> bool {
        self.api.transport().0.is_open()
    }
}

/// Sorts a typed call's result: the server's refusal is the domain outcome; a transport
/// failure, a reply of the wrong kind or a request that did not encode fails the run.
pub fn outcome<T>(what: &str, result: Result<T, CallError>) -> Outcome<T> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(CallError::Server(e)) => Ok(Err(e)),
        Err(other) => Err(format!("{what}: {other}")),
    }
}

/// The value of a call that must succeed, else a failure naming `what`.
pub fn ok<T>(what: &str, result: Result<T, CallError>) -> Result<T, Failure> {
    match outcome(what, result)? {
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{what}: expected success, got {e:?}")),
    }
}

/// The error of a call that must be refused with `expected`.
pub fn err<T: core::fmt::Debug>(what: &str, result: Result<T, CallError>, expected: Error) -> Result<(), Failure> {
    match outcome(what, result)? {
        Err(e) if e == expected => Ok(()),
        other => Err(format!("{what}: expected {expected:?}, got {other:?}")),
    }
}

/// The error of a call that must be refused, whichever it is.
pub fn any_err<T: core::fmt::Debug>(what: &str, result: Result<T, CallError>) -> Result<Error, Failure> {
    match outcome(what, result)? {
        Err(e) => Ok(e),
        Ok(v) => Err(format!("{what}: expected an error, got {v:?}")),
    }
}

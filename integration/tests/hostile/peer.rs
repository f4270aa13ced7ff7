//! [`Peer`]: one raw client of the real server: the protocol's typed client over its
//! connection (every request, through `Deref`), raw bytes, and its mapped window and control
//! region, so an attack can do anything a real client task could.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use memclient::host::{ConnectError, Connection};
use protocol::api::{self, CallError};
use protocol::control::{self, Magazine, MagazineRole};
use protocol::{Created, Error, PROTOCOL_VERSION, Reply, Request, SlabInfoRow, TransportError};
use zerocopy::{FromBytes, IntoBytes};

pub use conformance::client::{Failure, ok, outcome};

/// One connected client task.
pub struct Peer {
    pub name: String,
    pub id: u16,
    api: api::Client<Connection>,
}

impl Deref for Peer {
    type Target = api::Client<Connection>;
    fn deref(&self) -> &Self::Target {
        &self.api
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.api
    }
}

/// The encoded `Hello` for `name`.
pub fn hello_bytes(name: &str, version: u16) -> Vec<u8> {
    let request = Request::Hello { version, client_name: protocol::client_name(name).expect("short name") };
    encode(&request)
}

/// Encodes a request.
pub fn encode(request: &Request) -> Vec<u8> {
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    protocol::encode_request(request, &mut buf).expect("every request fits").to_vec()
}

impl Peer {
    /// Connects as `name`; a refusal is `Err` with the server's error.
    pub fn connect(socket: &Path, name: &str) -> Result<Peer, Failure> {
        match Connection::connect(socket, &hello_bytes(name, PROTOCOL_VERSION)) {
            Ok((connection, reply)) => match protocol::decode_reply(&reply) {
                Ok(Reply::Hello(info)) => {
                    Ok(Peer { name: name.into(), id: info.client, api: api::Client::new(connection) })
                }
                other => Err(format!("{name}: Hello answered with {other:?}")),
            },
            Err(ConnectError::Refused(reply)) => Err(format!("{name} refused: {:?}", protocol::decode_reply(&reply))),
            Err(ConnectError::Io(e)) => Err(format!("{name}: {e}")),
        }
    }

    /// The connection (raw sends, the mappings).
    pub fn connection(&self) -> &Connection {
        self.api.transport()
    }

    /// The connection, mutably.
    pub fn connection_mut(&mut self) -> &mut Connection {
        self.api.transport_mut()
    }

    /// Sends raw bytes; the decoded reply (`Ok(None)`: the server closed the connection).
    pub fn call_raw(&mut self, bytes: &[u8]) -> Result<Option<Reply>, Failure> {
        match self.api.call_raw(bytes) {
            Ok(reply) => Ok(Some(reply)),
            Err(CallError::Transport(TransportError::Disconnected)) => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// One request; the reply as it came (`Reply::Error` included).
    pub fn call(&mut self, request: &Request) -> Result<Reply, Failure> {
        self.api.call(request).map_err(|e| format!("{}: {e}", self.name))
    }

    /// `kmem_cache_create()` without a ctor, the name as text.
    pub fn create(&mut self, name: &str, size: u32, align: u32, flags: u32) -> Result<Created, CallError> {
        let name = protocol::cache_name(name).map_err(|_| CallError::Encode)?;
        self.api.cache_create(name, size, align, flags, false, false)
    }

    /// Every slabinfo row (of every client with `all`).
    pub fn slabinfo(&mut self, all: bool) -> Result<Vec<SlabInfoRow>, CallError> {
        let mut rows = Vec::new();
        for page in 0..=u16::MAX {
            let page = self.slab_info(page, all)?;
            rows.extend(page.rows);
            if !page.more {
                break;
            }
        }
        Ok(rows)
    }

    /// Writes `bytes` at window offset `at`.
    pub fn write(&self, at: u64, bytes: &[u8]) -> bool {
        usize::try_from(at).is_ok_and(|at| self.connection().window().write(at, bytes))
    }

    /// Reads `len` bytes at window offset `at` (`None` outside the window).
    pub fn read(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        usize::try_from(at).ok().filter(|&at| self.connection().window().read(at, &mut buf)).map(|_| buf)
    }

    /// A magazine of the control region.
    pub fn magazine(&self, slot: u16, role: MagazineRole) -> Magazine {
        let mut bytes = [0u8; control::MAGAZINE_SIZE];
        assert!(self.connection().control().read(control::magazine_offset(slot, role), &mut bytes));
        Magazine::read_from_bytes(&bytes).expect("magazine layout")
    }

    /// Overwrites a magazine of the control region.
    pub fn set_magazine(&self, slot: u16, role: MagazineRole, m: &Magazine) {
        assert!(self.connection().control().write(control::magazine_offset(slot, role), m.as_bytes()));
    }

    /// Closes the connection and waits until the server has reclaimed everything.
    pub fn close(self) {
        let _ = self.api.into_transport().close(Duration::from_secs(30));
    }
}

/// The error of a call that must be refused with an error satisfying `expected`.
pub fn refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, CallError>,
    expected: impl Fn(&Error) -> bool,
) -> Result<Error, Failure> {
    match outcome(what, result)? {
        Err(e) if expected(&e) => Ok(e),
        other => Err(format!("{what}: expected a refusal, got {other:?}")),
    }
}

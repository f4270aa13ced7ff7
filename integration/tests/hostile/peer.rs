//! [`Peer`]: one raw client of the real server, speaking the protocol by hand (typed requests,
//! raw bytes, its mapped window and control region), so an attack can do anything a real
//! client task could.

use std::path::Path;
use std::time::Duration;

use memclient::host::{ConnectError, Connection, MESSAGE_MAX};
use protocol::control::{self, Magazine, MagazineRole};
use protocol::reply::{CacheLayout, Stats};
use protocol::{CacheId, Error, ExchangeOp, Handle, PROTOCOL_VERSION, Reply, Request, SlabInfoRow};
use zerocopy::{FromBytes, IntoBytes};

/// A transport failure or an unexpected reply shape: the attack (or the check) itself failed.
pub type Failure = String;

/// What a typed call returns: the domain outcome, or a failure of the run.
pub type Outcome<T> = Result<Result<T, Error>, Failure>;

/// A cache as `CacheCreate` described it.
#[derive(Clone, Copy, Debug)]
pub struct Created {
    pub cache: CacheId,
    pub layout: CacheLayout,
    pub slot: Option<u16>,
    pub capacity: u16,
}

/// One connected client task.
pub struct Peer {
    pub name: String,
    pub id: u16,
    pub connection: Connection,
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
                Ok(Reply::Hello { client, .. }) => Ok(Peer { name: name.into(), id: client, connection }),
                other => Err(format!("{name}: Hello answered with {other:?}")),
            },
            Err(ConnectError::Refused(reply)) => Err(format!("{name} refused: {:?}", protocol::decode_reply(&reply))),
            Err(ConnectError::Io(e)) => Err(format!("{name}: {e}")),
        }
    }

    /// Sends raw bytes; the decoded reply (`Ok(None)`: the server closed the connection).
    pub fn call_raw(&mut self, bytes: &[u8]) -> Result<Option<Reply>, Failure> {
        let mut reply = vec![0u8; MESSAGE_MAX];
        self.connection.send(bytes).map_err(|e| format!("{}: send: {e}", self.name))?;
        let n = self.connection.receive(&mut reply).map_err(|e| format!("{}: receive: {e}", self.name))?;
        if n == 0 {
            return Ok(None);
        }
        protocol::decode_reply(&reply[..n])
            .map(Some)
            .map_err(|e| format!("{}: reply does not decode: {e:?}", self.name))
    }

    /// One typed request.
    pub fn call(&mut self, request: &Request) -> Result<Reply, Failure> {
        self.call_raw(&encode(request))?.ok_or_else(|| format!("{}: server closed the connection", self.name))
    }

    fn outcome<T>(&mut self, request: &Request, f: impl FnOnce(Reply) -> Option<T>) -> Outcome<T> {
        match self.call(request)? {
            Reply::Error(e) => Ok(Err(e)),
            reply => {
                let shown = format!("{reply:?}");
                f(reply).map(Ok).ok_or_else(|| format!("{}: {request:?} answered with {shown}", self.name))
            }
        }
    }

    /// `kmem_cache_create()`.
    pub fn create(&mut self, name: &str, size: u32, align: u32, flags: u32) -> Outcome<Created> {
        let name = protocol::cache_name(name).map_err(|e| format!("{e:?}"))?;
        self.outcome(&Request::CacheCreate { name, size, align, flags, ctor: false }, |r| match r {
            Reply::Created { cache, layout, slot, magazine_capacity, .. } => {
                Some(Created { cache, layout, slot, capacity: magazine_capacity })
            }
            _ => None,
        })
    }

    /// `kmem_cache_alloc()`.
    pub fn alloc(&mut self, cache: CacheId) -> Outcome<Handle> {
        self.outcome(&Request::Alloc { cache }, object)
    }

    /// `kmem_cache_free()`.
    pub fn free(&mut self, cache: CacheId, handle: Handle) -> Outcome<()> {
        self.outcome(&Request::Free { cache, handle }, done)
    }

    /// `kmalloc()`.
    pub fn kmalloc(&mut self, size: u32) -> Outcome<Handle> {
        self.outcome(&Request::Kmalloc { size }, object)
    }

    /// `kfree()`.
    pub fn kfree(&mut self, handle: Handle) -> Outcome<()> {
        self.outcome(&Request::Kfree { handle }, done)
    }

    /// `kmem_cache_destroy()`.
    pub fn destroy(&mut self, cache: CacheId) -> Outcome<()> {
        self.outcome(&Request::Destroy { cache }, done)
    }

    /// `kmem_cache_shrink()`.
    pub fn shrink(&mut self, cache: CacheId) -> Outcome<u32> {
        self.outcome(&Request::Shrink { cache }, |r| match r {
            Reply::Shrunk { pages } => Some(pages),
            _ => None,
        })
    }

    /// `MagazineExchange`: the loaded count after it.
    pub fn exchange(&mut self, cache: CacheId, slot: u16, op: ExchangeOp) -> Outcome<u16> {
        self.outcome(&Request::MagazineExchange { cache, slot, op }, |r| match r {
            Reply::Exchanged { count, .. } => Some(count),
            _ => None,
        })
    }

    /// `Stats` of this client.
    pub fn stats(&mut self) -> Outcome<Stats> {
        self.outcome(&Request::Stats, |r| match r {
            Reply::Stats(s) => Some(s),
            _ => None,
        })
    }

    /// Every slabinfo row (of every client with `all`).
    pub fn slabinfo(&mut self, all: bool) -> Outcome<Vec<SlabInfoRow>> {
        let mut rows = Vec::new();
        for page in 0..1000u16 {
            match self.outcome(&Request::SlabInfo { page, all_clients: all }, |r| match r {
                Reply::SlabInfo { rows, more, .. } => Some((rows, more)),
                _ => None,
            })? {
                Err(e) => return Ok(Err(e)),
                Ok((page_rows, more)) => {
                    rows.extend(page_rows);
                    if !more {
                        return Ok(Ok(rows));
                    }
                }
            }
        }
        Err("slabinfo never ended".into())
    }

    /// Writes `bytes` at window offset `at`.
    pub fn write(&self, at: u64, bytes: &[u8]) -> bool {
        usize::try_from(at).is_ok_and(|at| self.connection.window().write(at, bytes))
    }

    /// Reads `len` bytes at window offset `at` (`None` outside the window).
    pub fn read(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        usize::try_from(at).ok().filter(|&at| self.connection.window().read(at, &mut buf)).map(|_| buf)
    }

    /// A magazine of the control region.
    pub fn magazine(&self, slot: u16, role: MagazineRole) -> Magazine {
        let mut bytes = [0u8; control::MAGAZINE_SIZE];
        assert!(self.connection.control().read(control::magazine_offset(slot, role), &mut bytes));
        Magazine::read_from_bytes(&bytes).expect("magazine layout")
    }

    /// Overwrites a magazine of the control region.
    pub fn set_magazine(&self, slot: u16, role: MagazineRole, m: &Magazine) {
        assert!(self.connection.control().write(control::magazine_offset(slot, role), m.as_bytes()));
    }

    /// Closes the connection and waits until the server has reclaimed everything.
    pub fn close(self) {
        let _ = self.connection.close(Duration::from_secs(30));
    }
}

fn object(reply: Reply) -> Option<Handle> {
    match reply {
        Reply::Object { handle, .. } => Some(handle),
        _ => None,
    }
}

fn done(reply: Reply) -> Option<()> {
    matches!(reply, Reply::Done).then_some(())
}

/// The success value of an outcome, else a failure naming `what`.
pub fn ok<T>(what: &str, outcome: Outcome<T>) -> Result<T, Failure> {
    match outcome? {
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{what}: expected success, got {e:?}")),
    }
}

/// The error of an outcome, which must satisfy `expected`.
pub fn refused<T: std::fmt::Debug>(
    what: &str,
    outcome: Outcome<T>,
    expected: impl Fn(&Error) -> bool,
) -> Result<Error, Failure> {
    match outcome? {
        Err(e) if expected(&e) => Ok(e),
        other => Err(format!("{what}: expected a refusal, got {other:?}")),
    }
}

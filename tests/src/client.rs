//! A typed client over a [`Session`]: one method per request, replies checked for shape.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use protocol::control::{self, MagazineRole};
use protocol::reply::{CacheInfo, CacheLayout, Stats};
use protocol::{
    CacheId, ClientId, Error, ExchangeOp, Handle, MessageBuffer, PROTOCOL_VERSION, Reply, Request, SlabInfoRow,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::harness::Session;

/// Why a scenario failed.
pub type Failure = String;

/// What `CacheCreate` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Created {
    pub cache: CacheId,
    pub layout: CacheLayout,
    pub debug: bool,
    pub slot: Option<u16>,
    pub magazine_capacity: u16,
}

/// A client of the server under test.
pub struct Client {
    session: Box<dyn Session>,
    buf: MessageBuffer,
    reply: MessageBuffer,
    /// The id the server gave in `Hello` (0 before).
    pub id: ClientId,
    /// The window size the server gave in `Hello` (0 before).
    pub window_size: u64,
}

/// Turns a transport failure into a scenario failure.
fn transport(e: crate::harness::TransportError) -> Failure {
    format!("transport: {}", e.0)
}

/// Result of one request: the domain outcome, or a failure of the run itself.
pub type Outcome<T> = Result<Result<T, Error>, Failure>;

impl Client {
    /// Wraps an open session (no `Hello` sent yet).
    pub fn new(session: Box<dyn Session>) -> Self {
        Client {
            session,
            buf: [0; protocol::MAX_MESSAGE_BYTES],
            reply: [0; protocol::MAX_MESSAGE_BYTES],
            id: 0,
            window_size: 0,
        }
    }

    /// Sends raw bytes and decodes the reply.
    pub fn call_raw(&mut self, request: &[u8]) -> Result<Reply, Failure> {
        let n = self.session.call(request, &mut self.reply).map_err(transport)?;
        let bytes = self.reply.get(..n).ok_or("reply longer than the buffer")?;
        protocol::decode_reply(bytes).map_err(|e| format!("reply does not decode: {e:?}"))
    }

    /// Sends one request.
    pub fn call(&mut self, request: &Request) -> Result<Reply, Failure> {
        let len = protocol::encode_request(request, &mut self.buf).map_err(|e| format!("encode: {e:?}"))?.len();
        let bytes: Vec<u8> = self.buf[..len].to_vec();
        self.call_raw(&bytes)
    }

    /// Sends `request` and maps `Reply::Error` to the inner `Err`.
    fn outcome<T>(&mut self, request: &Request, what: &str, f: impl FnOnce(Reply) -> Option<T>) -> Outcome<T> {
        match self.call(request)? {
            Reply::Error(e) => Ok(Err(e)),
            reply => {
                let shown = format!("{reply:?}");
                f(reply).map(Ok).ok_or_else(|| format!("{what}: unexpected reply {shown}"))
            }
        }
    }

    /// `Hello` with the current version.
    pub fn hello(&mut self, name: &str) -> Outcome<Reply> {
        self.hello_version(name, PROTOCOL_VERSION)
    }

    /// `Hello` with any version.
    pub fn hello_version(&mut self, name: &str, version: u16) -> Outcome<Reply> {
        let client_name = protocol::client_name(name).map_err(|e| format!("client name: {e:?}"))?;
        let reply = self.outcome(&Request::Hello { version, client_name }, "hello", Some)?;
        if let Ok(Reply::Hello { client, window_size, .. }) = &reply {
            self.id = *client;
            self.window_size = *window_size;
        }
        Ok(reply)
    }

    /// `kmem_cache_create()`.
    pub fn create(&mut self, name: &str, size: u32, align: u32, flags: u32, ctor: bool) -> Outcome<Created> {
        let Ok(name) = protocol::cache_name(name) else { return Ok(Err(Error::InvalidArgument)) };
        self.outcome(&Request::CacheCreate { name, size, align, flags, ctor }, "create", |r| match r {
            Reply::Created { cache, layout, debug, slot, magazine_capacity } => {
                Some(Created { cache, layout, debug, slot, magazine_capacity })
            }
            _ => None,
        })
    }

    /// `kmem_cache_alloc()`: the object and whether it is fresh.
    pub fn alloc(&mut self, cache: CacheId) -> Outcome<(Handle, bool)> {
        self.outcome(&Request::Alloc { cache }, "alloc", object)
    }

    /// `kmem_cache_zalloc()`.
    pub fn zalloc(&mut self, cache: CacheId) -> Outcome<(Handle, bool)> {
        self.outcome(&Request::Zalloc { cache }, "zalloc", object)
    }

    /// `kmem_cache_free()`.
    pub fn free(&mut self, cache: CacheId, handle: Handle) -> Outcome<()> {
        self.outcome(&Request::Free { cache, handle }, "free", done)
    }

    /// `kmem_cache_destroy()`.
    pub fn destroy(&mut self, cache: CacheId) -> Outcome<()> {
        self.outcome(&Request::Destroy { cache }, "destroy", done)
    }

    /// `kmem_cache_shrink()`: pages released.
    pub fn shrink(&mut self, cache: CacheId) -> Outcome<u32> {
        self.outcome(&Request::Shrink { cache }, "shrink", |r| match r {
            Reply::Shrunk { pages } => Some(pages),
            _ => None,
        })
    }

    /// `kmalloc()`.
    pub fn kmalloc(&mut self, size: u32) -> Outcome<Handle> {
        self.outcome(&Request::Kmalloc { size }, "kmalloc", |r| object(r).map(|(h, _)| h))
    }

    /// `kfree()`.
    pub fn kfree(&mut self, handle: Handle) -> Outcome<()> {
        self.outcome(&Request::Kfree { handle }, "kfree", done)
    }

    /// `MagazineExchange`: the loaded count and fresh mask.
    pub fn exchange(&mut self, cache: CacheId, slot: u16, op: ExchangeOp) -> Outcome<(u16, u64)> {
        self.outcome(&Request::MagazineExchange { cache, slot, op }, "exchange", |r| match r {
            Reply::Exchanged { count, fresh_mask } => Some((count, fresh_mask)),
            _ => None,
        })
    }

    /// `CacheInfo`.
    pub fn info(&mut self, cache: CacheId) -> Outcome<CacheInfo> {
        self.outcome(&Request::CacheInfo { cache }, "info", |r| match r {
            Reply::CacheInfo(info) => Some(info),
            _ => None,
        })
    }

    /// `Stats`.
    pub fn stats(&mut self) -> Outcome<Stats> {
        self.outcome(&Request::Stats, "stats", |r| match r {
            Reply::Stats(s) => Some(s),
            _ => None,
        })
    }

    /// `ClientStats` of any client.
    pub fn client_stats(&mut self, client: ClientId) -> Outcome<Stats> {
        self.outcome(&Request::ClientStats { client }, "client stats", |r| match r {
            Reply::Stats(s) => Some(s),
            _ => None,
        })
    }

    /// One `Clients` page: (entries as (id, name), more).
    pub fn clients_page(&mut self, page: u16) -> Outcome<(Vec<(ClientId, String)>, bool)> {
        self.outcome(&Request::Clients { page }, "clients", |r| match r {
            Reply::Clients { clients, more, .. } => {
                Some((clients.iter().map(|e| (e.client, String::from(e.name.as_str()))).collect(), more))
            }
            _ => None,
        })
    }

    /// `ObjectOwner`: (last alloc, last free).
    pub fn owner(&mut self, handle: Handle) -> Outcome<(Option<protocol::Track>, Option<protocol::Track>)> {
        self.outcome(&Request::ObjectOwner { handle }, "owner", |r| match r {
            Reply::Owner { alloc, free } => Some((alloc, free)),
            _ => None,
        })
    }

    /// One `SlabInfo` page: (rows, more).
    pub fn slabinfo_page(&mut self, page: u16, all_clients: bool) -> Outcome<(Vec<SlabInfoRow>, bool)> {
        self.outcome(&Request::SlabInfo { page, all_clients }, "slabinfo", |r| match r {
            Reply::SlabInfo { rows, more, .. } => Some((rows.into_iter().collect(), more)),
            _ => None,
        })
    }

    /// Every slabinfo row, all pages.
    pub fn slabinfo(&mut self, all_clients: bool) -> Outcome<Vec<SlabInfoRow>> {
        let mut all = Vec::new();
        for page in 0..=u16::MAX {
            match self.slabinfo_page(page, all_clients)? {
                Err(e) => return Ok(Err(e)),
                Ok((rows, more)) => {
                    all.extend(rows);
                    if !more {
                        return Ok(Ok(all));
                    }
                }
            }
        }
        Err("slabinfo never ended".into())
    }

    /// `Goodbye`.
    pub fn goodbye(&mut self) -> Outcome<()> {
        self.outcome(&Request::Goodbye, "goodbye", done)
    }

    /// Reads object memory.
    pub fn read(&mut self, handle: Handle, offset: usize, len: usize) -> Result<Vec<u8>, Failure> {
        let mut buf = alloc::vec![0u8; len];
        self.session.read(handle, offset, &mut buf).map_err(transport)?;
        Ok(buf)
    }

    /// Writes object memory.
    pub fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), Failure> {
        self.session.write(handle, offset, data).map_err(transport)
    }

    /// Copies a magazine out of the control region.
    pub fn magazine(&mut self, slot: u16, role: MagazineRole) -> Result<control::Magazine, Failure> {
        let mut bytes = [0u8; control::MAGAZINE_SIZE];
        self.session.control_read(control::magazine_offset(slot, role), &mut bytes).map_err(transport)?;
        control::Magazine::read_from_bytes(&bytes).map_err(|_| Failure::from("magazine layout"))
    }

    /// Writes a magazine into the control region.
    pub fn set_magazine(&mut self, slot: u16, role: MagazineRole, m: &control::Magazine) -> Result<(), Failure> {
        self.session.control_write(control::magazine_offset(slot, role), m.as_bytes()).map_err(transport)
    }

    /// Writes raw bytes into the control region (what a client library or a hostile client
    /// may do at any time).
    pub fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), Failure> {
        self.session.control_write(offset, data).map_err(transport)
    }

    /// Reads the control-region header.
    pub fn control_header(&mut self) -> Result<control::ControlHeader, Failure> {
        let mut bytes = [0u8; control::HEADER_SIZE];
        self.session.control_read(0, &mut bytes).map_err(transport)?;
        control::ControlHeader::read_from_bytes(&bytes).map_err(|_| Failure::from("header layout"))
    }

    /// Whether the transport is still open.
    pub fn is_open(&self) -> bool {
        self.session.is_open()
    }
}

fn object(reply: Reply) -> Option<(Handle, bool)> {
    match reply {
        Reply::Object { handle, fresh } => Some((handle, fresh)),
        _ => None,
    }
}

fn done(reply: Reply) -> Option<()> {
    matches!(reply, Reply::Done).then_some(())
}

/// `Ok(value)` of an outcome, else a failure naming `what`.
pub fn ok<T>(what: &str, outcome: Outcome<T>) -> Result<T, Failure> {
    match outcome? {
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{what}: expected success, got {e:?}")),
    }
}

/// The error of an outcome, which must be `expected`.
pub fn err<T: core::fmt::Debug>(what: &str, outcome: Outcome<T>, expected: Error) -> Result<(), Failure> {
    match outcome? {
        Err(e) if e == expected => Ok(()),
        other => Err(format!("{what}: expected {expected:?}, got {other:?}")),
    }
}

/// The error of an outcome, whichever it is.
pub fn any_err<T: core::fmt::Debug>(what: &str, outcome: Outcome<T>) -> Result<Error, Failure> {
    match outcome? {
        Err(e) => Ok(e),
        Ok(v) => Err(format!("{what}: expected an error, got {v:?}")),
    }
}

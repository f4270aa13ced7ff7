//! Session and wire rules: handshake, version, malformed input, unknown ids, goodbye.

use alloc::vec;

use protocol::control::CONTROL_MAGIC;
use protocol::{CacheId, Error, Handle, PROTOCOL_VERSION, Reply, Request, SessionInfo};

use super::{CLIENT, PEER, connect};
use crate::client::{Client, Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

fn open(h: &mut dyn Harness, name: &str) -> Result<Client, Failure> {
    Ok(Client::new(h.open(name).map_err(|e| alloc::format!("open: {}", e.0))?))
}

fn expect_error(reply: Reply, expected: Error) -> Result<(), Failure> {
    ensure!(reply == Reply::Error(expected), "expected {expected:?}, got {reply:?}");
    Ok(())
}

pub fn request_before_hello_is_refused(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = open(h, CLIENT)?;
    expect_error(c.call(&Request::Kmalloc { size: 8 })?, Error::PermissionDenied)?;
    ok("hello after refusal", c.hello(CLIENT))?;
    ok("kmalloc after hello", c.kmalloc(8))?;
    Ok(())
}

pub fn hello_other_version(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = open(h, CLIENT)?;
    err("hello v+1", c.hello_version(CLIENT, PROTOCOL_VERSION + 1), Error::VersionMismatch { server: PROTOCOL_VERSION })
}

pub fn hello_twice_is_refused(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    err("second hello", c.hello(CLIENT), Error::PermissionDenied)?;
    ok("still serving", c.kmalloc(16))?;
    Ok(())
}

pub fn hello_wrong_name(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = open(h, CLIENT)?;
    err("hello as a stranger", c.hello("no-such-client-task"), Error::PermissionDenied)
}

pub fn garbage_is_malformed(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    expect_error(c.call_raw(&[0xff; 24])?, Error::Malformed)?;
    expect_error(c.call_raw(&[200, 1, 2, 3])?, Error::Malformed)?;
    ensure!(c.is_open(), "connection closed after a malformed message");
    ok("served after garbage", c.kmalloc(32))?;
    Ok(())
}

/// An empty message is `Malformed` and the session goes on, except on a transport where a
/// zero-length read is the end of the connection (the host's `SOCK_SEQPACKET` cannot tell it
/// from a `shutdown`): there the server closes that connection, and a new one is served.
pub fn empty_message_is_malformed(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    match c.call_raw(&[]) {
        Ok(reply) => {
            expect_error(reply, Error::Malformed)?;
            ok("served after empty message", c.kmalloc(32))?;
        }
        Err(_) if !c.is_open() => {
            drop(c);
            let mut again = connect(h, CLIENT)?;
            ok("a new session after the end of the connection", again.kmalloc(32))?;
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

pub fn oversized_message_is_malformed(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    // A valid Kmalloc followed by enough padding to exceed the largest message.
    let mut bytes = vec![0u8; protocol::MAX_MESSAGE_BYTES + 64];
    let len =
        protocol::encode_request(&Request::Kmalloc { size: 8 }, &mut bytes).map_err(|e| alloc::format!("{e:?}"))?.len();
    ensure!(len < bytes.len(), "encoding filled the buffer");
    expect_error(c.call_raw(&bytes)?, Error::Malformed)?;
    ok("served after oversized message", c.kmalloc(32))?;
    Ok(())
}

pub fn truncated_message_is_malformed(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let name = protocol::cache_name("truncated").map_err(|e| alloc::format!("{e:?}"))?;
    let request = Request::CacheCreate { name, size: 64, align: 0, flags: 0, ctor: false, dtor: false };
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    let bytes = protocol::encode_request(&request, &mut buf).map_err(|e| alloc::format!("{e:?}"))?.to_vec();
    for cut in 1..bytes.len() {
        let reply = c.call_raw(&bytes[..cut])?;
        ensure!(reply == Reply::Error(Error::Malformed), "cut at {cut}: {reply:?}");
    }
    ok("the whole message still works", c.create("truncated", 64, 0, 0, false))?;
    Ok(())
}

pub fn unknown_cache_id(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let bogus = CacheId(0x7fff_1234);
    err("alloc", c.alloc(bogus), Error::NoSuchCache)?;
    err("zalloc", c.zalloc(bogus), Error::NoSuchCache)?;
    err("free", c.free(bogus, Handle(0)), Error::NoSuchCache)?;
    err("destroy", c.destroy(bogus), Error::NoSuchCache)?;
    err("shrink", c.shrink(bogus), Error::NoSuchCache)?;
    err("info", c.cache_info(bogus), Error::NoSuchCache)?;
    err("exchange", c.magazine_exchange(bogus, 0, protocol::ExchangeOp::Refill), Error::NoSuchCache)?;
    Ok(())
}

pub fn control_header_valid(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = open(h, CLIENT)?;
    let SessionInfo { client, magazine_slots, magazine_capacity, control_size, .. } = ok("hello", c.hello(CLIENT))?;
    let header = c.control_header()?;
    ensure!(header.magic == CONTROL_MAGIC, "magic {:#x}", header.magic);
    ensure!(header.version == PROTOCOL_VERSION, "version {}", header.version);
    ensure!(header.client == client, "client {} vs {}", header.client, client);
    ensure!(header.slots == magazine_slots, "slots {} vs {}", header.slots, magazine_slots);
    ensure!(header.capacity == magazine_capacity, "capacity {}", header.capacity);
    ensure!(header.check(control_size as usize).is_ok(), "header check failed");
    Ok(())
}

pub fn goodbye_reclaims_everything(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut peer = connect(h, PEER)?;
    let before = ok("peer stats", peer.stats())?.pool_free_pages;
    let mut c = connect(h, CLIENT)?;
    let cache = ok("create", c.create("goodbye", 2048, 0, 0, false))?.cache;
    for _ in 0..32 {
        ok("alloc", c.alloc(cache))?;
    }
    ok("kmalloc large", c.kmalloc(40_000))?;
    let during = ok("peer stats", peer.stats())?.pool_free_pages;
    ensure!(during < before, "pool did not shrink: {during} vs {before}");
    ok("goodbye", c.goodbye())?;
    drop(c);
    let after = ok("peer stats", peer.stats())?.pool_free_pages;
    ensure!(after == before, "pool free pages {after} after goodbye, {before} before");
    Ok(())
}

//! Attacks on the transport: malformed messages, connections that never say `Hello`, a flood
//! of connections, and a client flooding requests while others work (fairness).

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use memclient::host::{ConnectError, Connection};
use protocol::{CacheId, Handle, Reply, Request};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use crate::peer::{Failure, Peer, encode, hello_bytes, ok};
use crate::world::World;

/// A deterministic byte stream (xorshift).
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// One malformed message: the reply must be an error (or a close, when `may_close`).
fn expect_refusal(a: &mut Peer, what: &str, bytes: &[u8]) -> Result<(), Failure> {
    match a.call_raw(bytes)? {
        Some(Reply::Error(_)) => Ok(()),
        // Random bytes may spell a valid request; it is then served, harmlessly, as the client's own.
        Some(_) if what == "random" => Ok(()),
        other => Err(format!("{what} ({} bytes): {other:?}", bytes.len())),
    }
}

/// Attack 8: Malformed messages: random bytes, every truncation of every request kind, oversized,
/// wrong version, unknown operation, trailing bytes. Each gets an error reply and the session
/// goes on; a message past the transport's limit, or of zero length (the end of the
/// connection), closes only that connection.
pub fn malformed_messages(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let mut rng = Bytes(0x2545_f491_4f6c_dd1d);
    for i in 0..2000 {
        let len = (rng.next() % 64) as usize + (i % 3);
        let bytes = rng.fill(len);
        if bytes.is_empty() {
            continue; // a zero-length message is the end of the connection (below)
        }
        if matches!(protocol::decode_request(&bytes), Ok(Request::Goodbye)) {
            continue; // a valid Goodbye would end this session on purpose
        }
        expect_refusal(&mut a, "random", &bytes)?;
    }
    let name = protocol::cache_name("a-trunc").map_err(|e| format!("{e:?}"))?;
    let requests = [
        Request::CacheCreate { name, size: 300_000, align: 1 << 20, flags: 0xdead_beef, ctor: true, dtor: false },
        Request::Free { cache: CacheId(u32::MAX), handle: Handle(u64::MAX) },
        Request::MagazineExchange { cache: CacheId(77), slot: 9999, op: protocol::ExchangeOp::Flush },
        Request::SlabInfo { page: 60000, all_clients: true },
        Request::Kmalloc { size: u32::MAX },
    ];
    for r in &requests {
        let full = encode(r);
        for cut in 1..full.len() {
            expect_refusal(&mut a, "truncated", &full[..cut])?;
        }
        let mut trailing = full.clone();
        trailing.push(0);
        expect_refusal(&mut a, "trailing byte", &trailing)?;
    }
    expect_refusal(&mut a, "unknown operation", &[200, 1])?;
    expect_refusal(&mut a, "unknown operation", &[0xff, 0xff, 0xff, 0xff, 0x0f])?;
    expect_refusal(&mut a, "oversized", &[13u8; protocol::MAX_MESSAGE_BYTES + 1])?;
    expect_refusal(&mut a, "second Hello", &hello_bytes("hostile-1", protocol::PROTOCOL_VERSION))?;
    expect_refusal(&mut a, "Hello of another version", &hello_bytes("hostile-1", 999))?;
    expect_refusal(&mut a, "Hello as another client", &hello_bytes("victim-0", protocol::PROTOCOL_VERSION))?;
    // Still served.
    ok("stats after the garbage", a.stats())?;
    // Past the transport's limit: this connection is closed, nothing else is.
    match a.call_raw(&vec![0u8; 70 * 1024]) {
        Ok(None) | Err(_) => {}
        Ok(Some(r)) => return Err(format!("a 70 KiB message was answered: {r:?}")),
    }
    drop(a);
    // A zero-length message is the end of the connection (SOCK_SEQPACKET cannot tell it from a
    // shutdown): closed, not answered.
    let mut a = w.attacker("hostile-1")?;
    match a.call_raw(&[]) {
        Ok(None) | Err(_) => {}
        Ok(Some(r)) => return Err(format!("a zero-length message was answered: {r:?}")),
    }
    drop(a);
    // A first message of another name is refused (another version: see hello_version_retry).
    for hello in [hello_bytes("nobody", protocol::PROTOCOL_VERSION), vec![0xff; 10]] {
        match Connection::connect(&w.socket(), &hello) {
            Err(ConnectError::Refused(_)) | Err(ConnectError::Io(_)) => {}
            Ok(_) => return Err("a bad Hello was admitted".into()),
        }
    }
    Ok(())
}

/// A raw connection that sends nothing.
fn silent_connection(w: &World) -> Result<std::os::fd::OwnedFd, Failure> {
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(|e| e.to_string())?;
    let addr = SocketAddrUnix::new(w.socket()).map_err(|e| e.to_string())?;
    rustix::net::connect(&fd, &addr).map_err(|e| e.to_string())?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    Ok(fd)
}

/// Waits for the server to end `fd` (a refusal message may come first); `true` once it has.
fn closed_by_server(fd: &std::os::fd::OwnedFd) -> bool {
    let mut buf = [0u8; 64];
    for _ in 0..4 {
        match rustix::net::recv(fd, &mut buf, rustix::net::RecvFlags::empty()) {
            Ok((_, 0)) => return true,
            Ok(_) => continue,
            Err(rustix::io::Errno::CONNRESET) => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Attack 12: Connections that never say `Hello` are closed by the server; a flood of connections
/// beyond the configured clients is refused at once; connected clients never notice, and a
/// client task that was not connected is admitted once the flood is gone.
pub fn never_hello_and_connection_flood(w: &mut World) -> Result<(), Failure> {
    let flood: Vec<_> = (0..40).map(|_| silent_connection(w)).collect::<Result<_, _>>()?;
    let ended = flood.iter().filter(|fd| closed_by_server(fd)).count();
    if ended != flood.len() {
        return Err(format!("{} of {} silent connections were left open", flood.len() - ended, flood.len()));
    }
    drop(flood);
    for v in &mut w.victims {
        ok("victim during the flood", v.peer.stats())?;
    }
    let a = w.attacker("hostile-2")?;
    a.close();
    Ok(())
}

/// Attack 14: A client floods requests as fast as it can (pipelined, and then without reading its
/// replies) while a victim makes a fixed number of round trips: the victim finishes all of them
/// while the flood is still going, and the client that does not read is disconnected.
pub fn flooding_client_fairness(w: &mut World) -> Result<(), Failure> {
    let flooder = w.attacker("hostile-1")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let mut f = flooder;
            let stats = encode(&Request::Stats);
            let mut reply = vec![0u8; 4096];
            // Bounded: the victim's fixed work ends long before this many requests.
            for _ in 0..200_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for _ in 0..16 {
                    f.connection_mut().send(&stats).map_err(|e| e.to_string())?;
                }
                for _ in 0..16 {
                    if f.connection_mut().receive(&mut reply).map_err(|e| e.to_string())? == 0 {
                        return Err("flooder disconnected".into());
                    }
                }
                sent.fetch_add(16, Ordering::Relaxed);
            }
            f.close();
            Ok(())
        })
    };
    while sent.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let before = sent.load(Ordering::Relaxed);
    let v = &mut w.victims[0];
    let cache = v.caches[0];
    // At least 500 round trips, and on until the flooder has sent 500 requests meanwhile (a
    // loaded machine may starve the flooder's thread for a while: that is no contention yet).
    let mut round_trips = 0u32;
    for i in 0..50_000u32 {
        if i >= 500 && sent.load(Ordering::Relaxed) - before >= 500 {
            break;
        }
        round_trips += 1;
        let h = ok("victim alloc during the flood", v.peer.alloc(cache))?.handle;
        v.peer.write(h.0, &i.to_le_bytes());
        if v.peer.read(h.0, 4) != Some(i.to_le_bytes().to_vec()) {
            return Err("victim object changed during the flood".into());
        }
        ok("victim free during the flood", v.peer.free(cache, h))?;
    }
    let during = sent.load(Ordering::Relaxed) - before;
    let still_flooding = !thread.is_finished();
    stop.store(true, Ordering::Relaxed);
    thread.join().map_err(|_| "flooder panicked")??;
    if !still_flooding || during < 500 {
        return Err(format!(
            "no contention: the flooder sent {during} requests during the victim's {round_trips} alloc/free pairs"
        ));
    }
    // A client that never reads its replies fills its socket and is disconnected.
    let mut deaf = w.attacker("hostile-2")?;
    let alloc = encode(&Request::Kmalloc { size: 8 });
    let mut cut = false;
    for _ in 0..1_000_000u32 {
        match deaf.connection_mut().send(&alloc) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                cut = true;
                break;
            }
            Err(e) => return Err(format!("deaf client: {e}")),
        }
    }
    if !cut {
        return Err("a client that never reads was never disconnected".into());
    }
    Ok(())
}

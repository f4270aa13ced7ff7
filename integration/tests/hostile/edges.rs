//! Attacks on the protocol's edges (issue 11): the end of a connection taken for a message, a
//! `Hello` of another version, and cache names that disguise rows of `memctl`'s output.

use std::os::fd::OwnedFd;
use std::time::Duration;

use protocol::{Error, PROTOCOL_VERSION, Reply, Request};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, Shutdown, SocketAddrUnix, SocketFlags, SocketType};

use crate::limits::raw_create;
use crate::peer::{Failure, encode, hello_bytes, ok};
use crate::world::World;

/// A raw connection with a receive timeout (a liveness bound).
fn raw(w: &World) -> Result<OwnedFd, Failure> {
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(|e| e.to_string())?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(w.socket()).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    Ok(fd)
}

fn send(fd: &OwnedFd, bytes: &[u8]) -> Result<(), Failure> {
    rustix::net::send(fd, bytes, SendFlags::NOSIGNAL).map(|_| ()).map_err(|e| format!("send: {e}"))
}

/// The next reply (`None` at the end of the connection). Descriptors that come with it are
/// discarded by the kernel (no control buffer).
fn receive(fd: &OwnedFd) -> Result<Option<Reply>, Failure> {
    let mut buf = vec![0u8; 4096];
    match rustix::net::recv(fd, &mut buf, RecvFlags::empty()) {
        Ok((0, _)) | Err(rustix::io::Errno::CONNRESET) => Ok(None),
        Ok((n, _)) => protocol::decode_reply(&buf[..n]).map(Some).map_err(|e| format!("undecodable reply: {e:?}")),
        Err(e) => Err(format!("receive: {e}")),
    }
}

/// Attack (issue 11): a client sends a request and at once shuts its sending side down
/// (`shutdown(SHUT_WR)`), twenty times. The end of the connection is not a message: each
/// connection gets exactly one reply (to its request) and then the end of the connection.
pub fn shutdown_write_is_not_a_message(w: &mut World) -> Result<(), Failure> {
    let mut extra = Vec::new();
    for round in 0..20 {
        let fd = raw(w)?;
        send(&fd, &hello_bytes("hostile-1", PROTOCOL_VERSION))?;
        match receive(&fd)? {
            Some(Reply::Hello { .. }) => {}
            other => return Err(format!("Hello answered with {other:?}")),
        }
        send(&fd, &encode(&Request::Stats))?;
        rustix::net::shutdown(&fd, Shutdown::Write).map_err(|e| e.to_string())?;
        let mut replies = Vec::new();
        while let Some(reply) = receive(&fd)? {
            replies.push(reply);
        }
        match replies.as_slice() {
            [Reply::Stats(_)] => {}
            _ => extra.push(format!(
                "round {round}: {} replies ({} Malformed)",
                replies.len(),
                replies.iter().filter(|r| **r == Reply::Error(Error::Malformed)).count()
            )),
        }
        drop(fd);
        w.reclaim_attackers()?;
    }
    if !extra.is_empty() {
        return Err(format!("the end of a connection was answered as requests: {}", extra.join("; ")));
    }
    Ok(())
}

/// Attack (issue 11, and `docs/protocol.md`'s version rule): a `Hello` of another version gets
/// `VersionMismatch` with the server's version and the connection stays open for another
/// `Hello`, which is admitted; a connection that keeps sending wrong versions is still closed
/// at its Hello deadline.
pub fn hello_version_retry(w: &mut World) -> Result<(), Failure> {
    let fd = raw(w)?;
    send(&fd, &hello_bytes("hostile-2", 999))?;
    match receive(&fd)? {
        Some(Reply::Error(Error::VersionMismatch { server })) if server == PROTOCOL_VERSION => {}
        other => return Err(format!("Hello v999 answered with {other:?}")),
    }
    send(&fd, &hello_bytes("hostile-2", PROTOCOL_VERSION))
        .map_err(|e| format!("the connection was closed after VersionMismatch: {e}"))?;
    match receive(&fd)? {
        Some(Reply::Hello { .. }) => {}
        other => return Err(format!("the retried Hello was answered with {other:?}")),
    }
    send(&fd, &encode(&Request::Stats))?;
    match receive(&fd)? {
        Some(Reply::Stats(_)) => {}
        other => return Err(format!("stats after the retried Hello: {other:?}")),
    }
    drop(fd);
    // Wrong versions forever: closed at the deadline (hello_timeout_ms = 300 in this suite).
    let fd = raw(w)?;
    let mut answered = 0;
    loop {
        if send(&fd, &hello_bytes("hostile-2", 0)).is_err() {
            break;
        }
        match receive(&fd)? {
            Some(Reply::Error(Error::VersionMismatch { .. })) => answered += 1,
            None => break,
            other => return Err(format!("wrong version answered with {other:?}")),
        }
        if answered > 100_000 {
            return Err("a connection sending wrong versions was never closed".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Attack (issue 11): cache names that would disguise rows of `memctl slabinfo`: invisible
/// (zero-width space, byte-order mark, word joiner), right-to-left override and isolates,
/// non-ASCII letters, a no-break space, DEL. Each is refused with `InvalidArgument`; the
/// observer's slabinfo shows only printable ASCII names.
pub fn disguised_cache_names(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-2")?;
    let names = [
        "dentry\u{200b}",
        "\u{feff}dentry",
        "den\u{2060}try",
        "\u{202e}yrtned",
        "\u{2066}dentry\u{2069}",
        "caf\u{e9}",
        "a\u{a0}b",
        "a\u{7f}b",
        "kmalloc\u{2011}64",
    ];
    let mut accepted = Vec::new();
    for name in names {
        match a.call_raw(&raw_create(name.as_bytes(), 64, 0, 0))? {
            Some(Reply::Error(Error::InvalidArgument)) => {}
            other => accepted.push(format!("{name:?}: {other:?}")),
        }
    }
    ok("a printable ASCII name", a.create("plain.name-1_x", 64, 0, 0))?;
    let rows = ok("slabinfo", w.observer.slabinfo(true))?;
    let shown: Vec<String> =
        rows.iter().map(|r| r.name.to_string()).filter(|n| !n.bytes().all(|b| b.is_ascii_graphic())).collect();
    a.close();
    if !accepted.is_empty() || !shown.is_empty() {
        return Err(format!("disguising names accepted: {}; shown by slabinfo: {shown:?}", accepted.join("; ")));
    }
    Ok(())
}

//! Attacks on what the server shares among all comers before anyone is admitted (issue 11):
//! the connections that have not said `Hello` yet, and the server's own log output.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use protocol::{PROTOCOL_VERSION, Reply};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::peer::{Failure, hello_bytes};
use crate::world::{self, World};

/// How long a connection may wait for an answer before the suite calls the server stuck (a
/// liveness bound, not a speed check).
const STUCK: Duration = Duration::from_secs(10);

/// A connected, silent socket (`None` if the connect itself failed, e.g. the backlog is full).
fn silent(socket: &std::path::Path) -> Option<OwnedFd> {
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).ok()?;
    let addr = SocketAddrUnix::new(socket).ok()?;
    rustix::net::connect(&fd, &addr).ok()?;
    Some(fd)
}

/// Connects, sends `hello` and waits (bounded) for the first reply: `Ok(Some(reply))`, or
/// `Ok(None)` when the server closed without a word, `Err` when it never answered.
fn hello_raw(socket: &std::path::Path, hello: &[u8]) -> Result<Option<Reply>, Failure> {
    let fd = silent(socket).ok_or("cannot connect")?;
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(STUCK))
        .map_err(|e| e.to_string())?;
    let _ = rustix::net::send(&fd, hello, SendFlags::NOSIGNAL);
    let mut buf = vec![0u8; 4096];
    match rustix::net::recv(&fd, &mut buf, RecvFlags::empty()) {
        Ok((0, _)) | Err(rustix::io::Errno::CONNRESET) => Ok(None),
        Ok((n, _)) => protocol::decode_reply(&buf[..n]).map(Some).map_err(|e| format!("{e:?}")),
        Err(rustix::io::Errno::AGAIN) => Err(format!("no answer within {STUCK:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Attack (issue 11): a process opens hundreds of connections that never say `Hello` and keeps
/// reopening them; meanwhile a client task that is not connected yet connects again and again,
/// and is admitted at its first try every time.
pub fn silent_connection_flood(w: &mut World) -> Result<(), Failure> {
    let socket = w.socket();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, opened, socket) = (stop.clone(), opened.clone(), socket.clone());
        std::thread::spawn(move || {
            let mut held: std::collections::VecDeque<OwnedFd> = Default::default();
            while !stop.load(Ordering::Relaxed) {
                if let Some(fd) = silent(&socket) {
                    held.push_back(fd);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                if held.len() > 400 {
                    held.pop_front();
                }
            }
        })
    };
    while opened.load(Ordering::Relaxed) < 400 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut outcome = Ok(());
    for attempt in 0..10 {
        match w.attacker("hostile-2") {
            Ok(p) => p.close(),
            Err(e) => {
                outcome = Err(format!("attempt {attempt}: a real client was kept out by the flood: {e}"));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().map_err(|_| "flood thread panicked")?;
    println!("    silent_connection_flood: {} silent connections opened meanwhile", opened.load(Ordering::Relaxed));
    outcome
}

/// Attack (issue 11): the server's stderr is a pipe nobody reads (its buffer shrunk to one
/// page, so a few dozen lines fill it), and a flood of refused connections plus every client
/// task connecting and leaving again and again would each log lines, far more than the pipe
/// holds. The server must go on serving throughout: every bad `Hello` gets its refusal, every
/// client task is admitted, and a client is served. Once the pipe is read again the lines
/// arrive, in order (those over a source's rate limit counted, not written).
pub fn stderr_never_read(_: &mut World) -> Result<(), Failure> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("system.toml"), world::system()).map_err(|e| e.to_string())?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_server-under-test"))
        .current_dir(dir.path())
        .args(["--system", "system.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let result = (|| {
        let stderr = child.stderr.take().ok_or("no stderr")?;
        // One page of pipe: a few dozen log lines fill it.
        let pipe = rustix::pipe::fcntl_setpipe_size(stderr.as_fd(), 4096).map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line).map_err(|e| e.to_string())?;
        if !line.contains("listening on") {
            return Err(format!("server did not start: {line:?}"));
        }
        let socket = dir.path().join("memserver.sock");
        let bad = hello_bytes("nobody", PROTOCOL_VERSION);
        for i in 0..3000 {
            match hello_raw(&socket, &bad) {
                Ok(Some(Reply::Error(_))) | Ok(None) => {}
                other => return Err(format!("bad Hello {i}: {other:?}")),
            }
        }
        let names = ["memctl", "victim-0", "victim-1", "victim-2", "hostile-0", "hostile-1", "hostile-2", "inspector"];
        for round in 0..10 {
            for name in names {
                let peer = crate::peer::Peer::connect(&socket, name)
                    .map_err(|e| format!("round {round}: {name} was not admitted while stderr was full: {e}"))?;
                peer.close();
            }
        }
        let mut client = crate::peer::Peer::connect(&socket, "victim-0")
            .map_err(|e| format!("a client task was not served while stderr was full: {e}"))?;
        crate::peer::ok("stats while stderr is full", client.stats())?;
        // Read the pipe again: the server's writer catches up.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(stderr);
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.push_str(&String::from_utf8_lossy(&buf[..n]));
                if all.contains("client 2 (victim-0) admitted") && all.matches("(inspector) disconnected").count() >= 10
                {
                    let _ = tx.send(all);
                    break;
                }
            }
        });
        let log = rx.recv_timeout(STUCK).map_err(|_| "the server's log lines never arrived")?;
        if log.len() <= pipe {
            return Err(format!("only {} bytes of log, the pipe holds {pipe}: stderr was never full", log.len()));
        }
        println!(
            "    stderr_never_read: 3000 refusals and 80 admissions served with stderr ({pipe}-byte pipe) unread; \
             then {} lines ({} bytes) arrived",
            log.lines().count(),
            log.len()
        );
        client.close();
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

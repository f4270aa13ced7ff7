//! The host runner end to end: the real binary with its test service, real client processes.

mod host;

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host::{call, eventually, mapping_resident_kib, resident_pages_of_this_process, start, system_toml};
use memclient::host::ConnectError;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

const PAGE: usize = 4096;

#[test]
fn hello_reply_carries_window_and_control_region() {
    let server = start(&system_toml(2000));
    let (connection, reply) = server.connect("app").unwrap();
    assert_eq!(reply, "welcome 1");
    assert_eq!(connection.window_len(), 8192 * PAGE);
    assert_eq!(connection.control_len(), PAGE);
    let (other, reply) = server.connect("hostile-0").unwrap();
    assert_eq!((reply.as_str(), other.window_len()), ("welcome 3", 16 * PAGE));
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("client 1 (app) admitted") && log.contains("client 1 (app) disconnected"), "{log}");
}

#[test]
fn window_bytes_are_shared_between_client_and_server() {
    let server = start(&system_toml(2000));
    let (mut c, _) = server.connect("app").unwrap();
    assert!(c.window().write(1000, b"from client"));
    assert_eq!(call(&mut c, "peek 1000 11"), "from client");
    assert_eq!(call(&mut c, "poke 5000 from server"), "ok");
    let mut seen = [0u8; 11];
    assert!(c.window().read(5000, &mut seen));
    assert_eq!(&seen, b"from server");
    // The last byte of the window is reachable, one past it is not.
    let end = c.window_len() as u64;
    assert_eq!(call(&mut c, &format!("poke {} x", end - 1)), "ok");
    assert_eq!(call(&mut c, &format!("poke {end} x")), "out of range");
    assert_eq!(call(&mut c, &format!("peek {} 2", end - 1)), "out of range");
}

#[test]
fn release_punches_holes_and_resident_memory_falls() {
    let server = start(&system_toml(2000));
    let (mut c, _) = server.connect("app").unwrap();
    let pages = 4096usize; // 16 MiB
    assert_eq!(call(&mut c, &format!("grant 0 {pages}")), "ok");
    let process_before = resident_pages_of_this_process();
    // SAFETY: the window is window_len() >= 16 MiB bytes, mapped for the connection's life.
    unsafe { std::ptr::write_bytes(c.window_base(), 0x5A, pages * PAGE) };
    let touched = mapping_resident_kib(c.window_base());
    let process_touched = resident_pages_of_this_process();
    assert_eq!(call(&mut c, "resident"), pages.to_string(), "the server's memfd holds the pages");
    assert_eq!(call(&mut c, &format!("release 0 {pages}")), "ok");
    assert_eq!(call(&mut c, "resident"), "0");
    let after = mapping_resident_kib(c.window_base());
    let process_after = resident_pages_of_this_process();
    eprintln!(
        "client window RSS: touched {touched} KiB, after release {after} KiB; client process RSS: \
         before {} KiB, touched {} KiB, after {} KiB",
        process_before * 4,
        process_touched * 4,
        process_after * 4
    );
    assert_eq!((touched, after), (16 * 1024, 0));
    let mut byte = [1u8];
    assert!(c.window().read(12345, &mut byte));
    assert_eq!(byte, [0], "released pages read as zero in the client too");
    assert_eq!(call(&mut c, "release 8191 2"), "out of the client's window");
}

#[test]
fn pages_touched_without_a_grant_are_punched_out() {
    // One write of 256 pages may span several audit passes on a loaded machine, each a
    // violation: this test is about the punch, not the disconnect after three. No slack: the
    // pages written after the last pass during the write would otherwise stay, within it.
    let audit = [("violations_max", 100), ("slack_pages", 0)];
    let server = start(&host::system_text(2000).table("server.audit", &audit).to_string());
    let (mut c, _) = server.connect("app").unwrap();
    assert_eq!(call(&mut c, "grant 0 16"), "ok");
    // SAFETY: the window is window_len() >= 1 MiB bytes, mapped for the connection's life.
    unsafe { std::ptr::write_bytes(c.window_base(), 0x5A, 256 * PAGE) };
    // The audit after this request (or the timer) takes the 240 ungranted pages back.
    assert!(eventually(Duration::from_secs(10), || call(&mut c, "resident") == "16"));
    let mut byte = [0u8];
    assert!(c.window().read(15 * PAGE, &mut byte) && byte == [0x5A], "granted pages keep their bytes");
    assert!(c.window().read(16 * PAGE, &mut byte) && byte == [0], "ungranted pages read as zero");
    // The punch is logged (in one line or several: the timer may audit while the client is
    // still writing, and the log is rate-limited, so the lines need not add up to 240).
    assert!(eventually(Duration::from_secs(5), || server.stderr_so_far().contains("ungranted pages")));
}

#[test]
fn a_client_bound_to_an_executable_admits_only_that_program() {
    // hostile-0 must be /usr/bin/true: this test binary is not; app names this binary.
    let me = std::env::current_exe().unwrap();
    let system = system_toml(2000)
        .replace("name = \"hostile-0\"", "name = \"hostile-0\"\nexe = \"/usr/bin/true\"")
        .replace("name = \"app\"", &format!("name = \"app\"\nexe = {:?}", me.display().to_string()));
    let server = start(&system);
    match server.connect("hostile-0") {
        Err(ConnectError::Refused(reply)) => assert_eq!(reply, b"refused: NotPermitted"),
        other => panic!("{other:?}"),
    }
    assert!(server.connect("app").is_ok(), "the configured executable is admitted");
    assert!(server.stderr_so_far().contains("not client 3 (hostile-0): executable"));
}

#[test]
fn unknown_and_duplicate_names_are_refused() {
    let server = start(&system_toml(2000));
    match server.connect("nobody") {
        Err(ConnectError::Refused(reply)) => assert_eq!(reply, b"refused: unknown client"),
        other => panic!("{other:?}"),
    }
    let (first, _) = server.connect("app").unwrap();
    match server.connect("app") {
        Err(ConnectError::Refused(reply)) => assert_eq!(reply, b"refused: already connected"),
        other => panic!("{other:?}"),
    }
    drop(first);
    // Once the first connection is gone the name is free again.
    assert!(eventually(Duration::from_secs(5), || server.connect("app").is_ok()));
}

#[test]
fn silent_connections_never_keep_a_client_out() {
    let server = start(
        &system_toml(5000).replace("hello_timeout_ms = 5000", "hello_timeout_ms = 5000\npending_connections = 2"),
    );
    // Far more silent connections than the pending pool and than there are clients.
    let raw: Vec<_> = (0..20).map(|_| raw_connection(&server.socket)).collect();
    let (app, reply) = server.connect("app").expect("a client task is admitted whatever the silent ones do");
    assert_eq!(reply, "welcome 1");
    // The evicted silent connections were told so; at most the pool's two are still pending.
    let mut evicted = 0;
    for fd in &raw {
        rustix::net::sockopt::set_socket_timeout(
            fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_millis(50)),
        )
        .unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = rustix::net::recv(fd, &mut buf[..], rustix::net::RecvFlags::empty())
            && &buf[..n] == b"refused: TooManyConnections"
        {
            evicted += 1;
        }
    }
    assert!(evicted >= 18, "{evicted} of 20 silent connections evicted");
    drop(app);
}

#[test]
fn a_hello_of_another_version_may_be_retried_on_the_same_connection() {
    // The test service answers "retry" with a Retry admission (as the real service does for a
    // VersionMismatch): the connection stays pending and the next Hello is admitted.
    let server = start(&system_toml(2000));
    let fd = raw_connection(&server.socket);
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(10)))
        .unwrap();
    rustix::net::send(&fd, b"retry", rustix::net::SendFlags::empty()).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = rustix::net::recv(&fd, &mut buf[..], rustix::net::RecvFlags::empty()).unwrap();
    assert_eq!(&buf[..n], b"try again");
    rustix::net::send(&fd, b"hello app", rustix::net::SendFlags::empty()).unwrap();
    let (n, _) = rustix::net::recv(&fd, &mut buf[..], rustix::net::RecvFlags::empty()).unwrap();
    assert_eq!(&buf[..n], b"welcome 1");
}

#[test]
fn silent_connection_is_closed_after_the_hello_timeout() {
    let server = start(&system_toml(300));
    let fd = raw_connection(&server.socket);
    rustix::net::sockopt::set_socket_timeout(&fd, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let (_, len) = rustix::net::recv(&fd, &mut [0u8; 16][..], rustix::net::RecvFlags::empty()).unwrap();
    let waited = start.elapsed();
    assert_eq!(len, 0, "expected end of connection");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5), "{waited:?}");
    assert!(server.stderr_so_far().contains("no Hello in time"));
}

#[test]
fn client_that_does_not_read_replies_is_disconnected() {
    let server = start(&system_toml(2000));
    let (mut flooder, _) = server.connect("hostile-0").unwrap();
    let (mut observer, _) = server.connect("memctl").unwrap();
    let big = vec![b'x'; 60_000];
    let mut failed = false;
    for _ in 0..10_000 {
        if flooder.send(&big).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "the server kept accepting requests whose replies were never read");
    assert!(eventually(Duration::from_secs(5), || call(&mut observer, "connected") == "2"));
    assert!(server.stderr_so_far().contains("not reading its replies"));
}

#[test]
fn sigkilled_client_is_reclaimed_at_once() {
    let server = start(&system_toml(2000));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_a_connection", "--ignored", "--nocapture"])
        .env("MEMSERVER_TEST_SOCKET", &server.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut observer, _) = server.connect("memctl").unwrap();
    assert!(eventually(Duration::from_secs(20), || call(&mut observer, "connected") == "1,2"), "child never connected");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    assert!(eventually(Duration::from_secs(2), || call(&mut observer, "connected") == "2"));
    eprintln!("SIGKILLed client noticed within {:?}", killed.elapsed());
    assert!(server.connect("app").is_ok(), "the killed client's name is free again");
}

/// Pins the process or thread `pid` (`None`: the calling thread) to CPU `cpu`.
fn pin(pid: Option<rustix::process::Pid>, cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(pid, &set).unwrap();
}

/// The control region's CPU hints as the client reads them: (server's, client's).
fn cpu_hints(c: &memclient::host::Connection) -> (u32, u32) {
    let word = |offset| c.control().load_u32(offset).unwrap();
    (word(protocol::control::SERVER_CPU_OFFSET), word(protocol::control::CLIENT_CPU_OFFSET))
}

/// A client on another CPU than the server's is told (`server_cpu`) that the server polls
/// for its requests instead of sleeping, and when it moves to the server's CPU, that the server
/// does not any more. (That the runner does not poll for a client on its own CPU is
/// `runner::polling`'s unit test: seen from that CPU, the polling would be over before the
/// client runs.)
#[test]
fn the_server_polls_for_a_client_on_another_cpu_and_says_so() {
    use protocol::control::{SERVER_POLLING, cpu_hint};
    if rustix::thread::sched_getaffinity(None).map_or(0, |set| set.count()) < 2 {
        eprintln!("skipped: one CPU");
        return;
    }
    let server = start(&system_toml(2000));
    let server_pid = rustix::process::Pid::from_raw(server.child.id() as i32);
    let (mut c, _) = server.connect("app").unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pin(server_pid, 0);
                pin(None, 1);
                let mut seen = Vec::new();
                for _ in 0..200 {
                    assert_eq!(call(&mut c, "peek 0 1"), "\0");
                    seen.push(cpu_hints(&c));
                }
                assert!(seen.iter().all(|&(_, client)| client == cpu_hint(1)), "client hints {seen:?}");
                assert!(seen.contains(&(cpu_hint(0) | SERVER_POLLING, cpu_hint(1))), "never told of polling: {seen:?}");
                // Both on CPU 0: the client is told the polling ended.
                pin(None, 0);
                for _ in 0..20 {
                    assert_eq!(call(&mut c, "peek 0 1"), "\0");
                }
                assert_eq!(cpu_hints(&c), (cpu_hint(0), cpu_hint(0)), "still told of polling on the server's CPU");
            })
            .join()
            .unwrap();
    });
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
}

/// Run by `sigkilled_client_is_reclaimed_at_once` in a child process: connect and wait.
#[test]
#[ignore = "helper process for sigkilled_client_is_reclaimed_at_once"]
fn child_holds_a_connection() {
    let Some(socket) = std::env::var_os("MEMSERVER_TEST_SOCKET") else { return };
    let (_connection, _) = memclient::host::Connection::connect(socket.as_ref(), b"hello app").unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn raw_connection(path: &std::path::Path) -> std::os::fd::OwnedFd {
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    rustix::net::connect(fd.as_fd(), &SocketAddrUnix::new(path).unwrap()).unwrap();
    fd
}

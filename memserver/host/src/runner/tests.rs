//! The loop driven directly: socketpairs adopted as connections, a scripted fake service.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use memserver_system::System;
use protocol::ClientId;
use rustix::net::{AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, SocketType};

use super::*;
use crate::memory::Windows;
use memserver_system::SystemText;

/// Two tiny clients and a pending pool of two connections.
fn system_text() -> SystemText {
    SystemText::new(64)
        .server("socket", "\"unused.sock\"")
        .server("max_caches_per_client", 4)
        .server("magazine_slots", 4)
        .server("hello_timeout_ms", 100)
        .server("pending_connections", 2)
        .client("a", 4, 4)
        .client("b", 4, 8)
}

fn system() -> System {
    System::parse(&system_text().to_string()).unwrap()
}

/// The first byte of a Hello asking to be answered with `Retry`.
const RETRY: u8 = 0xfe;

/// Admits whatever id the first byte of the Hello says, records every call.
#[derive(Default)]
struct Fake {
    admitted: Vec<ClientId>,
    disconnected: Vec<ClientId>,
    /// For each `disconnected`: whether the client's memory was still mapped during the call.
    mapped_at_disconnect: Vec<bool>,
    windows: Windows,
}

impl Service for Fake {
    fn admit(&mut self, hello: &[u8], reply: &mut [u8]) -> Admission {
        match hello.first() {
            Some(&0) => Admission::Refuse { reply_len: 0 },
            Some(&RETRY) => {
                reply[..5].copy_from_slice(b"again");
                Admission::Retry { reply_len: 5 }
            }
            Some(&id) => {
                self.admitted.push(id.into());
                reply[0] = b'W';
                Admission::Admit { client: id.into(), control_len: 100, reply_len: 1 }
            }
            None => Admission::Refuse { reply_len: REPLY_MAX + 1 },
        }
    }
    fn refusal(&mut self, _: Refusal, reply: &mut [u8]) -> usize {
        reply[0] = b'R';
        1
    }
    fn handle(&mut self, _: ClientId, request: &[u8], reply: &mut [u8]) -> usize {
        // Claims a reply longer than the buffer: the runner must not panic.
        if request == b"liar" {
            return usize::MAX;
        }
        reply[..request.len()].copy_from_slice(request);
        request.len()
    }
    fn memory(&mut self) -> &mut Windows {
        &mut self.windows
    }
    fn disconnected(&mut self, client: ClientId) {
        self.mapped_at_disconnect.push(self.windows.get(client).is_some());
        self.disconnected.push(client);
    }
}

fn pair(runner: &mut Runner<'_, Fake>) -> OwnedFd {
    let (ours, theirs) =
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
    rustix::net::sockopt::set_socket_timeout(&ours, rustix::net::sockopt::Timeout::Recv, Some(Duration::from_secs(5)))
        .unwrap();
    runner.adopt(theirs).unwrap();
    ours
}

/// A connection admitted as client `id` (its Hello reply read).
fn admitted(runner: &mut Runner<'_, Fake>, id: u8) -> OwnedFd {
    let client = pair(runner);
    rustix::net::send(&client, &[id], rustix::net::SendFlags::empty()).unwrap();
    turn(runner);
    assert_eq!(receive(&client).1, 2, "admitted with its memory");
    client
}

fn turn(runner: &mut Runner<'_, Fake>) {
    assert_eq!(runner.poll_once(Some(Duration::from_millis(20))).unwrap(), None);
}

/// Receives one message; returns its bytes and how many fds came with it.
fn receive(fd: &OwnedFd) -> (Vec<u8>, usize) {
    let mut buf = vec![0u8; REPLY_MAX + 16];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = rustix::net::recvmsg(fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).unwrap();
    let fds = control
        .drain()
        .map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => fds.count(),
            _ => 0,
        })
        .sum();
    buf.truncate(msg.bytes);
    (buf, fds)
}

#[test]
fn admission_sends_two_fds_and_requests_are_answered() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = pair(&mut runner);
    rustix::net::send(&client, &[2], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"W".to_vec(), 2));
    assert_eq!(runner.service.windows.window_len(2), Some(8 * 4096));
    assert_eq!(runner.service.windows.control_len(2), Some(4096), "rounded up to a page");
    rustix::net::send(&client, b"ping", rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"ping".to_vec(), 0));
    rustix::net::send(&client, b"liar", rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client).0.len(), REPLY_MAX, "an overlong reply length is clamped");
    drop(client);
    turn(&mut runner);
    assert_eq!(runner.service().disconnected, [2]);
    assert_eq!(runner.service().mapped_at_disconnect, [true], "memory still mapped during disconnected()");
    assert!(runner.service.windows.get(2).is_none(), "memory unmapped after disconnect");
}

#[test]
fn bad_admissions_from_the_service_are_refused_without_disconnected() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let first = pair(&mut runner);
    rustix::net::send(&first, &[1], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&first).1, 2);
    // Id 1 again (the service's duplicate check failed) and id 9 (not in system.toml).
    for id in [1u8, 9] {
        let bad = pair(&mut runner);
        rustix::net::send(&bad, &[id], rustix::net::SendFlags::empty()).unwrap();
        turn(&mut runner);
        assert_eq!(receive(&bad), (vec![], 0), "closed without memory");
    }
    assert!(runner.service().disconnected.is_empty(), "the live client 1 was not disturbed");
    assert!(runner.service.windows.get(1).is_some());
    // A refusal claiming an impossible length does not panic either.
    let empty = pair(&mut runner);
    rustix::net::send(&empty, &[], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
}

#[test]
fn oversized_requests_close_the_connection() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = admitted(&mut runner, 1);
    rustix::net::sockopt::set_socket_send_buffer_size(&client, 4 * REQUEST_MAX).unwrap();
    let big = vec![7u8; REQUEST_MAX + 1];
    rustix::net::send(&client, &big, rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(runner.service().disconnected, [1]);
}

#[test]
fn silent_connections_expire() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let silent = pair(&mut runner);
    let start = Instant::now();
    while runner.pending() > 0 && start.elapsed() < Duration::from_secs(5) {
        turn(&mut runner);
    }
    assert_eq!(runner.pending(), 0);
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert_eq!(receive(&silent), (vec![], 0));
}

#[test]
fn a_zero_length_read_is_the_end_of_the_connection() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = admitted(&mut runner, 1);
    rustix::net::send(&client, b"ping", rustix::net::SendFlags::empty()).unwrap();
    rustix::net::shutdown(&client, rustix::net::Shutdown::Write).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"ping".to_vec(), 0), "the request before the shutdown is answered");
    assert_eq!(receive(&client), (vec![], 0), "then the end of the connection, nothing else");
    assert_eq!(runner.service().disconnected, [1]);
}

#[test]
fn a_retried_hello_keeps_the_connection_pending() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = pair(&mut runner);
    rustix::net::send(&client, &[RETRY], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"again".to_vec(), 0));
    assert_eq!(runner.pending(), 1);
    rustix::net::send(&client, &[2], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"W".to_vec(), 2));
    assert_eq!(runner.pending(), 0);
}

#[test]
fn a_full_pending_pool_serves_hellos_first_then_evicts_the_oldest_silent() {
    let system = system();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let oldest = pair(&mut runner);
    let hello_sent = pair(&mut runner);
    rustix::net::send(&hello_sent, &[1], rustix::net::SendFlags::empty()).unwrap();
    // A third connection: the pool (2) is full. The one that sent its Hello is served, so
    // nobody needs to be evicted yet.
    runner.make_room();
    assert_eq!(receive(&hello_sent), (b"W".to_vec(), 2));
    let newer = pair(&mut runner);
    assert_eq!(runner.pending(), 2);
    // A fourth: both pending are silent, the oldest goes (with a refusal).
    runner.make_room();
    assert_eq!(receive(&oldest), (b"R".to_vec(), 0));
    assert_eq!(receive(&oldest), (vec![], 0));
    let _fourth = pair(&mut runner);
    assert_eq!(runner.pending(), 2);
    drop(newer);
}

#[test]
fn a_peer_of_another_uid_is_not_admitted() {
    // Client "b" must be uid 4242; this process is not.
    let system = System::parse(&system_text().client_key("uid", 4242).to_string()).unwrap();
    assert_ne!(rustix::process::geteuid().as_raw(), 4242);
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = pair(&mut runner);
    rustix::net::send(&client, &[2], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&client), (b"R".to_vec(), 0), "refused, and no memory passed");
    assert_eq!(receive(&client), (vec![], 0));
    assert_eq!(runner.service().disconnected, [2], "the service's admission was undone");
    assert_eq!(runner.service().mapped_at_disconnect, [false], "no memory was ever made for it");
    assert!(runner.service.windows.get(2).is_none());
    // Client "a" names no uid: the server's own, which this process has.
    let ok = pair(&mut runner);
    rustix::net::send(&ok, &[1], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(receive(&ok).1, 2);
}

#[test]
fn the_timer_audits_every_window_and_reclaims_a_client_that_keeps_dirtying() {
    let text = system_text().table("server.audit", &[("interval_ms", 1), ("slack_pages", 0), ("violations_max", 2)]);
    let system = System::parse(&text.to_string()).unwrap();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = admitted(&mut runner, 2);
    // The client dirties its (ungranted) window through the memfd: no request is needed for
    // the timer pass to find it.
    let window = runner.service.windows.get(2).unwrap().window.fd().try_clone_to_owned().unwrap();
    for round in 1..=2u32 {
        rustix::fs::fallocate(&window, rustix::fs::FallocateFlags::KEEP_SIZE, 0, 8 * 4096).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        turn(&mut runner);
        let violations = runner.service.windows.usage(2).map(|u| u.violations);
        if round == 1 {
            assert_eq!(violations, Some(1));
            assert_eq!(runner.service.windows.usage(2).unwrap().resident_pages, 0);
        } else {
            assert_eq!(violations, None, "reclaimed at the second violation");
        }
    }
    assert_eq!(runner.service().disconnected, [2]);
    assert_eq!(receive(&client), (vec![], 0));
}

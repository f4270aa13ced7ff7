//! The loop driven directly: socketpairs adopted as connections, a scripted fake service.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use memserver_system::System;
use protocol::ClientId;
use rustix::net::{AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, SocketType};

use super::*;
use crate::memory::Windows;

const SYSTEM: &str = r#"
[server]
pool_pages = 64
socket = "unused.sock"
max_caches_per_client = 4
magazine_slots = 4
hello_timeout_ms = 100
[[client]]
name = "a"
quota_pages = 4
window_pages = 4
[[client]]
name = "b"
quota_pages = 4
window_pages = 8
"#;

/// Admits whatever id the first byte of the Hello says, records every call.
#[derive(Default)]
struct Fake {
    admitted: Vec<ClientId>,
    disconnected: Vec<ClientId>,
    windows: Windows,
}

impl Service for Fake {
    fn admit(&mut self, hello: &[u8], reply: &mut [u8]) -> Admission {
        match hello.first() {
            Some(&0) => Admission::Refuse { reply_len: 0 },
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
        assert!(self.windows.get(client).is_some(), "memory still mapped during disconnected()");
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
    let system = System::parse(SYSTEM).unwrap();
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
    assert!(runner.service.windows.get(2).is_none(), "memory unmapped after disconnect");
}

#[test]
fn bad_admissions_from_the_service_are_refused_without_disconnected() {
    let system = System::parse(SYSTEM).unwrap();
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
    let system = System::parse(SYSTEM).unwrap();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let client = pair(&mut runner);
    rustix::net::send(&client, &[1], rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    receive(&client);
    rustix::net::sockopt::set_socket_send_buffer_size(&client, 4 * REQUEST_MAX).unwrap();
    let big = vec![7u8; REQUEST_MAX + 1];
    rustix::net::send(&client, &big, rustix::net::SendFlags::empty()).unwrap();
    turn(&mut runner);
    assert_eq!(runner.service().disconnected, [1]);
}

#[test]
fn silent_connections_expire() {
    let system = System::parse(SYSTEM).unwrap();
    let mut runner = Runner::new(&system, Fake::default(), None, None).unwrap();
    let silent = pair(&mut runner);
    let start = Instant::now();
    while runner.open > 0 && start.elapsed() < Duration::from_secs(5) {
        turn(&mut runner);
    }
    assert_eq!(runner.open, 0);
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert_eq!(receive(&silent), (vec![], 0));
}

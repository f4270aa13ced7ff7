//! (b) One `Alloc` IPC round trip against a bare `SOCK_SEQPACKET` ping-pong of the same
//! request and reply sizes, with a peer process in both cases, measured twice: both processes
//! pinned to CPU 0, and placed by the scheduler (see shared MEASUREMENTS.md: on this kind of
//! machine a cross-CPU wake-up costs ~20x a same-CPU round trip).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use memclient::Cache;
use memclient::host::Connection;
use protocol::{Handle, Reply, Request};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use rustix::process::Pid;

use crate::server::{Placement, place};

/// Set in the echo child's environment: `<fd>:<reply bytes>`.
pub const ECHO_ENV: &str = "MEMSERVER_BENCH_ECHO";
pub const GROUP: &str = "ipc";
pub const PLACEMENTS: [Placement; 2] = [Placement::OneCpu, Placement::Free];

/// The message sizes the comparison uses.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub request: usize,
    pub reply: usize,
}

/// The echo child: answers every datagram with `reply` bytes until the socket closes.
pub fn echo_child(spec: &str) {
    let (fd, reply) = spec.split_once(':').expect("fd:reply");
    let fd: i32 = fd.parse().expect("fd");
    let reply: usize = reply.parse().expect("reply");
    // SAFETY: the parent passed this descriptor to us open and owns no copy of it any more.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = [0u8; 1024];
    let answer = vec![0x42u8; reply];
    loop {
        match rustix::net::recv(&socket, &mut buf, RecvFlags::empty()) {
            Ok((_, 0)) | Err(_) => return,
            Ok(_) => {
                if rustix::net::send(&socket, &answer, SendFlags::NOSIGNAL).is_err() {
                    return;
                }
            }
        }
    }
}

/// The ping-pong peer: a process of its own, like the server.
struct Echo {
    child: Child,
    socket: OwnedFd,
}

impl Echo {
    fn spawn(reply: usize) -> Echo {
        let (mine, theirs) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
                .expect("socketpair");
        rustix::io::fcntl_setfd(&theirs, rustix::io::FdFlags::empty()).expect("clear CLOEXEC");
        let child = Command::new(std::env::current_exe().expect("exe"))
            .env(ECHO_ENV, format!("{}:{reply}", theirs.as_raw_fd()))
            .spawn()
            .expect("spawn echo");
        drop(theirs);
        Echo { child, socket: mine }
    }

    fn round_trip(&self, request: &[u8], reply: &mut [u8]) {
        rustix::net::send(&self.socket, request, SendFlags::NOSIGNAL).expect("send");
        let (_, n) = rustix::net::recv(&self.socket, reply, RecvFlags::empty()).expect("recv");
        assert!(n > 0, "echo child gone");
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

pub fn bench(c: &mut Criterion, session: &memclient::Memserver<Connection>, server: Pid) -> Sizes {
    let cache = Cache::create_without_magazines(session, "bench-ipc", 64, 0, 0, None).expect("cache create");
    let first = cache.alloc().expect("alloc");
    let handle = session.window().handle(first).unwrap_or(Handle(0));
    cache.free(first).expect("free");
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    let request = protocol::encode_request(&Request::Alloc { cache: cache.id() }, &mut buf).expect("encode").len();
    let reply = protocol::encode_reply(&Reply::Object(protocol::Object { handle, fresh: false }), &mut buf)
        .expect("encode")
        .len();
    let sizes = Sizes { request, reply };

    let echo = Echo::spawn(reply);
    let echo_pid = Pid::from_child(&echo.child);
    let mut group = c.benchmark_group(GROUP);
    for placement in PLACEMENTS {
        place(placement, server);
        group.bench_function(BenchmarkId::new("alloc", placement.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut held = Vec::with_capacity(256);
                let mut left = iters;
                while left > 0 {
                    let n = left.min(256);
                    let t = Instant::now();
                    for _ in 0..n {
                        held.push(cache.alloc().expect("alloc"));
                    }
                    total += t.elapsed();
                    for object in held.drain(..) {
                        cache.free(object).expect("free");
                    }
                    left -= n;
                }
                total
            })
        });
        place(placement, echo_pid);
        let message = vec![0x02u8; request];
        let mut back = [0u8; 1024];
        group.bench_function(BenchmarkId::new("pingpong", placement.name()), |b| {
            b.iter(|| echo.round_trip(&message, &mut back))
        });
    }
    group.finish();
    place(Placement::Free, server);
    place(Placement::Free, echo_pid);
    drop(echo);
    if cache.destroy().is_err() {
        panic!("bench-ipc: destroy failed");
    }
    sizes
}

//! A client's connection to the host `memserver`.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

use protocol::control::{CLIENT_CPU_OFFSET, SERVER_CPU_OFFSET, SERVER_POLLING};

use super::cpu::current_cpu_hint;
use super::mapping::Mapping;

/// Largest message either side sends, in bytes (the server's request and reply limit).
pub const MESSAGE_MAX: usize = 64 * 1024;
/// How long [`Connection::call`] spins for a reply from a server polling on another CPU
/// before it sleeps (a reply from a polling server takes a few microseconds; a cross-CPU
/// wake-up of a sleeping thread 50–100 µs on a 2 vCPU VM).
pub const REPLY_SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// Why [`Connection::connect`] failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered without memory: a refusal (unknown or duplicate name, bad version,
    /// too many connections). The reply bytes, for the protocol layer to decode.
    Refused(Vec<u8>),
    /// The socket or a mapping failed, or the server closed the connection without a reply.
    Io(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused(reply) => write!(f, "refused by the server ({} reply bytes)", reply.len()),
            ConnectError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

impl From<Errno> for ConnectError {
    fn from(e: Errno) -> Self {
        ConnectError::Io(e.into())
    }
}

/// An admitted client: its socket, window and control region.
#[derive(Debug)]
pub struct Connection {
    socket: OwnedFd,
    window: Mapping,
    control: Mapping,
}

impl Connection {
    /// Connects to the server at `socket_path`, sends `hello` (an encoded `Hello` naming this
    /// client task) and maps the window and control region that come with the reply.
    /// Returns the connection and the reply bytes.
    pub fn connect(socket_path: &Path, hello: &[u8]) -> Result<(Connection, Vec<u8>), ConnectError> {
        let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
        rustix::net::connect(&socket, &SocketAddrUnix::new(socket_path)?)?;
        // The server may refuse a connection (too many open) before it reads the Hello, and
        // close it at once: the send then fails, but the refusal is already queued for us.
        let sent = send(&socket, hello);
        let mut reply = vec![0u8; MESSAGE_MAX];
        let mut received = receive_with_fds(&socket, &mut reply);
        if received.as_ref().is_err_and(|e| e.raw_os_error() == Some(Errno::CONNRESET.raw_os_error())) {
            // Linux reports the reset once, ahead of the messages still queued: read again.
            received = receive_with_fds(&socket, &mut reply);
        }
        let (len, fds) = match (received, sent) {
            (Ok((len, fds)), _) if len > 0 || !fds.is_empty() => (len, fds),
            (_, Err(e)) => return Err(e.into()),
            (received, Ok(())) => received?,
        };
        reply.truncate(len);
        if len == 0 && fds.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "server closed the connection").into());
        }
        let Ok([window_fd, control_fd]) = <[OwnedFd; 2]>::try_from(fds) else {
            return Err(ConnectError::Refused(reply));
        };
        let window = Mapping::of_aligned(&window_fd, protocol::WINDOW_BASE_ALIGN)?;
        let control = Mapping::of(&control_fd)?;
        Ok((Connection { socket, window, control }, reply))
    }

    /// Sends one request and waits for its reply, written into `reply`; returns its length.
    /// A reply longer than `reply` is an `InvalidData` error.
    ///
    /// The control region's CPU hints say where each side runs: this thread's CPU goes into
    /// `client_cpu` (so the server polls for a while after serving a client on another CPU),
    /// and while `server_cpu` says the server polls on another CPU, the reply is awaited by
    /// spinning for up to [`REPLY_SPIN`] before sleeping. On one CPU nothing spins.
    pub fn call(&mut self, request: &[u8], reply: &mut [u8]) -> io::Result<usize> {
        let cpu = current_cpu_hint();
        self.control.store_u32(CLIENT_CPU_OFFSET, cpu);
        let server = self.control.load_u32(SERVER_CPU_OFFSET).unwrap_or(0);
        send(&self.socket, request)?;
        if server & SERVER_POLLING != 0 && server & !SERVER_POLLING != cpu && cpu != 0 {
            let started = std::time::Instant::now();
            loop {
                match rustix::net::recv(&self.socket, &mut *reply, RecvFlags::TRUNC | RecvFlags::DONTWAIT) {
                    Err(Errno::AGAIN | Errno::INTR) if started.elapsed() < REPLY_SPIN => core::hint::spin_loop(),
                    Err(Errno::AGAIN | Errno::INTR) => break,
                    received => return received_len(received, reply.len()),
                }
            }
        }
        self.receive(reply)
    }

    /// Closes the connection and waits (at most `limit`) until the server has closed its end,
    /// which it does once it has reclaimed everything this client held: a new connection
    /// under the same client name is then admitted without a race.
    pub fn close(self, limit: std::time::Duration) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(&self.socket, rustix::net::sockopt::Timeout::Recv, Some(limit))?;
        rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Write)?;
        let mut buf = [0u8; 64];
        loop {
            match rustix::net::recv(&self.socket, &mut buf, RecvFlags::empty()) {
                Ok((_, 0)) => return Ok(()),
                Ok(_) | Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends one request without waiting for a reply.
    pub fn send(&mut self, request: &[u8]) -> io::Result<()> {
        send(&self.socket, request)
    }

    /// Waits for the next reply; returns its length (0 when the server closed the connection).
    pub fn receive(&mut self, reply: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::net::recv(&self.socket, &mut *reply, RecvFlags::TRUNC) {
                Err(Errno::INTR) => continue,
                received => return received_len(received, reply.len()),
            }
        }
    }

    /// The window's first byte: object handle `h` is at `window_base() + h`. The server and
    /// other threads may write the window at any time; valid until the Connection is dropped.
    pub fn window_base(&self) -> *mut u8 {
        self.window.base()
    }

    /// The window's size in bytes.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// The window, for bounds-checked copies.
    pub fn window(&self) -> &Mapping {
        &self.window
    }

    /// The control region's first byte (magazines; layout in the protocol crate). Valid until
    /// the Connection is dropped.
    pub fn control_base(&self) -> *mut u8 {
        self.control.base()
    }

    /// The control region's size in bytes.
    pub fn control_len(&self) -> usize {
        self.control.len()
    }

    /// The control region, for bounds-checked copies.
    pub fn control(&self) -> &Mapping {
        &self.control
    }
}

/// The length of a reply `recv` (with `TRUNC`) took into a buffer of `buffer` bytes; a reply
/// longer than the buffer is an `InvalidData` error.
fn received_len(received: Result<(usize, usize), Errno>, buffer: usize) -> io::Result<usize> {
    match received {
        Ok((_, len)) if len > buffer => Err(io::Error::new(io::ErrorKind::InvalidData, "reply longer than the buffer")),
        Ok((_, len)) => Ok(len),
        Err(e) => Err(e.into()),
    }
}

fn send(socket: &OwnedFd, message: &[u8]) -> io::Result<()> {
    loop {
        match rustix::net::send(socket, message, SendFlags::NOSIGNAL) {
            Ok(n) if n == message.len() => return Ok(()),
            Ok(_) => return Err(io::Error::new(io::ErrorKind::WriteZero, "message cut short")),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and any fds attached to it (at most 2 are expected; extra ones are
/// closed, a message or fd list cut short is an error).
fn receive_with_fds(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let message = loop {
        match rustix::net::recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for item in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = item {
            fds.extend(rights);
        }
    }
    if message.flags.intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "reply or its fds cut short"));
    }
    Ok((message.bytes, fds))
}

//! One client connection and the two ways the runner sends on it.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use protocol::ClientId;
use rustix::io::Errno;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::identity::Credentials;
use crate::memory::ClientMemory;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, no message yet; closed if silent past `deadline`.
    AwaitingHello {
        /// When the connection is closed if it has not sent its `Hello`.
        deadline: Instant,
    },
    /// Admitted as this client.
    Admitted(ClientId),
}

/// An accepted connection.
pub struct Connection {
    /// The nonblocking `SOCK_SEQPACKET` socket.
    pub fd: OwnedFd,
    /// Distinguishes this connection from earlier ones in the same slot (in epoll tokens).
    pub generation: u32,
    /// Where it stands.
    pub state: State,
    /// The peer's credentials as the kernel recorded them at `connect()` (`None` if the kernel
    /// would not say: such a connection can be admitted as no client).
    pub peer: Option<Credentials>,
    /// Request batches served since its window was last audited after one.
    pub unaudited_batches: u32,
}

/// Sends one message without blocking and without `SIGPIPE`. `Errno::AGAIN` means the peer's
/// queue is full: it is not reading its replies.
#[inline]
pub fn send(fd: impl AsFd, message: &[u8]) -> Result<(), Errno> {
    let sent = rustix::net::send(fd, message, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?;
    if sent == message.len() { Ok(()) } else { Err(Errno::MSGSIZE) }
}

/// Sends the Hello reply with the window and control memfds attached (`SCM_RIGHTS`, in that
/// order).
pub fn send_with_fds(fd: impl AsFd, message: &[u8], memory: &ClientMemory) -> Result<(), Errno> {
    let fds = [memory.window.fd(), memory.control.fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    let iov = [IoSlice::new(message)];
    let sent = rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?;
    if sent == message.len() { Ok(()) } else { Err(Errno::MSGSIZE) }
}

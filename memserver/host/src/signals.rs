//! SIGINT and SIGTERM as readable events: blocked for the thread and read from a signalfd in
//! the same epoll set as the sockets, so shutdown happens between two requests, never inside one.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The termination signals, as a nonblocking signalfd.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks SIGINT and SIGTERM in this thread (call before starting any other thread) and
    /// opens a signalfd for them.
    pub fn termination() -> nix::Result<Signals> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// The pending signal's number, if one arrived.
    pub fn take(&self) -> Option<i32> {
        match self.fd.read_signal() {
            Ok(Some(info)) => i32::try_from(info.ssi_signo).ok(),
            _ => None,
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

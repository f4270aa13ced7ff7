//! The listening `SOCK_SEQPACKET` socket: binding with a clear diagnosis when the path is taken,
//! the socket file's permission bits set explicitly, and removing the file on shutdown.
//!
//! Connecting to a Unix socket needs write permission on its file, so the mode is a first fence
//! around the server (the [identity](crate::identity) check is the second, and the one that
//! decides). The file is created under a umask of `0o177` (so it is never more open than
//! `0o600`, not even between `bind` and `chmod`) and then given exactly `server.socket_mode`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// Why the socket could not be set up. The messages are what the operator reads.
#[derive(Debug)]
pub enum ListenError {
    /// A server is accepting connections on the path.
    LiveServer(PathBuf),
    /// Something that is not a socket is at the path; it is left alone.
    NotASocket(PathBuf),
    /// The OS refused (directory missing or not writable, path too long, ...).
    Os {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// What the OS said.
        error: io::Error,
    },
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenError::LiveServer(p) => write!(
                f,
                "socket path {} is taken: a live server is accepting connections on it \
                 (stop it, or pass --socket with another path)",
                p.display()
            ),
            ListenError::NotASocket(p) => {
                write!(f, "socket path {} exists and is not a socket; not replacing it", p.display())
            }
            ListenError::Os { path, doing, error } => {
                write!(f, "cannot {doing} socket {}: {error}", path.display())?;
                use io::ErrorKind::{NotFound, PermissionDenied, ReadOnlyFilesystem};
                if matches!(error.kind(), NotFound | PermissionDenied | ReadOnlyFilesystem) {
                    write!(f, " (is the directory there and writable?)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ListenError {}

/// A bound, listening socket. Dropping it removes the socket file, if it is still ours.
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    identity: (u64, u64),
    /// Whether a stale socket file (no server listening) was removed to bind.
    pub replaced_stale: bool,
}

fn os<'p>(path: &'p Path, doing: &'static str) -> impl FnOnce(Errno) -> ListenError + 'p {
    move |e| ListenError::Os { path: path.to_owned(), doing, error: e.into() }
}

fn seqpacket_socket(path: &Path) -> Result<OwnedFd, ListenError> {
    rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(os(path, "create"))
}

impl Listener {
    /// Binds and listens on `path`, with permission bits `mode`. A socket file nobody listens
    /// on (left by a killed server) is replaced and `replaced_stale` set; a live server or a
    /// non-socket file is an error.
    pub fn bind(path: &Path, mode: u32) -> Result<Listener, ListenError> {
        let addr = SocketAddrUnix::new(path).map_err(os(path, "name"))?;
        let fd = seqpacket_socket(path)?;
        let mut replaced_stale = false;
        // The runner is single-threaded while it binds (the log thread creates no files).
        let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let bound = rustix::net::bind(&fd, &addr);
        rustix::process::umask(umask);
        match bound {
            Ok(()) => {}
            Err(Errno::ADDRINUSE) => {
                let meta = std::fs::symlink_metadata(path).map_err(|error| ListenError::Os {
                    path: path.to_owned(),
                    doing: "inspect",
                    error,
                })?;
                if !meta.file_type().is_socket() {
                    return Err(ListenError::NotASocket(path.to_owned()));
                }
                let probe = seqpacket_socket(path)?;
                match rustix::net::connect(&probe, &addr) {
                    Ok(()) | Err(Errno::AGAIN) | Err(Errno::INPROGRESS) => {
                        return Err(ListenError::LiveServer(path.to_owned()));
                    }
                    Err(Errno::CONNREFUSED) => {}
                    Err(e) => return Err(os(path, "probe")(e)),
                }
                std::fs::remove_file(path).map_err(|error| ListenError::Os {
                    path: path.to_owned(),
                    doing: "remove stale",
                    error,
                })?;
                replaced_stale = true;
                let umask = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
                let bound = rustix::net::bind(&fd, &addr);
                rustix::process::umask(umask);
                bound.map_err(os(path, "bind"))?;
            }
            Err(e) => return Err(os(path, "bind")(e)),
        }
        let meta = std::fs::symlink_metadata(path).map_err(|error| ListenError::Os {
            path: path.to_owned(),
            doing: "inspect",
            error,
        })?;
        let listener = Listener { fd, path: path.to_owned(), identity: (meta.dev(), meta.ino()), replaced_stale };
        rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode & 0o777)).map_err(os(path, "set the mode of"))?;
        rustix::net::listen(&listener.fd, 256).map_err(os(path, "listen on"))?;
        Ok(listener)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Only remove the file if it is still the socket we bound (not one a successor made).
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

//! Who is on the other end of a connection, as the kernel says, and whether that may be the
//! client task it named in its `Hello`.
//!
//! The name in `Hello` is a claim; the proof is the peer's credentials, which the kernel
//! recorded when the peer called `connect()` (`SO_PEERCRED`: pid, effective uid and gid). Each
//! client task of `system.toml` has an [`Identity`] (its own keys, else `[server.identity]`,
//! else the uid that runs the server), and a connection is admitted as that task only if the
//! peer's credentials match every key it sets.
//!
//! `exe` is checked against `/proc/PID/exe`, and a pid alone would be racy (the peer may exit
//! and its pid be reused by another program before we read the link). So the runner asks the
//! socket for a pidfd of the peer (`SO_PEERPIDFD`, Linux 6.5), which names that very process,
//! reads the link, and then checks through the pidfd that the process has not exited: if it
//! still runs, the pid could not have been reused in between and the link was its own. A
//! kernel without `SO_PEERPIDFD`, or a peer that has exited, fails the check (closed, not open).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use memserver_system::Identity;
use rustix::event::{PollFd, PollFlags};
use rustix::net::UCred;

/// The credentials of a connection's peer, taken when it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The peer's pid when it connected.
    pub pid: i32,
    /// Its effective uid.
    pub uid: u32,
    /// Its effective gid.
    pub gid: u32,
}

impl Credentials {
    /// The peer credentials of a connected Unix socket (`SO_PEERCRED`).
    pub fn of(socket: impl AsFd) -> std::io::Result<Credentials> {
        let UCred { pid, uid, gid } = rustix::net::sockopt::socket_peercred(socket)?;
        Ok(Credentials { pid: pid.as_raw_nonzero().get(), uid: uid.as_raw(), gid: gid.as_raw() })
    }
}

/// Why a peer is not the client task it named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Another effective uid.
    Uid {
        /// What `system.toml` asks for.
        want: u32,
        /// What the kernel reports.
        got: u32,
    },
    /// Another effective gid.
    Gid {
        /// What `system.toml` asks for.
        want: u32,
        /// What the kernel reports.
        got: u32,
    },
    /// Another executable.
    Exe {
        /// What `system.toml` asks for.
        want: PathBuf,
        /// What `/proc/PID/exe` says.
        got: PathBuf,
    },
    /// The executable could not be established soundly (why).
    ExeUnknown(String),
    /// The kernel gave no credentials for the peer.
    NoCredentials,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Uid { want, got } => write!(f, "uid {got}, not {want}"),
            Mismatch::Gid { want, got } => write!(f, "gid {got}, not {want}"),
            Mismatch::Exe { want, got } => write!(f, "executable {}, not {}", got.display(), want.display()),
            Mismatch::ExeUnknown(why) => write!(f, "executable unknown ({why})"),
            Mismatch::NoCredentials => f.write_str("no credentials from the kernel"),
        }
    }
}

/// Checks `peer` (its credentials, and its socket for the executable) against `identity`;
/// `server_uid` is the uid an identity without `uid` stands for.
pub fn check(identity: &Identity, server_uid: u32, peer: &Credentials, socket: impl AsFd) -> Result<(), Mismatch> {
    let want = identity.uid.unwrap_or(server_uid);
    if peer.uid != want {
        return Err(Mismatch::Uid { want, got: peer.uid });
    }
    if let Some(want) = identity.gid
        && peer.gid != want
    {
        return Err(Mismatch::Gid { want, got: peer.gid });
    }
    if let Some(want) = &identity.exe {
        let got = executable(peer, socket).map_err(Mismatch::ExeUnknown)?;
        if &got != want {
            return Err(Mismatch::Exe { want: want.clone(), got });
        }
    }
    Ok(())
}

/// The executable of the process that connected `socket`, free of the pid-reuse race (see the
/// module documentation).
fn executable(peer: &Credentials, socket: impl AsFd) -> Result<PathBuf, String> {
    let pidfd: OwnedFd = nix::sys::socket::getsockopt(&socket.as_fd(), nix::sys::socket::sockopt::PeerPidfd)
        .map_err(|e| format!("no pidfd for the peer: {e}"))?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", peer.pid)).map_err(|e| format!("/proc/PID/exe: {e}"))?;
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let polled = rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 }))
        .map_err(|e| format!("polling the pidfd: {e}"))?;
    if polled > 0 {
        return Err("the peer exited".into());
    }
    Ok(exe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap()
    }

    fn me() -> Credentials {
        let (a, _b) = pair();
        Credentials::of(&a).unwrap()
    }

    #[test]
    fn credentials_are_the_kernels() {
        let c = me();
        assert_eq!(c.uid, rustix::process::geteuid().as_raw());
        assert_eq!(c.gid, rustix::process::getegid().as_raw());
        assert_eq!(c.pid, std::process::id() as i32);
    }

    #[test]
    fn uid_defaults_to_the_servers_and_every_set_key_must_match() {
        let (a, _b) = pair();
        let c = me();
        let none = Identity::default();
        assert_eq!(check(&none, c.uid, &c, &a), Ok(()));
        assert_eq!(check(&none, c.uid + 1, &c, &a), Err(Mismatch::Uid { want: c.uid + 1, got: c.uid }));
        let gid = Identity { gid: Some(c.gid + 7), ..Identity::default() };
        assert_eq!(check(&gid, c.uid, &c, &a), Err(Mismatch::Gid { want: c.gid + 7, got: c.gid }));
        let uid = Identity { uid: Some(c.uid), gid: Some(c.gid), exe: None };
        assert_eq!(check(&uid, c.uid + 1, &c, &a), Ok(()), "an explicit uid overrides the server's");
    }

    #[test]
    fn exe_is_read_through_the_peers_pidfd() {
        let (a, _b) = pair();
        let c = me();
        let mine = std::env::current_exe().unwrap();
        let same = Identity { exe: Some(mine.clone()), ..Identity::default() };
        assert_eq!(check(&same, c.uid, &c, &a), Ok(()));
        let other = Identity { exe: Some("/usr/bin/true".into()), ..Identity::default() };
        assert_eq!(check(&other, c.uid, &c, &a), Err(Mismatch::Exe { want: "/usr/bin/true".into(), got: mine }));
    }

    #[test]
    fn exe_of_a_peer_that_exited_is_refused() {
        // A child process connects to a socket of ours and exits; its credentials stay on the
        // socket, but its executable can no longer be established soundly.
        let path = std::env::temp_dir().join(format!("memserver-identity-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "identity::tests::helper_connects_and_exits", "--ignored", "--quiet"])
            .env("MEMSERVER_IDENTITY_SOCKET", &path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(status.success());
        let (conn, _) = listener.accept().unwrap();
        let c = Credentials::of(&conn).unwrap();
        assert_ne!(c.pid, std::process::id() as i32);
        let id = Identity { exe: Some(std::env::current_exe().unwrap()), ..Identity::default() };
        assert!(
            matches!(check(&id, c.uid, &c, &conn), Err(Mismatch::ExeUnknown(_))),
            "{:?}",
            check(&id, c.uid, &c, &conn)
        );
    }

    /// Run by `exe_of_a_peer_that_exited_is_refused` in a child process.
    #[test]
    #[ignore = "helper process for exe_of_a_peer_that_exited_is_refused"]
    fn helper_connects_and_exits() {
        let Some(path) = std::env::var_os("MEMSERVER_IDENTITY_SOCKET") else { return };
        let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
        std::mem::forget(stream);
    }
}

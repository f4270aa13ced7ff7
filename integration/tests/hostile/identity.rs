//! Attacks on identity (issue 11): a local process of another uid says `Hello` as every client
//! task of the system (the introspecting `memctl` included), and squats the name of a client
//! task before its owner starts.
//!
//! The attacker is this test binary re-run as a child that the kernel runs as uid/gid 65534
//! (`nobody`), so the server sees a real foreign credential through `SO_PEERCRED`. That needs
//! root; as any other user the attacks report themselves skipped. The suite opens the socket
//! file and its directory to every uid for these attacks, so what refuses the attacker is the
//! server's credential check, not the file mode (which is a second, separate fence: the
//! default socket mode is 0600).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use memclient::host::{ConnectError, Connection};
use protocol::{PROTOCOL_VERSION, Reply};

use crate::peer::{Failure, hello_bytes};
use crate::world::World;

/// An attack that cannot run here returns an error starting with this; the suite reports it
/// as skipped, with the reason.
pub const SKIPPED: &str = "skipped: ";

/// The uid and gid the attacker runs as.
const NOBODY: u32 = 65534;

/// Every client task of the suite's system description.
const EVERY_CLIENT: [&str; 8] =
    ["memctl", "victim-0", "victim-1", "victim-2", "hostile-0", "hostile-1", "hostile-2", "inspector"];

/// One `Hello` as `name`: `admitted`, `refused <error>` or `io <error>`.
fn try_hello(socket: &Path, name: &str) -> (String, Option<Connection>) {
    match Connection::connect(socket, &hello_bytes(name, PROTOCOL_VERSION)) {
        Ok((c, _)) => ("admitted".into(), Some(c)),
        Err(ConnectError::Refused(reply)) => match protocol::decode_reply(&reply) {
            Ok(Reply::Error(e)) => (format!("refused {e:?}"), None),
            other => (format!("refused with {other:?}"), None),
        },
        Err(ConnectError::Io(e)) => (format!("io {e}"), None),
    }
}

/// The child's side (`--worker MODE SOCKET NAMES`): `impersonate` tries every name in the
/// comma-separated list and prints one line each; `squat` connects as the one name, prints
/// the outcome and holds the connection until its stdin closes.
pub fn worker(mode: &str, socket: &Path, names: &str) -> Result<(), Failure> {
    match mode {
        "impersonate" => {
            for name in names.split(',') {
                let (outcome, _) = try_hello(socket, name);
                println!("{name} {outcome}");
            }
            Ok(())
        }
        "squat" => {
            let (outcome, held) = try_hello(socket, names);
            println!("{names} {outcome}");
            let _ = std::io::stdin().read(&mut [0u8; 1]);
            drop(held);
            Ok(())
        }
        other => Err(format!("unknown identity worker mode {other}")),
    }
}

/// Makes the socket reachable by every uid; restores the modes on drop.
struct OpenSocket {
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
    modes: (u32, u32),
}

impl OpenSocket {
    fn new(w: &World) -> Result<OpenSocket, Failure> {
        let socket = w.socket();
        let dir = socket.parent().ok_or("socket has no directory")?.to_owned();
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode()).map_err(|e| e.to_string());
        let modes = (mode(&dir)?, mode(&socket)?);
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        set(&dir, 0o755).map_err(|e| e.to_string())?;
        set(&socket, 0o666).map_err(|e| e.to_string())?;
        Ok(OpenSocket { dir, socket, modes })
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        let _ = set(&self.socket, self.modes.1);
        let _ = set(&self.dir, self.modes.0);
    }
}

/// This binary as a child running as uid/gid 65534.
fn spawn_as_nobody(w: &World, mode: &str, names: &str) -> Result<Child, Failure> {
    if !rustix::process::geteuid().is_root() {
        return Err(format!("{SKIPPED}needs root to run a child as uid {NOBODY}"));
    }
    Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--worker", mode])
        .arg(w.socket())
        .arg(names)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start a child as uid {NOBODY}: {e}"))
}

/// Attack (issue 11): a process of another uid says `Hello` as every client task, `memctl`
/// (introspection rights) included. Every one is refused with `PermissionDenied` by the
/// server, although the socket file lets that uid connect.
pub fn other_uid_impersonates_every_client(w: &mut World) -> Result<(), Failure> {
    let _open = OpenSocket::new(w)?;
    // Free the attackers' names first, so a refusal cannot come from "already connected".
    w.reclaim_attackers()?;
    let child = spawn_as_nobody(w, "impersonate", &EVERY_CLIENT.join(","))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut wrong = Vec::new();
    for name in EVERY_CLIENT {
        let line = text.lines().find(|l| l.split(' ').next() == Some(name));
        match line {
            Some(l) if l == format!("{name} refused PermissionDenied") => {}
            Some(l) => wrong.push(l.to_string()),
            None => wrong.push(format!("{name}: no outcome")),
        }
    }
    if !out.status.success() || !wrong.is_empty() {
        return Err(format!("uid {NOBODY} as every client: {} ({})", wrong.join("; "), out.status));
    }
    println!("    other_uid_impersonates_every_client: uid {NOBODY} refused as all {} clients", EVERY_CLIENT.len());
    Ok(())
}

/// Attack (issue 11): a process of another uid connects first under the name of a client task
/// that is not running yet (`hostile-2`) and holds on; the real owner then starts and is
/// admitted at once.
pub fn name_squatting(w: &mut World) -> Result<(), Failure> {
    let _open = OpenSocket::new(w)?;
    w.reclaim_attackers()?;
    let mut child = spawn_as_nobody(w, "squat", "hostile-2")?;
    let mut line = String::new();
    let out = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(out).read_line(&mut line).map_err(|e| e.to_string())?;
    let owner = w.attacker("hostile-2");
    drop(child.stdin.take());
    let _ = child.wait();
    let squat = line.trim().to_string();
    if squat != "hostile-2 refused PermissionDenied" {
        return Err(format!("the squatter got: {squat}"));
    }
    let owner = owner.map_err(|e| format!("the owner was kept out: {e}"))?;
    owner.close();
    Ok(())
}

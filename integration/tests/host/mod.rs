//! A `test-service` process (the real runner, a stand-in service) per test, with its own socket in its own directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use memclient::host::{ConnectError, Connection, MESSAGE_MAX};
use memserver_system::SystemText;
use rustix::process::{Pid, Signal};

pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    stderr: mpsc::Receiver<String>,
}

/// Two real clients, a memctl, a small hostile one; connections must say `Hello` within
/// `hello_timeout_ms`.
pub fn system_toml(hello_timeout_ms: u32) -> String {
    SystemText::new(16384)
        .server("hello_timeout_ms", hello_timeout_ms)
        .client("app", 4096, 8192)
        .introspector("memctl")
        .client("hostile-0", 16, 16)
        .into()
}

/// Starts the binary on `system` in a fresh directory; returns it once it listens.
pub fn start(system: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_in(dir.path(), system, &[]);
    let (child, stderr, listening) = server;
    assert!(listening, "server did not start: {}", drain(&stderr));
    let socket = dir.path().join("memserver.sock");
    Server { child, dir, socket, stderr }
}

/// Spawns the binary in `dir` with `system` written to `dir/system.toml`; waits until it
/// prints its listening line (true) or exits (false).
pub fn spawn_in(dir: &Path, system: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>, bool) {
    spawn_binary(env!("CARGO_BIN_EXE_test-service"), dir, system, extra)
}

/// Starts the real protocol server (no test service) on `system` in a fresh directory.
pub fn start_real(system: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (child, stderr, listening) = spawn_with(dir.path(), system, &[]);
    assert!(listening, "server did not start: {}", drain(&stderr));
    let socket = dir.path().join("memserver.sock");
    Server { child, dir, socket, stderr }
}

/// Spawns the real server in `dir` with `system` written to `dir/system.toml` and `args`.
pub fn spawn_with(dir: &Path, system: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>, bool) {
    spawn_binary(env!("CARGO_BIN_EXE_server-under-test"), dir, system, args)
}

/// Spawns `binary` in `dir` with `system` written to `dir/system.toml` and `args`.
fn spawn_binary(binary: &str, dir: &Path, system: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>, bool) {
    std::fs::write(dir.join("system.toml"), system).unwrap();
    let mut child = Command::new(binary)
        .current_dir(dir)
        .args(["--system", "system.toml"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stderr) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let listening = out.read_line(&mut line).is_ok() && line.contains("listening on");
    (child, stderr, listening)
}

pub fn drain(stderr: &mpsc::Receiver<String>) -> String {
    let mut all = String::new();
    while let Ok(line) = stderr.recv_timeout(Duration::from_millis(200)) {
        all.push_str(&line);
        all.push('\n');
    }
    all
}

impl Server {
    pub fn connect(&self, name: &str) -> Result<(Connection, String), ConnectError> {
        Connection::connect(&self.socket, format!("hello {name}").as_bytes())
            .map(|(c, reply)| (c, String::from_utf8(reply).unwrap()))
    }

    pub fn signal(&self, signal: Signal) {
        rustix::process::kill_process(Pid::from_raw(self.child.id() as i32).unwrap(), signal).unwrap();
    }

    /// SIGTERM, then the exit status and everything it printed on stderr.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal(Signal::TERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(10));
        (status, drain(&self.stderr))
    }

    pub fn stderr_so_far(&self) -> String {
        drain(&self.stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "process did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request, the reply as text.
pub fn call(connection: &mut Connection, request: &str) -> String {
    let mut reply = vec![0u8; MESSAGE_MAX];
    let len = connection.call(request.as_bytes(), &mut reply).unwrap();
    String::from_utf8_lossy(&reply[..len]).into_owned()
}

/// Polls `check` every 20 ms for up to `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Resident pages of this process (/proc/self/statm).
pub fn resident_pages_of_this_process() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resident KiB of the one mapping that starts at `base` (its `Rss:` line in /proc/self/smaps):
/// exact for that mapping, whatever other tests in this process do meanwhile.
pub fn mapping_resident_kib(base: *const u8) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let start = format!("{:x}-", base as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
    assert!(lines.next().is_some(), "mapping {start} not in smaps");
    let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
    rss.split_whitespace().nth(1).unwrap().parse().unwrap()
}

//! The processes the benchmarks measure against: a real `memserver` started from the release
//! build, and where each process runs (CPU affinity).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use memserver_system::SystemText;
use rustix::process::Pid;
use rustix::thread::CpuSet;

/// The bench's own system description: a client for the micro-benchmarks and the two load
/// generator clients.
pub fn system() -> String {
    SystemText::new(16384).client("bench", 4096, 8192).clients("loadgen", 2, 4096, 8192).into()
}

/// The binaries the benchmarks start: the server and the load generator, built by Cargo for
/// this bench in the same profile.
pub struct Binaries {
    /// `memserver`.
    pub server: PathBuf,
    /// `loadgen`.
    pub loadgen: PathBuf,
}

/// The binaries of this package (`memserver` and `loadgen`, rebuilt here).
pub fn binaries() -> Binaries {
    Binaries {
        server: PathBuf::from(env!("CARGO_BIN_EXE_server-under-test")),
        loadgen: PathBuf::from(env!("CARGO_BIN_EXE_loadgen-under-test")),
    }
}

/// A running memserver in its own directory; SIGKILLed on drop if still running.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `memserver` on [`system`] and waits until it listens.
    pub fn start(bin: &Binaries) -> Server {
        let binary = &bin.server;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("system.toml"), system()).expect("system.toml");
        let mut child = Command::new(binary)
            .current_dir(dir.path())
            .args(["--system", "system.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn memserver");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
        assert!(line.contains("listening on"), "memserver did not start: {line:?}");
        Server { child, dir }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("memserver.sock")
    }

    pub fn system(&self) -> PathBuf {
        self.dir.path().join("system.toml")
    }

    pub fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    /// SIGTERM, then wait.
    pub fn stop(mut self) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Both peers pinned to CPU 0: a wake-up never crosses CPUs.
    OneCpu,
    /// The scheduler's choice (on 2 CPUs the peers usually wake each other across CPUs).
    Free,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::OneCpu => "pinned",
            Placement::Free => "unpinned",
        }
    }
}

/// The CPUs this process may run on at start-up ("free" placement restores them).
fn original_cpus() -> CpuSet {
    static ORIGINAL: OnceLock<CpuSet> = OnceLock::new();
    *ORIGINAL.get_or_init(|| rustix::thread::sched_getaffinity(None).unwrap_or_else(|_| CpuSet::new()))
}

/// Applies `placement` to this process (the calling thread) and `peer`.
pub fn place(placement: Placement, peer: Pid) {
    let set = match placement {
        Placement::OneCpu => {
            let mut one = CpuSet::new();
            one.set(0);
            one
        }
        Placement::Free => original_cpus(),
    };
    let _ = rustix::thread::sched_setaffinity(None, &set);
    let _ = rustix::thread::sched_setaffinity(Some(peer), &set);
}

/// CPUs available at start-up.
pub fn cpus() -> usize {
    let set = original_cpus();
    (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).count().max(1)
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

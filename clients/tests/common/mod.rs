//! A real `memserver` process for the client tools' tests, in its own directory with its own
//! `system.toml`, killed on drop. The server binary is the workspace's `memserver`, found next
//! to the tool under test in the target directory (`cargo test --workspace`, i.e. `make test`,
//! builds both).

// Each test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A running server.
pub struct Server {
    child: Child,
    /// Its working directory (`system.toml`, `memserver.sock`).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `memserver` on `system`; `tool` is the binary under test (`env!("CARGO_BIN_EXE_…")`),
    /// beside which the server binary lies. Returns once the server listens.
    pub fn start(system: &str, tool: &str) -> Server {
        let binary = Path::new(tool).with_file_name("memserver");
        assert!(
            binary.exists(),
            "{} not built: run `cargo build -p memserver` (make test builds it)",
            binary.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("system.toml"), system).unwrap();
        let mut child = Command::new(binary)
            .current_dir(dir.path())
            .args(["--system", "system.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "memserver did not start: {line:?}");
        Server { child, dir }
    }

    /// The server's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("memserver.sock")
    }

    /// Runs `tool` with `args` in the server's directory.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool).current_dir(self.dir.path()).args(args).output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real `memserver` process for the client tools' tests, in its own directory with its own
//! `system.toml`, killed on drop (the `server-under-test` binary of this package).

// Each test file uses the part it needs.
#![allow(dead_code)]

use memserver_system::SystemText;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A system with one client task, `app` (16 MiB quota, 32 MiB window): the client APIs' tests.
pub fn one_app_system() -> String {
    SystemText::new(16384).client("app", 4096, 8192).into()
}

/// The number after ` key=` in `line` (decimal, or hexadecimal after `0x`).
pub fn field(line: &str, key: &str) -> u64 {
    let start = line.find(&format!(" {key}=")).unwrap_or_else(|| panic!("no {key} in {line:?}")) + key.len() + 2;
    let value = &line[start..];
    match value.strip_prefix("0x") {
        Some(hex) => {
            let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
            u64::from_str_radix(&digits, 16).unwrap()
        }
        None => value.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap(),
    }
}

/// A running server.
pub struct Server {
    child: Child,
    /// Its working directory (`system.toml`, `memserver.sock`).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server on `system`. Returns once it listens.
    pub fn start(system: &str) -> Server {
        let binary = env!("CARGO_BIN_EXE_server-under-test");
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

//! `memctl` against a real `memserver` process: slabinfo (all clients and one), stats --json,
//! and clear errors. The server binary is the workspace's `memserver`, found next to `memctl`
//! in the target directory (`cargo test --workspace`, i.e. `make test`, builds both).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use memclient::Cache;

const SYSTEM: &str = r#"
[server]
pool_pages = 4096
socket = "memserver.sock"
max_caches_per_client = 32
magazine_slots = 16

[[client]]
name = "app"
quota_pages = 1024
window_pages = 2048

[[client]]
name = "memctl"
quota_pages = 1
window_pages = 1
introspect = true
"#;

/// A memserver in its own directory, killed on drop.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let binary = Path::new(env!("CARGO_BIN_EXE_memctl")).with_file_name("memserver");
        assert!(binary.exists(), "{} not built: run `cargo build -p memserver`", binary.display());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("system.toml"), SYSTEM).unwrap();
        let mut child = Command::new(binary)
            .current_dir(dir.path())
            .args(["--system", "system.toml"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.contains("listening on"), "server did not start: {line:?}");
        Server { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("memserver.sock")
    }

    fn memctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_memctl")).current_dir(self.dir.path()).args(args).output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "memctl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn slabinfo_and_stats_show_a_running_client() {
    let server = Server::start();
    let app = memclient::host::connect(&server.socket(), "app").unwrap();
    let cache = Cache::create(&app, "dentry", 192, 0, 0, None).unwrap();
    let objects: Vec<_> = (0..100).map(|_| cache.alloc().unwrap()).collect();

    let all = stdout(&server.memctl(&["slabinfo"]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "slabinfo - version: 2.1");
    assert_eq!(
        lines[1],
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
    );
    let row = lines.iter().find(|l| l.starts_with("app/dentry ")).expect("app/dentry row");
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields.len(), 16, "{row}");
    assert!(fields[1].parse::<u32>().unwrap() >= 100, "active_objs {row}");
    assert!(lines.iter().any(|l| l.starts_with("memctl/kmalloc-8 ")));

    let one = stdout(&server.memctl(&["slabinfo", "--client", "app"]));
    assert!(one.lines().any(|l| l.starts_with("dentry ")), "{one}");
    assert!(!one.contains("memctl") && !one.contains("app/"), "{one}");

    let json: serde_json::Value = serde_json::from_str(&stdout(&server.memctl(&["stats", "--json"]))).unwrap();
    assert_eq!(json["pool"]["pages"], 4096);
    let app_stats = json["clients"].as_array().unwrap().iter().find(|c| c["name"] == "app").expect("app in stats");
    assert_eq!(app_stats["quota_pages"], 1024);
    assert!(app_stats["pages"].as_u64().unwrap() > 0);
    assert!(app_stats["live_objects"].as_u64().unwrap() >= 100);
    assert!(app_stats["magazines"]["alloc_hits"].as_u64().unwrap() >= 90, "{app_stats}");
    assert!(app_stats["ipc"]["refills"].as_u64().unwrap() >= 1);
    assert!(json["clients"].as_array().unwrap().iter().any(|c| c["name"] == "memctl"));

    let table = stdout(&server.memctl(&["stats"]));
    assert!(table.starts_with("pool: ") && table.contains(" app "), "{table}");
    for p in objects {
        cache.free(p).unwrap();
    }
}

#[test]
fn errors_are_clear_and_exit_nonzero() {
    let server = Server::start();
    let unknown = server.memctl(&["slabinfo", "--client", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no client \"nobody\""));
    let no_server = server.memctl(&["--socket", "/nonexistent/memserver.sock", "stats"]);
    assert!(!no_server.status.success());
    assert!(
        String::from_utf8_lossy(&no_server.stderr)
            .contains("cannot connect to the memserver at /nonexistent/memserver.sock")
    );
    // A client without introspection rights sees nothing of the others.
    let _memctl = memclient::host::connect(&server.socket(), "memctl").unwrap();
    let as_app = server.memctl(&["--name", "app", "stats", "--json"]);
    assert!(!as_app.status.success());
    let message = String::from_utf8_lossy(&as_app.stderr);
    assert!(message.contains("client \"app\" may not look at other clients"), "{message}");
}

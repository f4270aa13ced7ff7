//! (e) loadgen against the same server: `churn` with one client of one and of two threads and
//! with two clients, `mixed` with one and two clients, `kmalloc`, `lifetime` and `burst` (live
//! sets that swing past the magazines: an exchange every 64 objects) with one client; every
//! configuration (memserver with and without magazines, glibc, mimalloc) runs the same
//! operation sequence.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::server::{Binaries, Server};

/// The runs: (workload, clients, threads per client).
pub const RUNS: [(&str, usize, usize); 8] = [
    ("churn", 1, 1),
    ("churn", 1, 2),
    ("churn", 2, 1),
    ("mixed", 1, 1),
    ("mixed", 2, 1),
    ("kmalloc", 1, 1),
    ("lifetime", 1, 1),
    ("burst", 1, 1),
];

/// One loadgen run and its JSON report (`Null` if it failed).
pub struct Run {
    pub workload: &'static str,
    pub clients: usize,
    pub threads: usize,
    pub report: Value,
}

impl Run {
    /// The all-clients total of configuration `name` (`memserver`, `glibc` …).
    pub fn total(&self, name: &str) -> &Value {
        self.report["configs"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map_or(&Value::Null, |c| &c["total"])
    }

    fn key(&self) -> String {
        format!("{}-{}x{}", self.workload, self.clients, self.threads)
    }
}

/// The run of `workload` with `clients` clients of `threads` threads, if it was made.
pub fn find<'a>(runs: &'a [Run], workload: &str, clients: usize, threads: usize) -> Option<&'a Run> {
    runs.iter().find(|r| r.workload == workload && r.clients == clients && r.threads == threads)
}

/// Every run of [`RUNS`].
pub fn run_all(bin: &Binaries, server: &Server, out: &Path, quick: bool) -> Vec<Run> {
    RUNS.iter()
        .map(|&(workload, clients, threads)| Run {
            workload,
            clients,
            threads,
            report: one(bin, server, out, workload, clients, threads, quick).unwrap_or(Value::Null),
        })
        .collect()
}

fn one(
    bin: &Binaries,
    server: &Server,
    out: &Path,
    workload: &str,
    clients: usize,
    threads: usize,
    quick: bool,
) -> Option<Value> {
    let json = out.join(format!("loadgen-{workload}-{clients}x{threads}.json"));
    let mut cmd = Command::new(&bin.loadgen);
    cmd.arg("--system").arg(server.system()).arg("--socket").arg(server.socket());
    cmd.args(["--workload", workload, "--clients", &clients.to_string(), "--threads", &threads.to_string()]);
    cmd.arg("--json").arg(&json);
    if quick {
        cmd.args(["--ops", "500"])
    } else {
        cmd.args(["--seconds", "2"])
    };
    if workload == "mixed" && clients == 2 {
        cmd.arg("--plot").arg(out.join("latency-mixed-2.svg"));
    }
    eprintln!("bench: loadgen --workload {workload} --clients {clients} --threads {threads}");
    let output = cmd.output().ok()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        eprintln!("bench: loadgen {workload} x{clients}x{threads} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_str(&std::fs::read_to_string(json).ok()?).ok()
}

/// The runs for `summary.json`.
pub fn json(runs: &[Run]) -> Value {
    let mut map = serde_json::Map::new();
    for run in runs {
        let row = |name: &str| {
            let t = run.total(name);
            json!({ "ops_per_sec": t["ops_per_sec"], "mean_ns": t["mean_ns"], "p50_ns": t["p50_ns"],
                "p99_ns": t["p99_ns"], "p999_ns": t["p999_ns"], "hit_rate": t["hit_rate"],
                "cache_hit_rate": t["cache_hit_rate"], "kmalloc_hit_rate": t["kmalloc_hit_rate"],
                "ipc_per_1000_ops": t["ipc_per_1000_ops"] })
        };
        map.insert(
            run.key(),
            json!({ "workload": run.workload, "clients": run.clients, "threads": run.threads,
                "ok": run.report["ok"], "memserver": row("memserver"),
                "memserver-no-magazines": row("memserver-no-magazines"), "glibc": row("glibc"),
                "mimalloc": row("mimalloc") }),
        );
    }
    Value::Object(map)
}

/// The loadgen table.
pub fn table(runs: &[Run], quick: bool) -> String {
    let mut t = String::new();
    let budget = if quick { "500 operations" } else { "2 s" };
    let _ = writeln!(t, "loadgen ({budget} per configuration; ops/s of all clients and threads together):\n");
    let _ = writeln!(
        t,
        "| workload | clients | threads | memserver | no magazines | glibc | mimalloc | cache hit | kmalloc hit | IPC/1k ops |"
    );
    let _ = writeln!(t, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for run in runs {
        let ops =
            |name: &str| run.total(name)["ops_per_sec"].as_f64().map_or("-".into(), |v| format!("{:.2} M", v / 1e6));
        let m = run.total("memserver");
        let rate = |key: &str| m[key].as_f64().map_or("-".into(), |h| format!("{:.2} %", h * 100.0));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.workload,
            run.clients,
            run.threads,
            ops("memserver"),
            ops("memserver-no-magazines"),
            ops("glibc"),
            ops("mimalloc"),
            rate("cache_hit_rate"),
            rate("kmalloc_hit_rate"),
            m["ipc_per_1000_ops"].as_f64().map_or("-".into(), |c| format!("{c:.1}")),
        );
    }
    t
}

//! After the micro-benchmarks: loadgen `churn` and `mixed` with 1 and 2 clients against the
//! same server, then the ratio table (goals next to the figures; nothing is asserted) and
//! `summary.json`.
//!
//! Every ratio is memserver's time divided by the baseline's, both measured in this run:
//! * `fast_path_vs_mimalloc`, `fast_path_vs_glibc`: the geometric mean over the sizes of the
//!   alloc+free pair medians (per size under `sizes`);
//! * `kmalloc_fast_path_vs_mimalloc`: the same over the `kmalloc`+`kfree` pair medians
//!   against mimalloc's `malloc`+`free` of the same sizes;
//! * `ipc_vs_pingpong`: the `Alloc` round trip over the bare ping-pong, both pinned to one CPU
//!   (`ipc_vs_pingpong_unpinned`: placed by the scheduler);
//! * `loadgen_mean_vs_fast_path`: loadgen `churn` (1 client, 64 B) mean sampled time per
//!   operation, times two (an alloc+free pair), over the 64 B fast-path pair;
//! * `magazine_hit_rate`: loadgen `churn`, 1 client; `kmalloc_hit_rate`: loadgen `kmalloc`,
//!   1 client (and per run in the table, beside the cache hit rate).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fast_path::{self, SIZES};
use crate::ipc::{self, PLACEMENTS, Sizes};
use crate::server::{self, Server};

/// The loadgen runs: (workload, clients).
const RUNS: [(&str, usize); 5] = [("churn", 1), ("churn", 2), ("mixed", 1), ("mixed", 2), ("kmalloc", 1)];

/// Where the results go: `$CARGO_TARGET_DIR/bench`, else `<workspace>/target/bench`.
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench")
}

/// The median of one criterion benchmark, in ns, if it ran.
fn median(out: &Path, group: &str, function: &str, parameter: &str) -> Option<f64> {
    let path = out.join("criterion").join(group).join(function).join(parameter).join("new/estimates.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn geomean(values: &[Option<f64>]) -> Option<f64> {
    let v: Option<Vec<f64>> = values.iter().copied().collect();
    let v = v?;
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// One loadgen run; its JSON report.
fn loadgen(
    bin: &crate::server::Binaries,
    server: &Server,
    out: &Path,
    workload: &str,
    clients: usize,
    quick: bool,
) -> Option<Value> {
    let json = out.join(format!("loadgen-{workload}-{clients}.json"));
    let mut cmd = Command::new(&bin.loadgen);
    cmd.arg("--system").arg(server.system()).arg("--socket").arg(server.socket());
    cmd.args(["--workload", workload, "--clients", &clients.to_string(), "--json"]).arg(&json);
    if quick {
        cmd.args(["--ops", "500"])
    } else {
        cmd.args(["--seconds", "2"])
    };
    if workload == "mixed" && clients == 2 {
        cmd.arg("--plot").arg(out.join("latency-mixed-2.svg"));
    }
    eprintln!("bench: loadgen --workload {workload} --clients {clients}");
    let output = cmd.output().ok()?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        eprintln!("bench: loadgen {workload} x{clients} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    serde_json::from_str(&std::fs::read_to_string(json).ok()?).ok()
}

fn config<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["configs"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .map_or(&Value::Null, |c| &c["total"])
}

/// A table row: figure, baseline, ratio, goal, met.
struct Line {
    what: String,
    ours: String,
    base: String,
    ratio: Option<f64>,
    /// The goal as text and whether it is met.
    goal: Option<(String, bool)>,
}

fn ns(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} µs", v / 1000.0),
        Some(v) => format!("{v:.1} ns"),
        None => "-".into(),
    }
}

fn goal_line(what: String, ours: Option<f64>, base: Option<f64>, goal: Option<f64>) -> Line {
    let r = ratio(ours, base);
    let goal = goal.map(|g| (format!("≤ {g}×"), r.is_some_and(|r| r <= g)));
    Line { what, ours: ns(ours), base: ns(base), ratio: r, goal }
}

pub fn run(bin: &crate::server::Binaries, server: &Server, out: &Path, sizes: Sizes, quick: bool) -> Value {
    let mut lines = Vec::new();
    let mut per_size = serde_json::Map::new();
    let (mut vs_mi, mut vs_glibc) = (Vec::new(), Vec::new());
    let (mut locked_vs_mi, mut locked_vs_glibc) = (Vec::new(), Vec::new());
    let mut kmalloc_vs_mi = Vec::new();
    for size in SIZES {
        let p = size.to_string();
        // The headline fast path is a CacheGuard's (the lock taken once for a run of
        // operations); `Cache::alloc`/`free` taking the lock per call is reported beside it.
        let ours = median(out, fast_path::GROUP, "memserver-guard", &p);
        let locked = median(out, fast_path::GROUP, "memserver", &p);
        let glibc = median(out, fast_path::GROUP, "glibc", &p);
        let mi = median(out, fast_path::GROUP, "mimalloc", &p);
        let kmalloc = median(out, fast_path::GROUP, "memserver-kmalloc", &p);
        kmalloc_vs_mi.push(ratio(kmalloc, mi));
        vs_mi.push(ratio(ours, mi));
        vs_glibc.push(ratio(ours, glibc));
        locked_vs_mi.push(ratio(locked, mi));
        locked_vs_glibc.push(ratio(locked, glibc));
        per_size.insert(
            p,
            json!({ "memserver_ns": ours, "memserver_locked_ns": locked, "glibc_ns": glibc, "mimalloc_ns": mi,
            "vs_mimalloc": ratio(ours, mi), "vs_glibc": ratio(ours, glibc),
            "locked_vs_mimalloc": ratio(locked, mi), "locked_vs_glibc": ratio(locked, glibc),
            "kmalloc_ns": kmalloc, "kmalloc_vs_mimalloc": ratio(kmalloc, mi) }),
        );
        lines.push(goal_line(format!("fast path pair {size} B vs mimalloc"), ours, mi, Some(1.0)));
        lines.push(goal_line(format!("fast path pair {size} B vs glibc"), ours, glibc, Some(0.5)));
        lines.push(goal_line(format!("locked per call, {size} B vs mimalloc"), locked, mi, None));
        lines.push(goal_line(format!("kmalloc+kfree pair {size} B vs mimalloc malloc"), kmalloc, mi, None));
    }
    let mut ipc_json = json!({ "request_bytes": sizes.request, "reply_bytes": sizes.reply });
    let mut ipc_ratio = None;
    for placement in PLACEMENTS {
        let alloc = median(out, ipc::GROUP, "alloc", placement.name());
        let ping = median(out, ipc::GROUP, "pingpong", placement.name());
        ipc_json[format!("alloc_{}_ns", placement.name())] = json!(alloc);
        ipc_json[format!("pingpong_{}_ns", placement.name())] = json!(ping);
        ipc_json[format!("ratio_{}", placement.name())] = json!(ratio(alloc, ping));
        if placement == server::Placement::OneCpu {
            ipc_ratio = ratio(alloc, ping);
        }
        let goal = (placement == server::Placement::OneCpu).then_some(1.25);
        lines.push(goal_line(format!("Alloc IPC vs ping-pong ({})", placement.name()), alloc, ping, goal));
    }

    let mut loadgen_json = serde_json::Map::new();
    let mut runs = Vec::new();
    for (workload, clients) in RUNS {
        let report = loadgen(bin, server, out, workload, clients, quick).unwrap_or(Value::Null);
        let row = |name: &str| {
            let t = config(&report, name);
            json!({ "ops_per_sec": t["ops_per_sec"], "mean_ns": t["mean_ns"], "p50_ns": t["p50_ns"],
                "p99_ns": t["p99_ns"], "p999_ns": t["p999_ns"], "hit_rate": t["hit_rate"],
                "cache_hit_rate": t["cache_hit_rate"], "kmalloc_hit_rate": t["kmalloc_hit_rate"],
                "ipc_per_1000_ops": t["ipc_per_1000_ops"] })
        };
        loadgen_json.insert(
            format!("{workload}-{clients}"),
            json!({
            "ok": report["ok"], "memserver": row("memserver"), "memserver-no-magazines": row("memserver-no-magazines"),
            "glibc": row("glibc"), "mimalloc": row("mimalloc") }),
        );
        runs.push((workload, clients, report));
    }
    let churn1 = &runs[0].2;
    let hit_rate = config(churn1, "memserver")["hit_rate"].as_f64();
    let loadgen_mean = config(churn1, "memserver")["mean_ns"].as_f64().map(|m| 2.0 * m);
    let fast64 = median(out, fast_path::GROUP, "memserver", "64");
    let loadgen_vs_fast = ratio(loadgen_mean, fast64);
    lines.push(goal_line("loadgen churn mean pair vs fast path (64 B)".into(), loadgen_mean, fast64, Some(3.0)));
    lines.push(Line {
        what: "magazine hit rate, loadgen churn 1 client".into(),
        ours: hit_rate.map_or("-".into(), |h| format!("{:.2} %", h * 100.0)),
        base: String::new(),
        ratio: None,
        goal: Some(("≥ 98 %".into(), hit_rate.is_some_and(|h| h >= 0.98))),
    });

    let kmalloc_hit_rate =
        runs.iter().find(|r| r.0 == "kmalloc").and_then(|r| config(&r.2, "memserver")["kmalloc_hit_rate"].as_f64());
    lines.push(Line {
        what: "kmalloc hit rate, loadgen kmalloc 1 client".into(),
        ours: kmalloc_hit_rate.map_or("-".into(), |h| format!("{:.2} %", h * 100.0)),
        base: String::new(),
        ratio: None,
        goal: None,
    });

    let summary = json!({
        "date": date(), "machine": format!("{} CPUs, {}", server::cpus(), server::cpu_model()),
        "command": "make bench",
        "fast_path_vs_mimalloc": geomean(&vs_mi), "fast_path_vs_glibc": geomean(&vs_glibc),
        "fast_path_locked_vs_mimalloc": geomean(&locked_vs_mi), "fast_path_locked_vs_glibc": geomean(&locked_vs_glibc),
        "kmalloc_fast_path_vs_mimalloc": geomean(&kmalloc_vs_mi), "kmalloc_hit_rate": kmalloc_hit_rate,
        "ipc_vs_pingpong": ipc_ratio, "ipc_vs_pingpong_unpinned": ipc_json["ratio_unpinned"].clone(),
        "loadgen_mean_vs_fast_path": loadgen_vs_fast, "magazine_hit_rate": hit_rate,
        "sizes": per_size, "ipc": ipc_json, "loadgen": loadgen_json,
        "goals": { "fast_path_vs_mimalloc": 1.0, "fast_path_vs_glibc": 0.5, "ipc_vs_pingpong": 1.25,
            "magazine_hit_rate": 0.98, "loadgen_mean_vs_fast_path": 3.0 },
    });
    println!("\n{}", table(&lines, &runs, &summary, quick));
    summary
}

fn table(lines: &[Line], runs: &[(&str, usize, Value)], summary: &Value, quick: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "memserver make bench: {}, {}",
        summary["date"].as_str().unwrap_or(""),
        summary["machine"].as_str().unwrap_or("")
    );
    let _ = writeln!(t, "(ratio = memserver / baseline, both measured in this run; medians of criterion samples)\n");
    let _ = writeln!(t, "| what | memserver | baseline | ratio | goal | met |");
    let _ = writeln!(t, "| --- | ---: | ---: | ---: | --- | --- |");
    for l in lines {
        let ratio = l.ratio.map_or("-".into(), |r| format!("{r:.2}×"));
        let (goal, met) = match &l.goal {
            Some((goal, true)) => (goal.as_str(), "yes"),
            Some((goal, false)) => (goal.as_str(), "**no**"),
            None => ("-", ""),
        };
        let _ = writeln!(t, "| {} | {} | {} | {ratio} | {goal} | {met} |", l.what, l.ours, l.base);
    }
    let budget = if quick { "500 operations" } else { "2 s" };
    let _ = writeln!(t, "\nloadgen ({budget} per configuration; ops/s of all clients together):\n");
    let _ = writeln!(
        t,
        "| workload | clients | memserver | no magazines | glibc | mimalloc | cache hit | kmalloc hit | IPC/1k ops |"
    );
    let _ = writeln!(t, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (workload, clients, report) in runs {
        let ops = |name: &str| {
            config(report, name)["ops_per_sec"].as_f64().map_or("-".into(), |v| format!("{:.2} M", v / 1e6))
        };
        let m = config(report, "memserver");
        let rate = |key: &str| m[key].as_f64().map_or("-".into(), |h| format!("{:.2} %", h * 100.0));
        let _ = writeln!(
            t,
            "| {workload} | {clients} | {} | {} | {} | {} | {} | {} | {} |",
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

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

//! After the micro-benchmarks: the loadgen runs ([`crate::loadgen`]), the server's cost in
//! instructions ([`crate::instructions`]) and memory ([`crate::memory`]), the scale table of
//! the last `make scale` (`scale.json`, if any), then the table of every figure with its goal
//! (nothing is asserted), `summary.json` and the plot.
//!
//! Every ratio is memserver's figure divided by the baseline's, both measured in this run:
//! * times (lower is better): `fast_path_vs_mimalloc`, `fast_path_vs_glibc` (geometric mean
//!   over the sizes of the alloc+free pair medians through a `CacheGuard`; per size under
//!   `sizes`), `kmalloc_fast_path_vs_mimalloc` (the same over the `kmalloc`+`kfree` pair
//!   medians against mimalloc's `malloc`+`free` of the same sizes), `plain_vs_fast_path` (`Cache::alloc`/`free`, which lock per call, over the
//!   guard's pair), `ipc_vs_pingpong` (the `Alloc` round trip over a bare ping-pong, both pinned
//!   to one CPU; `_unpinned`: placed by the scheduler), `loadgen_mean_vs_sampled_pair`
//!   (loadgen `churn`'s mean sampled time per operation times two, over the 64 B
//!   `Cache::alloc`+`free` pair timed alone by the same sampler, the goal's figure;
//!   `mimalloc_loadgen_mean_vs_sampled_pair` the same for mimalloc), `loadgen_mean_vs_fast_path`
//!   (the loadgen mean pair over the 64 B guard pair's loop) and `loadgen_mean_vs_locked_pair`
//!   (over the 64 B `Cache::alloc`+`free` pair's loop);
//! * rates (higher is better): `loadgen_churn_vs_mimalloc`, `loadgen_mixed_vs_mimalloc` (ops/s
//!   of one client, one thread), `threads2_vs_threads1` (churn, one client with 2 threads over
//!   1; mimalloc's beside it as `mimalloc_threads2_vs_threads1`);
//! * absolute: `hardened_check_ns_per_pair` (the guard pair minus the same pair without the
//!   hardened free's checks and canary, both measured in this run, mean over the sizes; per
//!   size `hardened_check_ns` under `sizes`), `magazine_hit_rate` (churn, 1 client),
//!   `kmalloc_hit_rate` (loadgen `kmalloc`,
//!   1 client; per run in the table, beside the cache hit rate), `instructions_per_request`,
//!   `instructions_per_exchanged_object`, `server_bytes_per_pool_frame` (and
//!   `server_bytes_per_pool_frame_tables`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::fast_path::{self, SIZES};
use crate::instructions::Instructions;
use crate::ipc::{self, PLACEMENTS, Sizes};
use crate::loadgen::{self, Run};
use crate::memory::{self, Memory};
use crate::server;

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

/// A goal: the figure (a ratio, or absolute) at most or at least this.
#[derive(Clone, Copy, Debug)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtMost(g) => v <= g,
            Goal::AtLeast(g) => v >= g,
        }
    }

    fn text(self, unit: &str) -> String {
        match self {
            Goal::AtMost(g) => format!("≤ {g}{unit}"),
            Goal::AtLeast(g) => format!("≥ {g}{unit}"),
        }
    }
}

/// A table row: what, memserver's figure, the baseline's, the figure the goal is about, the
/// goal and whether it is met.
struct Line {
    what: String,
    ours: String,
    base: String,
    /// The judged figure as text (a ratio "1.23×", or absolute).
    figure: String,
    goal: Option<(String, Option<bool>)>,
}

fn ns(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} µs", v / 1000.0),
        Some(v) => format!("{v:.1} ns"),
        None => "-".into(),
    }
}

fn ops(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2} M/s", v / 1e6))
}

/// A row judging `ours / base`.
fn ratio_line(what: String, ours: String, base: String, r: Option<f64>, goal: Option<Goal>) -> Line {
    let figure = r.map_or("-".into(), |r| format!("{r:.2}×"));
    let goal = goal.map(|g| (g.text("×"), r.map(|r| g.met(r))));
    Line { what, ours, base, figure, goal }
}

/// A row judging an absolute figure.
fn absolute_line(what: &str, value: Option<f64>, shown: String, goal: Goal, unit: &str) -> Line {
    let goal = Some((goal.text(unit), value.map(|v| goal.met(v))));
    Line { what: what.into(), ours: shown.clone(), base: String::new(), figure: shown, goal }
}

pub fn run(
    bin: &server::Binaries,
    server: &server::Server,
    out: &Path,
    sizes: Sizes,
    sampled: fast_path::Sampled,
    instructions: &Instructions,
    quick: bool,
) -> Value {
    let mut lines = Vec::new();
    let mut per_size = serde_json::Map::new();
    let (mut vs_mi, mut vs_glibc, mut plain_vs_fast) = (Vec::new(), Vec::new(), Vec::new());
    let (mut locked_vs_mi, mut locked_vs_glibc) = (Vec::new(), Vec::new());
    let mut kmalloc_vs_mi = Vec::new();
    let mut check_costs = Vec::new();
    for size in SIZES {
        let p = size.to_string();
        // The fast path is a CacheGuard's (the lock taken once for a run of operations);
        // `Cache::alloc`/`free` taking the lock per call is the plain API.
        let ours = median(out, fast_path::GROUP, "memserver-guard", &p);
        let locked = median(out, fast_path::GROUP, "memserver", &p);
        let glibc = median(out, fast_path::GROUP, "glibc", &p);
        let mi = median(out, fast_path::GROUP, "mimalloc", &p);
        let kmalloc = median(out, fast_path::GROUP, "memserver-kmalloc", &p);
        let unchecked = median(out, fast_path::GROUP, fast_path::UNCHECKED, &p);
        let check_cost = ours.zip(unchecked).map(|(checked, unchecked)| checked - unchecked);
        check_costs.push(check_cost);
        kmalloc_vs_mi.push(ratio(kmalloc, mi));
        vs_mi.push(ratio(ours, mi));
        vs_glibc.push(ratio(ours, glibc));
        locked_vs_mi.push(ratio(locked, mi));
        locked_vs_glibc.push(ratio(locked, glibc));
        plain_vs_fast.push(ratio(locked, ours));
        per_size.insert(
            p,
            json!({ "memserver_ns": ours, "memserver_locked_ns": locked, "glibc_ns": glibc, "mimalloc_ns": mi,
            "vs_mimalloc": ratio(ours, mi), "vs_glibc": ratio(ours, glibc), "plain_vs_fast_path": ratio(locked, ours),
            "locked_vs_mimalloc": ratio(locked, mi), "locked_vs_glibc": ratio(locked, glibc),
            "kmalloc_ns": kmalloc, "kmalloc_vs_mimalloc": ratio(kmalloc, mi),
            "unchecked_ns": unchecked, "hardened_check_ns": check_cost }),
        );
        let pair = format!("{size} B");
        lines.push(ratio_line(
            format!("fast path pair {pair} vs mimalloc"),
            ns(ours),
            ns(mi),
            ratio(ours, mi),
            Some(Goal::AtMost(1.0)),
        ));
        lines.push(ratio_line(
            format!("fast path pair {pair} vs glibc"),
            ns(ours),
            ns(glibc),
            ratio(ours, glibc),
            Some(Goal::AtMost(0.5)),
        ));
        lines.push(ratio_line(
            format!("Cache::alloc+free (locked per call) {pair} vs fast path"),
            ns(locked),
            ns(ours),
            ratio(locked, ours),
            Some(Goal::AtMost(1.5)),
        ));
        lines.push(ratio_line(
            format!("kmalloc+kfree pair {pair} vs mimalloc malloc+free"),
            ns(kmalloc),
            ns(mi),
            ratio(kmalloc, mi),
            Some(Goal::AtMost(1.0)),
        ));
    }
    // The hardened free's checks: the guard pair minus the same pair without them, both
    // measured in this run, averaged over the sizes (noise can make one size negative).
    let check_costs: Option<Vec<f64>> = check_costs.into_iter().collect();
    let hardened_check = check_costs.filter(|c| !c.is_empty()).map(|c| c.iter().sum::<f64>() / c.len() as f64);
    lines.push(absolute_line(
        "hardened free check cost per pair (guard pair − unchecked pair, mean over sizes)",
        hardened_check,
        hardened_check.map_or("-".into(), |c| format!("{c:.2} ns")),
        Goal::AtMost(1.0),
        " ns",
    ));
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
        let goal = (placement == server::Placement::OneCpu).then_some(Goal::AtMost(1.25));
        let what = format!("Alloc IPC vs ping-pong ({})", placement.name());
        lines.push(ratio_line(what, ns(alloc), ns(ping), ratio(alloc, ping), goal));
    }

    let runs = loadgen::run_all(bin, server, out, quick);
    let loadgen_json = loadgen::json(&runs);
    let churn = loadgen::find(&runs, "churn", 1, 1);
    let churn2 = loadgen::find(&runs, "churn", 1, 2);
    let mixed = loadgen::find(&runs, "mixed", 1, 1);
    let hit_rate = churn.and_then(|r| r.total("memserver")["hit_rate"].as_f64());
    let mean_pair = |config: &str| churn.and_then(|r| r.total(config)["mean_ns"].as_f64()).map(|m| 2.0 * m);
    let loadgen_pair = mean_pair("memserver");
    let mimalloc_pair = mean_pair("mimalloc");
    let size = fast_path::SAMPLED_SIZE.to_string();
    let fast64 = median(out, fast_path::GROUP, "memserver-guard", &size);
    let locked64 = median(out, fast_path::GROUP, "memserver", &size);
    // loadgen times one operation in 32 alone, between two clock reads; the criterion pairs
    // are loops, whose operations overlap. The goal compares like with like: the same pair
    // timed alone by the same code, with nothing of the workload in between.
    lines.push(ratio_line(
        format!("loadgen churn mean pair vs the same pair timed alone as loadgen times it ({size} B)"),
        ns(loadgen_pair),
        ns(sampled.memserver_ns),
        ratio(loadgen_pair, sampled.memserver_ns),
        Some(Goal::AtMost(3.0)),
    ));
    lines.push(ratio_line(
        "  the same for mimalloc".into(),
        ns(mimalloc_pair),
        ns(sampled.mimalloc_ns),
        ratio(mimalloc_pair, sampled.mimalloc_ns),
        None,
    ));
    lines.push(ratio_line(
        format!("loadgen churn mean pair vs fast path pair in a loop ({size} B)"),
        ns(loadgen_pair),
        ns(fast64),
        ratio(loadgen_pair, fast64),
        None,
    ));
    lines.push(ratio_line(
        format!("loadgen churn mean pair vs Cache::alloc+free pair in a loop (locked per call, {size} B)"),
        ns(loadgen_pair),
        ns(locked64),
        ratio(loadgen_pair, locked64),
        None,
    ));
    lines.push(absolute_line(
        "magazine hit rate, loadgen churn 1 client",
        hit_rate.map(|h| h * 100.0),
        hit_rate.map_or("-".into(), |h| format!("{:.2} %", h * 100.0)),
        Goal::AtLeast(98.0),
        " %",
    ));
    let rate = |run: Option<&Run>, config: &str| run.and_then(|r| r.total(config)["ops_per_sec"].as_f64());
    let churn_vs_mi = ratio(rate(churn, "memserver"), rate(churn, "mimalloc"));
    let mixed_vs_mi = ratio(rate(mixed, "memserver"), rate(mixed, "mimalloc"));
    for (what, run, r) in [("churn", churn, churn_vs_mi), ("mixed", mixed, mixed_vs_mi)] {
        lines.push(ratio_line(
            format!("loadgen {what} ops/s vs mimalloc (1 client, 1 thread)"),
            ops(rate(run, "memserver")),
            ops(rate(run, "mimalloc")),
            r,
            Some(Goal::AtLeast(1.0)),
        ));
    }
    // Workloads without a goal of issue 14, shown beside them: large kmallocs (parked for
    // reuse) and live sets that swing past the magazines (an exchange every 64 objects).
    for what in ["kmalloc", "lifetime", "burst"] {
        let run = loadgen::find(&runs, what, 1, 1);
        lines.push(ratio_line(
            format!("loadgen {what} ops/s vs mimalloc (1 client, 1 thread)"),
            ops(rate(run, "memserver")),
            ops(rate(run, "mimalloc")),
            ratio(rate(run, "memserver"), rate(run, "mimalloc")),
            None,
        ));
    }
    let threads = ratio(rate(churn2, "memserver"), rate(churn, "memserver"));
    let mi_threads = ratio(rate(churn2, "mimalloc"), rate(churn, "mimalloc"));
    lines.push(ratio_line(
        "loadgen churn, 2 threads vs 1 (one client)".into(),
        ops(rate(churn2, "memserver")),
        ops(rate(churn, "memserver")),
        threads,
        Some(Goal::AtLeast(1.8)),
    ));
    lines.push(ratio_line(
        "  the same for mimalloc".into(),
        ops(rate(churn2, "mimalloc")),
        ops(rate(churn, "mimalloc")),
        mi_threads,
        None,
    ));

    let count = |v: Option<f64>| v.map_or_else(|| "skipped".into(), |v| format!("{v:.0}"));
    lines.push(absolute_line(
        "server instructions per Alloc/Free request",
        instructions.per_request,
        count(instructions.per_request),
        Goal::AtMost(600.0),
        "",
    ));
    lines.push(absolute_line(
        "server instructions per object a MagazineExchange moves",
        instructions.per_exchanged_object,
        count(instructions.per_exchanged_object),
        Goal::AtMost(60.0),
        "",
    ));

    let mem: Memory = if quick { Memory::default() } else { memory::measure(bin) };
    lines.push(absolute_line(
        "server bytes per pool frame (idle server, 64 clients)",
        mem.per_frame,
        mem.per_frame.map_or("-".into(), |b| format!("{b:.1} B")),
        Goal::AtMost(64.0),
        " B",
    ));
    lines.push(absolute_line(
        "  the same from the engine's table sizes",
        Some(mem.per_frame_tables),
        format!("{:.1} B", mem.per_frame_tables),
        Goal::AtMost(64.0),
        " B",
    ));

    let scale = std::fs::read_to_string(out.join("scale.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .unwrap_or(Value::Null);

    let kmalloc_hit_rate =
        loadgen::find(&runs, "kmalloc", 1, 1).and_then(|r| r.total("memserver")["kmalloc_hit_rate"].as_f64());
    let shown = kmalloc_hit_rate.map_or("-".into(), |h| format!("{:.2} %", h * 100.0));
    lines.push(Line {
        what: "kmalloc hit rate, loadgen kmalloc 1 client".into(),
        ours: shown.clone(),
        base: String::new(),
        figure: shown,
        goal: None,
    });

    let goals = json!({ "fast_path_vs_mimalloc": "<= 1.0", "fast_path_vs_glibc": "<= 0.5", "plain_vs_fast_path": "<= 1.5",
        "kmalloc_fast_path_vs_mimalloc": "<= 1.0", "hardened_check_ns_per_pair": "<= 1.0",
        "ipc_vs_pingpong": "<= 1.25", "magazine_hit_rate": ">= 0.98", "loadgen_mean_vs_sampled_pair": "<= 3.0",
        "loadgen_churn_vs_mimalloc": ">= 1.0", "loadgen_mixed_vs_mimalloc": ">= 1.0",
        "threads2_vs_threads1": ">= 1.8", "instructions_per_request": "<= 600",
        "instructions_per_exchanged_object": "<= 60", "server_bytes_per_pool_frame": "<= 64" });
    let summary = json!({
        "date": date(), "machine": format!("{} CPUs, {}", server::cpus(), server::cpu_model()),
        "command": "make bench",
        "placement": PLACEMENT,
        "fast_path_vs_mimalloc": geomean(&vs_mi), "fast_path_vs_glibc": geomean(&vs_glibc),
        "plain_vs_fast_path": geomean(&plain_vs_fast),
        "fast_path_locked_vs_mimalloc": geomean(&locked_vs_mi), "fast_path_locked_vs_glibc": geomean(&locked_vs_glibc),
        "kmalloc_fast_path_vs_mimalloc": geomean(&kmalloc_vs_mi), "kmalloc_hit_rate": kmalloc_hit_rate,
        "hardened_check_ns_per_pair": hardened_check,
        "ipc_vs_pingpong": ipc_ratio, "ipc_vs_pingpong_unpinned": ipc_json["ratio_unpinned"].clone(),
        "loadgen_mean_vs_sampled_pair": ratio(loadgen_pair, sampled.memserver_ns),
        "mimalloc_loadgen_mean_vs_sampled_pair": ratio(mimalloc_pair, sampled.mimalloc_ns),
        "sampled_pair_ns": { "memserver": sampled.memserver_ns, "mimalloc": sampled.mimalloc_ns },
        "loadgen_mean_vs_fast_path": ratio(loadgen_pair, fast64),
        "loadgen_mean_vs_locked_pair": ratio(loadgen_pair, locked64),
        "magazine_hit_rate": hit_rate,
        "loadgen_churn_vs_mimalloc": churn_vs_mi, "loadgen_mixed_vs_mimalloc": mixed_vs_mi,
        "threads2_vs_threads1": threads, "mimalloc_threads2_vs_threads1": mi_threads,
        "instructions_per_request": instructions.per_request,
        "instructions_per_exchanged_object": instructions.per_exchanged_object,
        "instructions_skipped": instructions.skipped,
        "server_bytes_per_pool_frame": mem.per_frame,
        "server_bytes_per_pool_frame_tables": mem.per_frame_tables,
        "server_idle_anon_bytes": { "pools": memory::POOLS, "measured": mem.idle_anon, "tables": mem.tables },
        "sizes": per_size, "ipc": ipc_json, "loadgen": loadgen_json, "scale": scale,
        "goals": goals,
    });
    if let Err(e) = crate::plot::write(&runs, &out.join("ops-per-sec.svg")) {
        eprintln!("bench: {e}");
    }
    println!("\n{}", table(&lines, &runs, &summary, quick));
    summary
}

/// Where the processes ran (printed with the table).
const PLACEMENT: &str = "processes placed by the scheduler on the CPUs available, except the pinned IPC \
    row (bench and peer on CPU 0) and the instruction counts (server under callgrind and its client on CPU 0)";

fn table(lines: &[Line], runs: &[Run], summary: &Value, quick: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "memserver make bench: {}, {}",
        summary["date"].as_str().unwrap_or(""),
        summary["machine"].as_str().unwrap_or("")
    );
    let _ = writeln!(t, "(ratio = memserver / baseline, both measured in this run; medians of criterion samples;");
    let _ = writeln!(t, " {PLACEMENT})\n");
    let _ = writeln!(t, "| what | memserver | baseline | figure | goal | met |");
    let _ = writeln!(t, "| --- | ---: | ---: | ---: | --- | --- |");
    for l in lines {
        let (goal, met) = match &l.goal {
            Some((goal, Some(true))) => (goal.as_str(), "yes"),
            Some((goal, Some(false))) => (goal.as_str(), "**no**"),
            Some((goal, None)) => (goal.as_str(), "not measured"),
            None => ("-", ""),
        };
        let _ = writeln!(t, "| {} | {} | {} | {} | {goal} | {met} |", l.what, l.ours, l.base, l.figure);
    }
    let _ = writeln!(t, "\n{}", loadgen::table(runs, quick));
    if let Some(scale) = crate::scale_table(&summary["scale"]) {
        let _ = writeln!(t, "{scale}");
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

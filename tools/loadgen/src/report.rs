//! What a run reports: per configuration, one row per client and a total; the JSON of
//! `--json` (the same structure); the final table; the server's slabinfo.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use protocol::SlabInfoRow;
use serde::{Deserialize, Serialize};

use crate::runner::{self, RunResult};

/// One configuration in one client process (or the total over clients).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// `loadgen-<i>`, or `total`.
    pub client: String,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    /// Mean of the sampled per-operation latencies.
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Operations timed.
    pub samples: u64,
    /// Magazine hits (allocs and frees served without IPC); memserver only.
    pub hits: Option<u64>,
    /// Allocs and frees that needed an IPC; memserver only.
    pub misses: Option<u64>,
    /// IPC round trips made during the timed part and the drain; memserver only.
    pub ipc_calls: Option<u64>,
    /// hits / (hits + misses), over every operation (caches and kmalloc).
    pub hit_rate: Option<f64>,
    /// Of `hits` and `misses`, the `kmalloc`s and `kfree`s; memserver only.
    pub kmalloc_hits: Option<u64>,
    pub kmalloc_misses: Option<u64>,
    /// The hit rate of the cache operations alone (`None` without any).
    pub cache_hit_rate: Option<f64>,
    /// The hit rate of `kmalloc` and `kfree` alone (`None` without any).
    pub kmalloc_hit_rate: Option<f64>,
    pub ipc_per_1000_ops: Option<f64>,
    /// Objects whose pattern was checked before free.
    pub verified: u64,
    /// Objects found corrupted (lost or shared).
    pub corrupted: u64,
    /// Allocations or frees refused, objects left allocated after the run.
    pub failed: u64,
    /// The first few problems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// The latency histogram as (value ns, count) pairs, child → parent only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<(u64, u64)>,
}

/// Magazine counters over one configuration (deltas of `memclient::CounterSnapshot`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ipc {
    pub hits: u64,
    pub misses: u64,
    pub calls: u64,
    /// Of `hits` and `misses`, the kmalloc ones.
    pub kmalloc_hits: u64,
    pub kmalloc_misses: u64,
}

/// hits / (hits + misses), `None` without either.
fn rate_of(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
}

impl Row {
    /// The row of one client's run.
    pub fn of(client: &str, run: &RunResult, ipc: Option<Ipc>, lost: &[String]) -> Row {
        let mut row = Row {
            client: client.to_owned(),
            ops: run.ops,
            seconds: run.elapsed.as_secs_f64(),
            verified: run.verified,
            corrupted: run.corrupted,
            failed: run.refused + lost.len() as u64,
            failures: run.failures.iter().chain(lost).cloned().collect(),
            histogram: run.latency.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect(),
            ..Row::default()
        };
        row.set_latency(&run.latency);
        row.ops_per_sec = rate(row.ops, row.seconds);
        if let Some(ipc) = ipc {
            row.set_ipc(ipc);
        }
        row
    }

    /// The histogram carried in the row.
    pub fn latency(&self) -> Histogram<u64> {
        let mut h = runner::histogram();
        for &(value, count) in &self.histogram {
            let _ = h.record_n(value, count);
        }
        h
    }

    fn set_latency(&mut self, h: &Histogram<u64>) {
        self.mean_ns = h.mean();
        self.p50_ns = h.value_at_quantile(0.50);
        self.p90_ns = h.value_at_quantile(0.90);
        self.p99_ns = h.value_at_quantile(0.99);
        self.p999_ns = h.value_at_quantile(0.999);
        self.max_ns = h.max();
        self.samples = h.len();
    }

    fn set_ipc(&mut self, ipc: Ipc) {
        self.hits = Some(ipc.hits);
        self.misses = Some(ipc.misses);
        self.ipc_calls = Some(ipc.calls);
        self.kmalloc_hits = Some(ipc.kmalloc_hits);
        self.kmalloc_misses = Some(ipc.kmalloc_misses);
        self.hit_rate = Some(rate_of(ipc.hits, ipc.misses).unwrap_or(0.0));
        self.cache_hit_rate =
            rate_of(ipc.hits.saturating_sub(ipc.kmalloc_hits), ipc.misses.saturating_sub(ipc.kmalloc_misses));
        self.kmalloc_hit_rate = rate_of(ipc.kmalloc_hits, ipc.kmalloc_misses);
        self.ipc_per_1000_ops = Some(if self.ops == 0 { 0.0 } else { ipc.calls as f64 * 1000.0 / self.ops as f64 });
    }

    /// The magazine counters of the row (`None` outside memserver).
    fn ipc(&self) -> Option<Ipc> {
        Some(Ipc {
            hits: self.hits?,
            misses: self.misses?,
            calls: self.ipc_calls?,
            kmalloc_hits: self.kmalloc_hits.unwrap_or(0),
            kmalloc_misses: self.kmalloc_misses.unwrap_or(0),
        })
    }

    /// The total over clients: ops summed, the slowest client's time, histograms merged.
    pub fn total(rows: &[Row]) -> Row {
        let mut h = runner::histogram();
        let mut total = Row { client: "total".into(), ..Row::default() };
        for r in rows {
            let _ = h.add(r.latency());
            total.ops += r.ops;
            total.seconds = total.seconds.max(r.seconds);
            total.verified += r.verified;
            total.corrupted += r.corrupted;
            total.failed += r.failed;
        }
        total.set_latency(&h);
        total.ops_per_sec = rate(total.ops, total.seconds);
        let ipcs: Option<Vec<Ipc>> = rows.iter().map(Row::ipc).collect();
        if let Some(ipcs) = ipcs.filter(|i| !i.is_empty()) {
            let sum = |f: fn(&Ipc) -> u64| ipcs.iter().map(f).sum::<u64>();
            total.set_ipc(Ipc {
                hits: sum(|i| i.hits),
                misses: sum(|i| i.misses),
                calls: sum(|i| i.calls),
                kmalloc_hits: sum(|i| i.kmalloc_hits),
                kmalloc_misses: sum(|i| i.kmalloc_misses),
            });
        }
        total.histogram = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        total
    }
}

fn rate(ops: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { ops as f64 / seconds } else { 0.0 }
}

/// One client's result message: every configuration and its slabinfo.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientReport {
    pub client: String,
    /// One row per configuration, in run order.
    pub rows: Vec<(String, Row)>,
    /// This client's slabinfo rows after the memserver run (before its last objects were
    /// freed).
    pub slabinfo: Vec<SlabInfoRow>,
}

/// One configuration over all clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigReport {
    pub name: String,
    pub clients: Vec<Row>,
    pub total: Row,
}

/// The whole run: what `--json` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub workload: String,
    pub clients: usize,
    pub threads: usize,
    pub seed: u64,
    pub size: u32,
    /// Operations per thread per configuration (`--ops`), if given.
    pub ops_budget: Option<u64>,
    /// Seconds per configuration (`--seconds`), if given.
    pub seconds_budget: Option<f64>,
    pub configs: Vec<ConfigReport>,
    /// Per client: (name, its slabinfo rows).
    pub slabinfo: Vec<(String, Vec<SlabInfoRow>)>,
    /// Objects checked, corrupted and failures over the whole run.
    pub verified: u64,
    pub corrupted: u64,
    pub failed: u64,
    /// Client processes that exited with an error.
    pub client_errors: Vec<String>,
    /// Nothing corrupted, lost or failed.
    pub ok: bool,
}

impl Report {
    /// The memserver (magazines) total, else the first memserver configuration's.
    pub fn memserver_total(&self) -> Option<&Row> {
        let find = |name: &str| self.configs.iter().find(|c| c.name == name).map(|c| &c.total);
        find("memserver").or_else(|| find("memserver-no-magazines"))
    }
}

/// Nanoseconds for a table cell.
pub fn ns(v: f64) -> String {
    if v < 1_000.0 {
        format!("{v:.0} ns")
    } else if v < 1_000_000.0 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{:.1} ms", v / 1e6)
    }
}

fn ops_rate(v: f64) -> String {
    if v >= 1e6 { format!("{:.2} M", v / 1e6) } else { format!("{:.1} k", v / 1e3) }
}

/// A hit rate as a percentage with two decimals (99.95 % is not 100 %).
pub fn percent(rate: f64) -> String {
    format!("{:.2} %", rate * 100.0)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// The final table: per configuration, a row per client and the total.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<23} {:<10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>11} {:>10}",
        "configuration",
        "client",
        "ops",
        "ops/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "cache hit",
        "kmalloc hit",
        "IPC/1k ops"
    );
    for config in &report.configs {
        let rows: Vec<&Row> = if config.clients.len() > 1 {
            config.clients.iter().chain([&config.total]).collect()
        } else {
            vec![&config.total]
        };
        for (i, r) in rows.iter().enumerate() {
            let name = if i == 0 { config.name.as_str() } else { "" };
            let client = if config.clients.len() > 1 { r.client.as_str() } else { config.clients[0].client.as_str() };
            let _ = writeln!(
                out,
                "{:<23} {:<10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>11} {:>10}",
                name,
                client,
                r.ops,
                ops_rate(r.ops_per_sec),
                ns(r.p50_ns as f64),
                ns(r.p90_ns as f64),
                ns(r.p99_ns as f64),
                ns(r.p999_ns as f64),
                opt(r.cache_hit_rate, percent),
                opt(r.kmalloc_hit_rate, percent),
                opt(r.ipc_per_1000_ops, |c| format!("{c:.1}")),
            );
        }
    }
    out
}

/// The server's slabinfo as each client saw it, in `/proc/slabinfo` 2.1 format (empty
/// `kmalloc-*` caches left out).
pub fn slabinfo(report: &Report) -> String {
    let mut out = String::new();
    let _ = protocol::slabinfo::write_header(&mut out);
    for (client, rows) in &report.slabinfo {
        let _ = writeln!(out, "# {client}");
        for row in rows.iter().filter(|r| !r.name.starts_with("kmalloc-") || r.num_objs > 0) {
            let _ = protocol::slabinfo::write_row(&mut out, row);
        }
    }
    out
}

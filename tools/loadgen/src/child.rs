//! One client process (`loadgen --child <i>`): connects as the client task `loadgen-<i>`, runs
//! every configuration on the same plans, and talks to the parent over its stdio:
//!
//! | direction | line | meaning |
//! | --- | --- | --- |
//! | child → parent | `ready <k>` | set up for configuration `k`, waiting |
//! | parent → child | `go` | start configuration `k` (all clients start together) |
//! | child → parent | `progress <ops>` | operations done so far in this configuration |
//! | child → parent | `report <json>` | the [`ClientReport`], last line |

use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use memclient::CounterSnapshot;

use crate::Args;
use crate::backend::{Config, Glibc, MemserverCaches, Mimalloc};
use crate::report::{ClientReport, Ipc, Row};
use crate::runner::{self, Budget, RunResult};
use crate::workload::{self, Plan, Workload};

/// Runs client `index`; the exit code says whether it could run (problems found in objects
/// are in the report, the parent judges them).
pub fn run(args: &Args, index: usize, configs: &[Config]) -> Result<(), String> {
    let name = format!("loadgen-{index}");
    let socket = args.socket_path()?;
    let session = if configs.iter().any(|c| c.is_memserver()) {
        Some(
            memclient::host::connect(&socket, &name)
                .map_err(|e| format!("{name}: connect to {}: {e}", socket.display()))?,
        )
    } else {
        None
    };
    let len = match args.budget() {
        Budget::Ops(n) => n as usize,
        Budget::Time(_) => 1 << 20,
    };
    let plans: Vec<Plan> = (0..args.threads.max(1))
        .map(|t| workload::generate(args.workload, workload::thread_seed(args.seed, index, t), len, args.size))
        .collect();
    let tag_base = (index as u64 + 1) << 56;
    let mut report = ClientReport { client: name.clone(), rows: Vec::new(), slabinfo: Vec::new() };
    let stdin = std::io::stdin();
    for (k, &config) in configs.iter().enumerate() {
        say(&format!("ready {k}"));
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("{name}: the parent went away"));
        }
        let ctor = args.workload == Workload::Ctor;
        let row = match config {
            Config::Glibc => row_of(
                &name,
                with_progress(|p| runner::run(&Glibc, &plans, args.budget(), ctor, p, tag_base, &|| ())),
                None,
                &[],
            ),
            Config::Mimalloc => row_of(
                &name,
                with_progress(|p| runner::run(&Mimalloc, &plans, args.budget(), ctor, p, tag_base, &|| ())),
                None,
                &[],
            ),
            Config::Memserver | Config::MemserverNoMagazines => {
                let session = session.as_ref().ok_or("no session")?;
                let magazines = config == Config::Memserver;
                let caches = MemserverCaches::create(session, &plans[0].classes, magazines, ctor)
                    .map_err(|e| format!("{name}: cache create: {e}"))?;
                let slabinfo = Mutex::new(Vec::new());
                let snapshot = |slabinfo: &Mutex<Vec<protocol::SlabInfoRow>>| {
                    let mut rows = Vec::new();
                    let _ = session.for_each_slabinfo_row(false, |r| rows.push(r.clone()));
                    if let Ok(mut s) = slabinfo.lock() {
                        *s = rows;
                    }
                };
                let before = session.counters();
                let run = with_progress(|p| {
                    runner::run(&caches, &plans, args.budget(), ctor, p, tag_base, &|| snapshot(&slabinfo))
                });
                let mut ipc = delta(before, session.counters());
                ipc.misses += caches.uncounted_kmalloc_misses();
                ipc.kmalloc_misses += caches.uncounted_kmalloc_misses();
                let lost = caches.finish();
                if configs.iter().position(|c| c.is_memserver()) == Some(k) {
                    report.slabinfo = slabinfo.into_inner().unwrap_or_default();
                }
                row_of(&name, run, Some(ipc), &lost)
            }
        };
        report.rows.push((config.name().to_owned(), row));
    }
    if let Some(session) = &session {
        let _ = session.goodbye();
    }
    say(&format!("report {}", serde_json::to_string(&report).map_err(|e| e.to_string())?));
    Ok(())
}

fn row_of(name: &str, run: RunResult, ipc: Option<Ipc>, lost: &[String]) -> Row {
    for failure in run.failures.iter().chain(lost) {
        eprintln!("loadgen: {name}: {failure}");
    }
    Row::of(name, &run, ipc, lost)
}

fn delta(before: CounterSnapshot, after: CounterSnapshot) -> Ipc {
    Ipc {
        hits: (after.alloc_hits + after.free_hits).saturating_sub(before.alloc_hits + before.free_hits),
        misses: after.misses.saturating_sub(before.misses),
        calls: after.calls.saturating_sub(before.calls),
        kmalloc_hits: after.kmalloc_hits.saturating_sub(before.kmalloc_hits),
        kmalloc_misses: after.kmalloc_misses.saturating_sub(before.kmalloc_misses),
    }
}

/// Runs `f` while a thread reports its progress counter to the parent every 100 ms.
fn with_progress<R>(f: impl FnOnce(&AtomicU64) -> R) -> R {
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = u64::MAX;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    say(&format!("progress {now}"));
                    last = now;
                }
            }
        });
        let result = f(&progress);
        done.store(true, Ordering::Relaxed);
        result
    })
}

/// One line to the parent.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

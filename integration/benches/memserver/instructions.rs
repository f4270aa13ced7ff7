//! (c) The server's own cost, in user-space instructions: `valgrind --tool=callgrind` counts
//! every instruction the server process executes (runner, dispatch, engine, libc), and the
//! difference of two runs of different lengths divided by the difference in work is the cost
//! of one unit of work, start-up and shutdown cancelled out.
//!
//! * per request: `Alloc` and `Free` IPCs of a cache without magazines (64 B objects);
//! * per exchanged object: `MagazineExchange`s of a cache with magazines (64 B objects, 64 a
//!   magazine): rounds of 2,048 allocations then 2,048 frees, so most refills come from the
//!   slabs and most drains go back to them (the depot holds two magazines); the objects moved
//!   are the server's own count (`Stats`: refilled + drained).
//!
//! Server and client are pinned to one CPU and the client pauses before each request (each
//! magazine's worth of operations), so every request is served in a wake-up of its own (the
//! worst case: the `epoll_wait`, the audit after the batch, all for one request) and the counts
//! repeat exactly from run to run; the window audit's timer is set to a minute (its passes
//! cost time, not requests).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::ptr::NonNull;

use memclient::Cache;
use rustix::process::Pid;

use crate::server::{self, Binaries, Placement};

/// The system the measured server runs: the bench's, with a one-minute audit timer.
fn system() -> String {
    server::system_text().table("server.audit", &[("interval_ms", 60_000)]).into()
}

/// What the measurement found.
#[derive(Clone, Debug, Default)]
pub struct Instructions {
    /// Instructions per `Alloc`/`Free` request.
    pub per_request: Option<f64>,
    /// Instructions per object a `MagazineExchange` moved.
    pub per_exchanged_object: Option<f64>,
    /// Why a figure is missing (`valgrind` not installed, a run failed).
    pub skipped: Option<String>,
}

/// One run's work.
enum Work {
    /// `pairs` alloc+free pairs by IPC.
    Ipc { pairs: u32 },
    /// `rounds` rounds of 2,048 allocations and 2,048 frees through the magazines.
    Exchange { rounds: u32 },
}

/// Whether `valgrind` can be run.
pub fn valgrind_available() -> bool {
    Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Both figures (each the difference of two runs), or why not.
pub fn measure(bin: &Binaries, quick: bool) -> Instructions {
    if !valgrind_available() {
        let why = "valgrind not found: the instruction rows are skipped (apt-get install valgrind)";
        eprintln!("bench: {why}");
        return Instructions { skipped: Some(why.into()), ..Default::default() };
    }
    let (short, long) = if quick { (50, 150) } else { (1_000, 6_000) };
    let (few, many) = if quick { (1, 2) } else { (2, 10) };
    let mut skipped = None;
    let mut slope = |a: Work, b: Work| match (run(bin, a), run(bin, b)) {
        (Ok((ir_a, work_a)), Ok((ir_b, work_b))) if work_b > work_a => {
            Some((ir_b as f64 - ir_a as f64) / (work_b - work_a) as f64)
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("bench: callgrind run failed: {e}");
            skipped = Some(e);
            None
        }
        _ => None,
    };
    let per_request = slope(Work::Ipc { pairs: short }, Work::Ipc { pairs: long });
    let per_exchanged_object = slope(Work::Exchange { rounds: few }, Work::Exchange { rounds: many });
    Instructions { per_request, per_exchanged_object, skipped }
}

/// Runs the server under callgrind for `work`; its instruction count and the work done
/// (requests, or objects moved by exchanges).
fn run(bin: &Binaries, work: Work) -> Result<(u64, u64), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("system.toml"), system()).map_err(|e| e.to_string())?;
    let out = dir.path().join("callgrind.out");
    let mut child = Command::new("valgrind")
        .current_dir(dir.path())
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&bin.server)
        .args(["--system", "system.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("valgrind: {e}"))?;
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line);
    let pid = Pid::from_child(&child);
    if !line.contains("listening on") {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("the server did not start under valgrind: {line:?}"));
    }
    server::place(Placement::OneCpu, pid);
    let done = drive(&dir.path().join("memserver.sock"), &work);
    server::place(Placement::Free, pid);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let _ = child.wait();
    let done = done?;
    // To read where the instructions go (callgrind_annotate), keep the outputs.
    if let Some(keep) = std::env::var_os("MEMSERVER_BENCH_KEEP_CALLGRIND") {
        let name = match work {
            Work::Ipc { pairs } => format!("callgrind.ipc.{pairs}"),
            Work::Exchange { rounds } => format!("callgrind.exchange.{rounds}"),
        };
        let _ = std::fs::copy(&out, Path::new(&keep).join(name));
    }
    Ok((total_instructions(&out)?, done))
}

/// The client side of a run; the work done.
fn drive(socket: &Path, work: &Work) -> Result<u64, String> {
    let session = memclient::host::connect(socket, "bench").map_err(|e| format!("connect: {e:?}"))?;
    fn e(what: &'static str) -> impl Fn(memclient::Error) -> String {
        move |err| format!("{what}: {err:?}")
    }
    let done = match *work {
        Work::Ipc { pairs } => {
            let cache = Cache::create_without_magazines(&session, "cg-ipc", 64, 0, 0, None).map_err(e("create"))?;
            for _ in 0..pairs {
                pause();
                let object = cache.alloc().map_err(e("alloc"))?;
                pause();
                cache.free(object).map_err(e("free"))?;
            }
            u64::from(pairs) * 2
        }
        Work::Exchange { rounds } => {
            let cache = Cache::create(&session, "cg-exchange", 64, 0, 0, None).map_err(e("create"))?;
            let mut held: Vec<NonNull<u8>> = Vec::with_capacity(2048);
            for _ in 0..rounds {
                for i in 0..2048 {
                    if i % 64 == 0 {
                        pause();
                    }
                    held.push(cache.alloc().map_err(e("alloc"))?);
                }
                for (i, object) in held.drain(..).enumerate() {
                    if i % 64 == 0 {
                        pause();
                    }
                    cache.free(object).map_err(e("free"))?;
                }
            }
            let stats = session.stats().map_err(e("stats"))?;
            stats.objects_refilled + stats.objects_drained
        }
    };
    let _ = session.goodbye();
    Ok(done)
}

/// Long enough for the server (under callgrind, on the same CPU) to finish a request and wait
/// in `epoll_wait` again.
fn pause() {
    std::thread::sleep(std::time::Duration::from_micros(300));
}

/// The `summary:` (or `totals:`) line of a callgrind output file.
fn total_instructions(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("{}: no instruction total", path.display()))
}

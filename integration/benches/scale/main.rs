//! `make scale`: is the server's cost flat in the number of clients, caches and live objects?
//!
//! # Design
//! The heavy part runs the real dispatch and engine in this process ([`null`]: client windows
//! unbacked, since caches without debug flags never touch object memory; the engine's private
//! frames and the control regions in memory), so 64 clients can hold 1,000,000 live objects
//! each, of the sizes loadgen's `mixed` draws (8 B – 2 KiB, mostly small), in about a minute
//! on two cores. Populated through magazine refills, exactly as clients fill up, it then times,
//! for 1 and for 64 such clients, and for a client with 10 and with 1,000 caches:
//! * an exchange pair through the depot (`Refill` from it, `Drain` into it) and through the
//!   slabs (`Refill` from them, `Flush` back into them), per object moved;
//! * a `Shrink` of a cache with 4 empty slabs, and
//! * the server's own memory per live object (its tables, the sessions, and the bitmap frames
//!   charged to the clients).
//!
//! Then a real-process run of moderate size ([`process`]): a `memserver` process, 16
//! connected clients of this process with 100,000 live objects each, against 1 such client:
//! the `Alloc` IPC round trip and a magazine exchange round trip. It is scaled down from 64 ×
//! 1 M because each client's objects would need ~200 MB of its window committed (13 GB for
//! 64), more than this machine's budget for one benchmark; the in-process part shows the
//! full size.
//!
//! Timings are medians of batches (wall clock): memory the size of 64 clients' metadata no
//! longer fits in the CPU caches, which is what separates the columns, not the work, which is
//! the same instructions (`make bench` counts them). Writes `target/bench/scale.json`, which
//! `make bench` adds to `summary.json` (and, if a summary exists, adds it there now).

mod null;
mod process;
mod table;

use std::time::Instant;

use serde_json::{Value, json};

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let started = Instant::now();
    let heavy = null::run_all(quick);
    let processes = process::run(quick);
    let result = json!({
        "date": date(),
        "quick": quick,
        "seconds": started.elapsed().as_secs_f64(),
        "in_process": heavy,
        "processes": processes,
    });
    println!("\n{}", table::render(&result).unwrap_or_default());
    if quick {
        return;
    }
    let out = out_dir();
    let _ = std::fs::create_dir_all(&out);
    let text = serde_json::to_string_pretty(&result).unwrap_or_default();
    if let Err(e) = std::fs::write(out.join("scale.json"), text + "\n") {
        eprintln!("scale: cannot write scale.json: {e}");
    }
    // The summary of the last `make bench`, if any, gets the table too.
    let summary = out.join("summary.json");
    if let Some(mut s) = std::fs::read_to_string(&summary).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        s["scale"] = result;
        let _ = std::fs::write(&summary, serde_json::to_string_pretty(&s).unwrap_or_default() + "\n");
    }
    println!("wrote {}", out.join("scale.json").display());
}

fn out_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench")
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

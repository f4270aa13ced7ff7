//! `make bench`: memserver against glibc, mimalloc and a bare socket, on this machine.
//!
//! # Design
//! One bench binary (criterion, `harness = false`) that starts a real `memserver` process from
//! the release build, then measures (a) an alloc+free pair through the magazine fast path vs
//! glibc and mimalloc per size ([`fast_path`]), (b) one `Alloc` IPC round trip vs a bare
//! `SOCK_SEQPACKET` ping-pong of the same sizes, pinned to one CPU and not ([`ipc`]), (c) the
//! server's instructions per request and per object an exchange moves, under callgrind
//! ([`instructions`]), (d) its memory per pool frame ([`memory`]), and (e) loadgen `churn`
//! and `mixed` with 1 and 2 clients and 1 and 2 threads ([`loadgen`]). It prints the table of
//! every figure with its goal (issues 5 and 14) and whether it is met, with the scale table of
//! the last `make scale`, writes `summary.json` and `ops-per-sec.svg` (`target/bench/`,
//! [`summary`], [`plot`]). Timing is never asserted.
//!
//! `MEMSERVER_BENCH_MICRO_ONLY=1` stops after the criterion benchmarks (for profiling one of
//! them, e.g. `-- --profile-time 5 fast_path/memserver/64`). `MEMSERVER_BENCH_INSTRUCTIONS_ONLY=1`
//! measures the server's instructions alone and prints them (with
//! `MEMSERVER_BENCH_KEEP_CALLGRIND=dir` the callgrind outputs stay, for `callgrind_annotate`).
//!
//! Under `cargo test --benches` (criterion's test mode) every benchmark runs once and loadgen
//! runs a few thousand operations, writing into a temporary directory.

mod fast_path;
mod instructions;
mod ipc;
mod loadgen;
mod memory;
mod plot;
#[path = "../scale/table.rs"]
mod scale;
mod server;
mod summary;

/// The scale table of a `make scale` result (`summary.json`'s `scale`).
pub fn scale_table(scale: &serde_json::Value) -> Option<String> {
    scale::render(scale)
}

use std::time::Duration;

use criterion::Criterion;

fn main() {
    if let Ok(spec) = std::env::var(ipc::ECHO_ENV) {
        ipc::echo_child(&spec);
        return;
    }
    let quick = !std::env::args().any(|a| a == "--bench");
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = if quick { scratch.path().to_owned() } else { summary::out_dir() };
    std::fs::create_dir_all(&out).expect("bench output directory");
    let cpus = server::cpus(); // records the start-up affinity before any pinning
    eprintln!("bench: {cpus} CPUs available");
    let bin = server::binaries();
    if std::env::var_os("MEMSERVER_BENCH_INSTRUCTIONS_ONLY").is_some() {
        println!("{:?}", instructions::measure(&bin, quick));
        return;
    }
    let server = server::Server::start(&bin);
    let session = memclient::host::connect(&server.socket(), "bench").expect("connect to memserver");

    let mut criterion = Criterion::default()
        .output_directory(&out.join("criterion"))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
        .configure_from_args();
    let sampled = fast_path::bench(&mut criterion, &session);
    eprintln!("bench: 64 B pairs timed one operation at a time as loadgen times them: {sampled:?}");
    let sizes = ipc::bench(&mut criterion, &session, server.pid());
    criterion.final_summary();
    let _ = session.goodbye();
    drop(session);

    if std::env::var_os("MEMSERVER_BENCH_MICRO_ONLY").is_some() {
        server.stop();
        return;
    }
    let instructions = instructions::measure(&bin, quick);
    let summary = summary::run(&bin, &server, &out, sizes, sampled, &instructions, quick);
    let path = out.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).expect("json");
    std::fs::write(&path, text + "\n").expect("write summary.json");
    println!("wrote {}", path.display());
    server.stop();
}

//! `loadgen` against a real `memserver` process: every workload with two client processes and
//! a small `--ops`, the pattern check clean, the JSON complete.

mod common;

use std::process::Output;

use common::Server;
use memserver_system::SystemText;

/// The server, started for `loadgen`.
fn start() -> Server {
    Server::start(&SystemText::new(8192).clients("loadgen", 2, 4096, 8192).to_string())
}

/// Runs `loadgen --system system.toml ARGS` against `server`.
fn loadgen(server: &Server, args: &[&str]) -> Output {
    server.run(env!("CARGO_BIN_EXE_loadgen-under-test"), &[&["--system", "system.toml"], args].concat())
}

/// Runs `workload` with 2 clients and checks the outcome and the JSON.
fn run_workload(workload: &str, extra: &[&str]) -> serde_json::Value {
    let server = start();
    let json = server.dir.path().join("out.json");
    let json_arg = json.to_str().unwrap();
    let mut args = vec!["--workload", workload, "--clients", "2", "--ops", "3000", "--json", json_arg];
    args.extend_from_slice(extra);
    let out = loadgen(&server, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("result: OK"), "{stdout}");
    assert!(stdout.contains("slabinfo - version: 2.1"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in
        ["workload", "clients", "threads", "seed", "configs", "slabinfo", "verified", "corrupted", "failed", "ok"]
    {
        assert!(report.get(key).is_some(), "JSON has no {key}: {report}");
    }
    assert_eq!(report["workload"], workload);
    assert_eq!(report["ok"], true);
    assert_eq!(report["corrupted"], 0);
    assert_eq!(report["failed"], 0);
    assert!(report["verified"].as_u64().unwrap() > 0);
    for config in report["configs"].as_array().unwrap() {
        assert_eq!(config["clients"].as_array().unwrap().len(), 2, "{config}");
        let total = &config["total"];
        for key in
            ["ops", "ops_per_sec", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "hit_rate", "ipc_per_1000_ops"]
        {
            assert!(total.get(key).is_some(), "total has no {key}: {total}");
        }
        assert_eq!(total["ops"], 6000, "{config}");
    }
    report
}

fn config<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["configs"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

#[test]
fn churn_runs_clean_and_hits_the_magazines() {
    let report = run_workload("churn", &[]);
    let names: Vec<_> = report["configs"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, ["memserver", "memserver-no-magazines", "glibc", "mimalloc"]);
    assert!(config(&report, "memserver")["total"]["hit_rate"].as_f64().unwrap() > 0.95);
    assert_eq!(config(&report, "memserver-no-magazines")["total"]["hit_rate"].as_f64().unwrap(), 0.0);
    assert!(config(&report, "glibc")["total"]["hit_rate"].is_null());
}

#[test]
fn mixed_runs_clean() {
    let report = run_workload("mixed", &[]);
    let rows = report["slabinfo"][0][1].as_array().unwrap();
    assert!(rows.iter().any(|r| r["name"] == "lg-2048"), "{rows:?}");
    // Half the objects by kmalloc: the kmalloc caches were used, through their magazines.
    assert!(rows.iter().any(|r| r["name"] == "kmalloc-2k" && r["num_slabs"].as_u64() > Some(0)), "{rows:?}");
    let total = &config(&report, "memserver")["total"];
    assert!(total["kmalloc_hits"].as_u64().unwrap() > 0, "{total}");
    assert!(total["kmalloc_hit_rate"].as_f64().unwrap() > 0.5, "{total}");
    assert!(total["cache_hit_rate"].as_f64().unwrap() > 0.5, "{total}");
    let ipc = &config(&report, "memserver-no-magazines")["total"];
    assert_eq!(ipc["kmalloc_hit_rate"].as_f64(), Some(0.0), "{ipc}");
}

#[test]
fn kmalloc_runs_clean_through_the_magazines() {
    let report = run_workload("kmalloc", &[]);
    let total = &config(&report, "memserver")["total"];
    assert!(total["kmalloc_hit_rate"].as_f64().unwrap() > 0.5, "{total}");
    assert!(total["cache_hit_rate"].is_null(), "no cache operations: {total}");
    assert_eq!(total["hits"], total["kmalloc_hits"], "{total}");
    let rows = report["slabinfo"][0][1].as_array().unwrap();
    assert!(rows.iter().all(|r| r["name"].as_str().unwrap().starts_with("kmalloc-")), "{rows:?}");
}

#[test]
fn lifetime_runs_clean() {
    run_workload("lifetime", &["--no-baselines"]);
}

#[test]
fn burst_runs_clean() {
    run_workload("burst", &["--size", "256"]);
}

#[test]
fn ctor_runs_clean() {
    run_workload("ctor", &["--size", "96"]);
}

#[test]
fn no_magazines_makes_every_operation_an_ipc() {
    let report = run_workload("churn", &["--no-magazines", "--no-baselines"]);
    let total = &config(&report, "memserver-no-magazines")["total"];
    assert!(total["ipc_per_1000_ops"].as_f64().unwrap() >= 1000.0, "{total}");
}

#[test]
fn plot_is_an_svg() {
    let server = start();
    let svg = server.dir.path().join("cdf.svg");
    let out = loadgen(&server, &["--workload", "churn", "--ops", "2000", "--plot", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("mimalloc"), "{}", &text[..text.len().min(200)]);
}

#[test]
fn a_client_missing_from_the_system_is_refused() {
    let server = start();
    let out = loadgen(&server, &["--clients", "3", "--ops", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loadgen-2"));
}

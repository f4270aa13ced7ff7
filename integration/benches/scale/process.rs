//! The real-process part of `make scale`: a `memserver` process and, from this process, 1 or
//! 16 connected clients holding 100,000 live 64 B objects each; client 0 then times an `Alloc`
//! IPC round trip (a cache without magazines) and an allocation burst through its magazines
//! (2,048 allocations, then 2,048 frees: 64 exchanges), placed by the scheduler.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::time::Instant;

use memclient::Cache;
use memclient::host::Connection;
use serde_json::{Value, json};

const CLIENTS: usize = 16;

fn system() -> String {
    memserver_system::SystemText::new(((CLIENTS + 1) * 2048) as u32)
        .server("max_caches_per_client", 16)
        .server("magazine_slots", 4)
        .table("server.audit", &[("interval_ms", 60_000)])
        .clients("sc", (CLIENTS + 1) as u32, 2048, 4096)
        .into()
}

type Session = memclient::Memserver<Connection>;

/// `n` live objects of a new magazine cache of `session` (held until the session ends).
fn hold(session: &Session, n: usize) -> Result<(), String> {
    let cache = Cache::create(session, "held", 64, 0, 0, None).map_err(|e| format!("{e:?}"))?;
    for _ in 0..n {
        cache.alloc().map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

/// The median of `batches` timings of `f` (which does `per` operations), in ns per operation.
fn median(batches: usize, per: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut samples = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_nanos() as f64 / per as f64);
    }
    samples.sort_by(f64::total_cmp);
    Ok(samples[samples.len() / 2])
}

/// Client 0's timings while `clients` clients (itself included) hold `objects` each.
fn timings(socket: &std::path::Path, clients: usize, objects: usize, quick: bool) -> Result<Value, String> {
    let sessions: Vec<Session> = (0..clients)
        .map(|i| memclient::host::connect(socket, &format!("sc-{i}")).map_err(|e| format!("connect sc-{i}: {e:?}")))
        .collect::<Result<_, _>>()?;
    for s in &sessions {
        hold(s, objects)?;
    }
    let s = &sessions[0];
    let e = |err: memclient::Error| format!("{err:?}");
    let ipc = Cache::create_without_magazines(s, "ipc", 64, 0, 0, None).map_err(e)?;
    let batches = if quick { 3 } else { 21 };
    let alloc_ns = median(batches, 200, || {
        let held: Vec<NonNull<u8>> = (0..200).map(|_| ipc.alloc()).collect::<Result<_, _>>().map_err(e)?;
        held.into_iter().try_for_each(|o| ipc.free(o)).map_err(e)
    })? / 2.0;
    let burst = Cache::create(s, "burst", 64, 0, 0, None).map_err(e)?;
    let mut held = Vec::with_capacity(2048);
    let burst_ns = median(batches, 4096, || {
        for _ in 0..2048 {
            held.push(burst.alloc().map_err(e)?);
        }
        held.drain(..).try_for_each(|o| burst.free(o)).map_err(e)
    })?;
    for s in &sessions {
        let _ = s.goodbye();
    }
    Ok(
        json!({ "clients": clients, "objects_per_client": objects, "alloc_ipc_ns": alloc_ns, "burst_ns_per_op": burst_ns }),
    )
}

/// 1 and 16 clients, or why not.
pub fn run(quick: bool) -> Value {
    let objects = if quick { 1_000 } else { 100_000 };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let _ = std::fs::write(dir.path().join("system.toml"), system());
    let server = PathBuf::from(env!("CARGO_BIN_EXE_server-under-test"));
    let child = Command::new(server)
        .current_dir(dir.path())
        .args(["--system", "system.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return json!({ "error": e.to_string() }),
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let socket = dir.path().join("memserver.sock");
    let runs: Vec<Value> = [1, CLIENTS]
        .iter()
        .map(|&n| timings(&socket, n, objects, quick).unwrap_or_else(|e| json!({ "clients": n, "error": e })))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    json!(runs)
}

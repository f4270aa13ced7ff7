//! The soak (issue 6): `make soak SECONDS=60` runs this with `SOAK_SECONDS` set; without it the
//! target reports itself ignored, so `make test` stays fast.
//!
//! # Design
//! One real `memserver`, four worker processes (this binary re-run as `--worker`), each a
//! client task using the real client library (`memclient`: magazines, debug caches, kmalloc)
//! to allocate, fill objects with its own byte patterns, check them, and free them at random.
//! The pool is smaller than the quotas add up to, so workers also meet `OutOfMemory`. Until the
//! time is up the runner, at random, kills a worker with SIGKILL or stops it gracefully, and
//! starts it again. A graceful stop makes the worker check every object it still holds, free
//! everything and confirm the server counts nothing live for it: nothing a surviving client
//! wrote was lost. At the end every worker stops gracefully, and the pool must be back to its
//! start, exactly. The last line is the computed summary:
//!
//! `soak: seconds=S kills=K graceful=G ops=N lost=0 server_crashes=0 pool_start=P pool_end=P`

mod host;
#[allow(dead_code)]
#[path = "hostile/peer.rs"]
mod peer;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memclient::Cache;
use memclient::host::Connection;
use memserver_system::SystemText;
use peer::{Peer, ok};
use protocol::flags::{SLAB_POISON, SLAB_RED_ZONE};

/// memctl and the four workers' clients, in a small pool.
fn system() -> String {
    SystemText::new(768)
        .server("magazine_slots", 24)
        .server("hello_timeout_ms", 2000)
        .introspector("memctl")
        .clients("soak", 4, 256, 512)
        .into()
}

const WORKERS: usize = 4;

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An object the worker holds: where, how long, its fill byte, and its cache (`None`: kmalloc).
struct Held {
    offset: usize,
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    byte: u8,
    cache: Option<usize>,
}

/// Fills a freshly allocated object with its byte.
fn fill(ptr: std::ptr::NonNull<u8>, byte: u8, len: usize) {
    // SAFETY: `ptr` is an object of `len` bytes the server just handed to this worker, inside
    // its mapped window; nothing else writes it until the worker frees it.
    unsafe { std::ptr::write_bytes(ptr.as_ptr(), byte, len) };
}

/// A worker: random client traffic until its stdin closes; then checks and frees everything.
fn worker(socket: &Path, name: &str, seed: u64) -> Result<u64, String> {
    // The previous worker of this name may still hold the session: retry (bounded) until the
    // server has reclaimed it.
    let mut attempt = 0;
    let server = loop {
        match memclient::host::connect(socket, name) {
            Ok(server) => break server,
            // Refused while the old session is still there, or reset while the connection
            // limit (one per client task) is reached.
            Err(memclient::Error::Server(protocol::Error::PermissionDenied) | memclient::Error::Transport(_))
                if attempt < 4000 =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(format!("connect: {e:?}")),
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop.store(true, Ordering::Relaxed);
        });
    }
    let e = |what: &'static str| move |err: memclient::Error| format!("{what}: {err:?}");
    let caches: Vec<Cache<'_, Connection>> = vec![
        Cache::create(&server, "soak-64", 64, 0, 0, None).map_err(e("create"))?,
        Cache::create(&server, "soak-700", 700, 0, 0, None).map_err(e("create"))?,
        Cache::create(&server, "soak-debug", 48, 0, SLAB_RED_ZONE | SLAB_POISON, None).map_err(e("create"))?,
    ];
    let window = server.window();
    let mut rng = Rng(seed | 1);
    let mut held: Vec<Held> = Vec::new();
    let check = |h: &Held| -> Result<(), String> {
        let mut now = vec![0u8; h.len];
        // SAFETY: the object is `len` bytes of this client's mapped window, allocated to this
        // worker (only it writes there); the copy goes into private memory.
        unsafe { std::ptr::copy_nonoverlapping(h.ptr.as_ptr(), now.as_mut_ptr(), h.len) };
        if now.iter().any(|&b| b != h.byte) {
            return Err(format!("LOST {name}: object at {:#x} lost what it held", h.offset));
        }
        Ok(())
    };
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) && ops < 50_000_000 {
        ops += 1;
        match rng.below(10) {
            0..=3 if held.len() < 3000 => {
                let i = rng.below(caches.len() as u64) as usize;
                let (ptr, len) = match caches[i].alloc() {
                    Ok(p) => (p, caches[i].layout().object_size as usize),
                    Err(memclient::Error::Server(protocol::Error::OutOfMemory | protocol::Error::QuotaExceeded)) => {
                        continue;
                    }
                    Err(err) => return Err(format!("alloc: {err:?}")),
                };
                let offset = window.handle(ptr).ok_or("object outside the window")?.0 as usize;
                let byte = rng.next() as u8;
                fill(ptr, byte, len);
                held.push(Held { offset, ptr, len, byte, cache: Some(i) });
            }
            7 if held.len() < 3000 => {
                let largest = if rng.below(8) == 0 { 40_000 } else { 3000 };
                let len = 1 + rng.below(largest) as usize;
                let ptr = match server.kmalloc(len) {
                    Ok(p) => p,
                    Err(memclient::Error::Server(protocol::Error::OutOfMemory | protocol::Error::QuotaExceeded)) => {
                        continue;
                    }
                    Err(err) => return Err(format!("kmalloc: {err:?}")),
                };
                let offset = window.handle(ptr).ok_or("object outside the window")?.0 as usize;
                let byte = rng.next() as u8;
                fill(ptr, byte, len);
                held.push(Held { offset, ptr, len, byte, cache: None });
            }
            8 => {
                for _ in 0..8.min(held.len()) {
                    check(&held[rng.below(held.len() as u64) as usize])?;
                }
            }
            9 if rng.below(50) == 0 => {
                let c = &caches[rng.below(caches.len() as u64) as usize];
                c.shrink().map_err(e("shrink"))?;
            }
            _ if !held.is_empty() => {
                let h = held.swap_remove(rng.below(held.len() as u64) as usize);
                check(&h)?;
                match h.cache {
                    Some(i) => caches[i].free(h.ptr).map_err(e("free"))?,
                    None => server.kfree(h.ptr).map_err(e("kfree"))?,
                }
            }
            _ => {}
        }
    }
    for h in held.drain(..) {
        check(&h)?;
        match h.cache {
            Some(i) => caches[i].free(h.ptr).map_err(e("free"))?,
            None => server.kfree(h.ptr).map_err(e("kfree"))?,
        }
    }
    for c in &caches {
        c.flush().map_err(e("flush"))?;
    }
    // The kmalloc caches' magazines (and parked large kmallocs) hold freed objects too.
    server.kmalloc_flush().map_err(e("kmalloc flush"))?;
    let stats = server.stats().map_err(e("stats"))?;
    if stats.live_objects != 0 {
        return Err(format!("{name}: {} objects still live after freeing everything", stats.live_objects));
    }
    Ok(ops)
}

fn spawn(socket: &Path, name: &str, seed: u64) -> Child {
    Command::new(std::env::current_exe().expect("this binary"))
        .args(["--worker", name, &seed.to_string()])
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn a worker")
}

/// Waits (bounded) until `name` can be admitted again, i.e. the server reclaimed it.
fn reclaimed(socket: &Path, name: &str) -> bool {
    for _ in 0..2000 {
        if let Ok(p) = Peer::connect(socket, name) {
            p.close();
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let [_, name, seed, socket] = &args[..] else {
            return ExitCode::from(2);
        };
        return match worker(Path::new(socket), name, seed.parse().unwrap_or(1)) {
            Ok(ops) => {
                println!("ops {ops}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("FAILED {e}");
                ExitCode::from(3)
            }
        };
    }
    let Some(seconds) = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) else {
        println!("\nrunning 1 test\ntest soak ... ignored (make soak SECONDS=60)\n");
        println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n");
        return ExitCode::SUCCESS;
    };
    let server = host::start_real(&system());
    let socket = server.socket.clone();
    let mut observer = Peer::connect(&socket, "memctl").expect("observer");
    let pool_start = ok("stats", observer.stats()).expect("stats").pool_free_pages;
    let names: Vec<String> = (0..WORKERS).map(|i| format!("soak-{i}")).collect();
    let mut rng = Rng(0x005e_ed0f_5eed);
    let mut workers: Vec<Child> = names.iter().map(|n| spawn(&socket, n, rng.next())).collect();
    let (mut kills, mut graceful, mut ops, mut lost, mut problems) = (0u64, 0u64, 0u64, 0u64, Vec::new());
    let stop_gracefully = |child: Child, name: &str, ops: &mut u64, lost: &mut u64, problems: &mut Vec<String>| {
        let mut child = child;
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("wait for a worker");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match text.trim().strip_prefix("ops ").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if out.status.success() => *ops += n,
            _ => {
                *lost += u64::from(text.contains("LOST"));
                problems.push(format!("{name}: {} {}", out.status, text.trim()));
            }
        }
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) && problems.is_empty() {
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        let i = rng.below(WORKERS as u64) as usize;
        // A killed worker's replacement retries its Hello until the server has reclaimed the
        // old session (the name is admitted once at a time).
        let fresh = spawn(&socket, &names[i], rng.next());
        let mut old = std::mem::replace(&mut workers[i], fresh);
        if rng.below(3) < 2 {
            let _ = old.kill();
            let _ = old.wait();
            kills += 1;
        } else {
            stop_gracefully(old, &names[i], &mut ops, &mut lost, &mut problems);
            graceful += 1;
        }
    }
    for (child, name) in workers.into_iter().zip(&names) {
        stop_gracefully(child, name, &mut ops, &mut lost, &mut problems);
        graceful += 1;
    }
    let mut server = server;
    let crashed = !matches!(server.child.try_wait(), Ok(None));
    let all_back = names.iter().all(|n| reclaimed(&socket, n));
    let pool_end = if crashed { 0 } else { ok("stats", observer.stats()).map(|s| s.pool_free_pages).unwrap_or(0) };
    if !all_back {
        problems.push("a worker's session was never reclaimed".into());
    }
    for p in &problems {
        println!("problem: {p}");
    }
    println!(
        "soak: seconds={seconds} kills={kills} graceful={graceful} ops={ops} lost={lost} server_crashes={} pool_start={pool_start} pool_end={pool_end}",
        u32::from(crashed)
    );
    if problems.is_empty() && !crashed && pool_end == pool_start { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

//! Memory really goes back: after free-all + shrink the server's and the client's resident
//! memory fall (issue 4), and a client killed with SIGKILL has everything reclaimed.

mod host;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memclient::Cache;
use memclient::host::connect;
use memserver_system::SystemText;
use protocol::flags::SLAB_POISON;

/// The application, memctl, and a victim whose memory must stay its own.
fn system() -> String {
    SystemText::new(16384).client("app", 4096, 8192).introspector("memctl").client("victim", 2048, 4096).into()
}

/// Resident KiB of process `pid` (the `Rss:` line of /proc/<pid>/smaps_rollup).
fn process_resident_kib(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    let line = rollup.lines().find(|l| l.starts_with("Rss:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn shrink_returns_memory_to_the_os_server_and_client_resident_memory_fall() {
    let server = host::start_real(&system());
    let pid = server.child.id();
    let ms = connect(&server.socket, "app").unwrap();
    let window = ms.window().base().as_ptr();
    let (client_0, server_0) = (host::mapping_resident_kib(window), process_resident_kib(pid));

    // The client touches these (a magazine cache: the server never writes its objects) ...
    let touched = Cache::create(&ms, "client-touched", 4096, 0, 0, None).unwrap();
    let mut held: Vec<_> = (0..1536).map(|_| touched.alloc().unwrap()).collect();
    for p in &held {
        // SAFETY: a 4096-byte object owned here.
        unsafe { p.as_ptr().write_bytes(0x5a, 4096) };
    }
    // ... and the server these (SLAB_POISON: it fills every object of a new slab with 0x6b).
    let poisoned = Cache::create(&ms, "server-touched", 2048, 0, SLAB_POISON, None).unwrap();
    let mut held_poisoned: Vec<_> = (0..2048).map(|_| poisoned.alloc().unwrap()).collect();
    let (client_1, server_1) = (host::mapping_resident_kib(window), process_resident_kib(pid));

    for p in held.drain(..) {
        touched.free(p).unwrap();
    }
    for p in held_poisoned.drain(..) {
        poisoned.free(p).unwrap();
    }
    let pages = touched.shrink().unwrap() + poisoned.shrink().unwrap();
    let (client_2, server_2) = (host::mapping_resident_kib(window), process_resident_kib(pid));
    println!(
        "resident KiB: client window {client_0} -> {client_1} after alloc -> {client_2} after free-all + shrink; \
         server process {server_0} -> {server_1} -> {server_2}; {pages} pages shrunk"
    );
    assert!(pages >= 2048, "shrink released only {pages} pages");
    assert!(client_1 >= client_0 + 5 * 1024, "client did not grow: {client_0} -> {client_1}");
    assert!(server_1 >= server_0 + 3 * 1024, "server did not grow: {server_0} -> {server_1}");
    // Everything the client grew by is gone from its mapping; the server gives back at least
    // 90 % of its growth (its own heap may move by a few pages meanwhile).
    assert!(client_2 <= client_0 + 64, "client resident {client_2} KiB after shrink (was {client_0})");
    assert!(
        server_1 - server_2 >= (server_1 - server_0) * 9 / 10,
        "server resident {server_0} -> {server_1} -> {server_2}"
    );
}

#[test]
fn sigkilled_client_has_everything_reclaimed() {
    let server = host::start_real(&system());
    let memctl = connect(&server.socket, "memctl").unwrap();
    let start = memctl.stats().unwrap().pool_free_pages;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_allocates_and_waits", "--ignored", "--nocapture"])
        .env("MEMSERVER_TEST_SOCKET", &server.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // On one CPU the test harness prints the test's name first, on the same line.
    while !line.contains("ready ") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited before it was ready");
    }
    let mut victim = None;
    memctl
        .for_each_client(|c| {
            if c.name.as_str() == "victim" {
                victim = Some(c.client);
            }
        })
        .unwrap();
    let victim = victim.expect("victim not listed");
    let held = memctl.client_stats(victim).unwrap();
    assert!(held.live_objects >= 1000 && held.client_pages > 0, "{held:?}");
    assert!(memctl.stats().unwrap().pool_free_pages < start);

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    assert!(
        host::eventually(Duration::from_secs(5), || memctl.stats().unwrap().pool_free_pages == start),
        "pool not back to {start}: {:?}",
        memctl.stats()
    );
    println!("SIGKILLed client's {} pages reclaimed within {:?}", held.client_pages, killed.elapsed());
    assert_eq!(memctl.client_stats(victim), Err(memclient::Error::Server(protocol::Error::InvalidArgument)));
    assert!(connect(&server.socket, "victim").is_ok(), "the killed client's name is free again");
}

/// Run by `sigkilled_client_has_everything_reclaimed` in a child process: allocate (slabs,
/// magazines, a large kmalloc), say `ready`, wait to be killed.
#[test]
#[ignore = "helper process for sigkilled_client_has_everything_reclaimed"]
fn child_allocates_and_waits() {
    let Some(socket) = std::env::var_os("MEMSERVER_TEST_SOCKET") else { return };
    let ms = connect(socket.as_ref(), "victim").unwrap();
    let cache = Cache::create(&ms, "doomed", 256, 0, 0, None).unwrap();
    let objects: Vec<_> = (0..1000).map(|_| cache.alloc().unwrap()).collect();
    let large = ms.kmalloc(100_000).unwrap();
    println!("ready {} {:?}", objects.len(), large);
    std::thread::sleep(Duration::from_secs(60));
}

//! `GlobalKmalloc` against the real server: as a program's `#[global_allocator]` (the
//! `global-alloc` example, a separate process), and in this process as an ordinary
//! `GlobalAlloc` value (alignment, realloc, threads, pointers from elsewhere).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::{Command, Output};

use memclient::host::GlobalKmalloc;

use common::{field, one_app_system as system};

/// Runs the example with `env` (and nothing of this process's `MEMSERVER_*`).
fn run_example(env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_global-alloc-under-test"));
    command.env_remove("MEMSERVER_SOCKET").env_remove("MEMSERVER_CLIENT");
    command.envs(env.iter().copied()).output().unwrap()
}

/// An allocator (not the global one) of client `app` of `server`.
fn allocator_of(server: &common::Server) -> GlobalKmalloc {
    let socket: &'static str = Box::leak(server.socket().to_str().unwrap().to_owned().into_boxed_str());
    GlobalKmalloc::to(socket, "app")
}

fn in_window(allocator: &GlobalKmalloc, ptr: *mut u8) -> bool {
    let session = allocator.session().unwrap();
    std::ptr::NonNull::new(ptr).and_then(|p| session.window().handle(p)).is_some()
}

#[test]
fn example_workload_runs_on_the_memserver_and_the_server_counts_it() {
    let server = common::Server::start(&system());
    let socket = server.socket();
    let out = run_example(&[("MEMSERVER_SOCKET", socket.to_str().unwrap()), ("MEMSERVER_CLIENT", "app")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "example failed: {stdout}\n{stderr}");
    for phase in ["btree", "hashmap", "threads", "alignment"] {
        assert!(stdout.lines().any(|l| l.contains(&format!("global-alloc: {phase}")) && l.ends_with("ok")), "{stdout}");
    }
    let line =
        stdout.lines().find(|l| l.contains("memserver kmalloc_calls=")).unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    // 2,000 map entries with their strings and vectors, buffers, boxes: at least one kmalloc and
    // one kfree per entry, nearly everything freed again. `held` counts what is allocated outside
    // the client's magazines, so also what the server keeps in its depots (up to two full
    // magazines per kmalloc class) beside what the program still holds.
    assert!(field(line, "kmalloc_calls") >= 8_000, "{line}");
    let depots = 13 * 2 * 64;
    assert!(field(line, "held") <= depots + 100, "{line}");
    assert_eq!(field(line, "failed_frees"), 0, "{line}");
    // Connecting allocated, through the bootstrap allocator, without recursing.
    assert!(field(line, "bootstrap_allocations") >= 1, "{line}");
    assert!(field(line, "bootstrap_allocations") < 100, "{line}");
    assert!(!stderr.contains("memclient:"), "unexpected warning: {stderr}");
}

#[test]
fn without_a_server_it_warns_once_and_uses_the_system_allocator() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-server.sock");
    for env in [vec![], vec![("MEMSERVER_SOCKET", missing.to_str().unwrap()), ("MEMSERVER_CLIENT", "app")]] {
        let out = run_example(&env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("global-alloc: alignment ok"), "{stdout}");
        let warnings: Vec<_> = stderr.lines().filter(|l| l.starts_with("memclient: no memserver session")).collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(warnings[0].ends_with("allocating from the system allocator instead"), "{stderr}");
        let line = stdout.lines().find(|l| l.contains("no memserver")).unwrap_or_else(|| panic!("{stdout}"));
        assert!(field(line, "bootstrap_allocations") >= 4_000, "{line}");
    }
}

#[test]
fn returned_pointers_honour_every_alignment_up_to_a_page() {
    let server = common::Server::start(&system());
    let allocator = allocator_of(&server);
    let mut align = 1;
    while align <= 4096 {
        for size in [1, 7, 8, 24, 54, 100, 1000, 4096, 5000, 20_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // Several at once, so they are not all the first object of a fresh slab.
            let blocks: Vec<*mut u8> = (0..8)
                .map(|_| {
                    // SAFETY: a non-zero size.
                    let ptr = unsafe { allocator.alloc(layout) };
                    assert!(!ptr.is_null(), "size {size} align {align}");
                    assert_eq!(ptr.addr() % align, 0, "size {size} align {align}: {ptr:p}");
                    assert!(in_window(&allocator, ptr), "size {size} align {align}: not a memserver object");
                    // SAFETY: `ptr` has `size` writable bytes.
                    unsafe { ptr.write_bytes(0x5c, size) };
                    ptr
                })
                .collect();
            for ptr in blocks {
                // SAFETY: allocated above with `layout`, freed once.
                unsafe { allocator.dealloc(ptr, layout) };
            }
        }
        align *= 2;
    }
    assert_eq!(allocator.counters().failed_frees, 0);
    let stats = allocator.session().unwrap().stats().unwrap();
    assert_eq!(stats.allocs, stats.frees);
}

#[test]
fn zeroed_allocations_are_zero_even_when_reused() {
    let server = common::Server::start(&system());
    let allocator = allocator_of(&server);
    let layout = Layout::from_size_align(200, 8).unwrap();
    for _ in 0..3 {
        // SAFETY: non-zero sizes; each block is written within its size and freed once.
        unsafe {
            let zeroed = allocator.alloc_zeroed(layout);
            assert!(!zeroed.is_null());
            assert!(std::slice::from_raw_parts(zeroed, 200).iter().all(|&b| b == 0));
            zeroed.write_bytes(0xee, 200);
            allocator.dealloc(zeroed, layout);
        }
    }
}

#[test]
fn realloc_keeps_contents_shrinks_in_place_and_grows_across_classes() {
    let server = common::Server::start(&system());
    let allocator = allocator_of(&server);
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: every pointer is used within its current size and freed once, with its layout.
    unsafe {
        let p = allocator.alloc(layout);
        for i in 0..100 {
            p.add(i).write(i as u8);
        }
        let shrunk = allocator.realloc(p, layout, 40);
        assert_eq!(shrunk, p, "shrinking moved the object");
        let grown = allocator.realloc(shrunk, Layout::from_size_align(40, 8).unwrap(), 30_000);
        assert!(!grown.is_null() && in_window(&allocator, grown));
        assert!((0..40).all(|i| grown.add(i).read() == i as u8));
        allocator.dealloc(grown, Layout::from_size_align(30_000, 8).unwrap());
    }
    // Four kmalloc-family calls: the 100-byte object through its class's magazines, the
    // 30,000-byte one (whole pages) by IPC.
    let session = allocator.session().unwrap();
    let c = session.counters();
    assert_eq!(c.kmalloc_hits + c.kmalloc_misses, 4);
    let stats = session.stats().unwrap();
    assert_eq!((stats.allocs, stats.frees), (1, 1), "only the large allocation went to the server");
}

#[test]
fn pointers_from_the_system_allocator_go_back_to_it() {
    let server = common::Server::start(&system());
    let allocator = allocator_of(&server);
    allocator.session().unwrap();
    let layout = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: a System block handed to the allocator's dealloc, which must return it to System.
    unsafe {
        let foreign = System.alloc(layout);
        assert!(!in_window(&allocator, foreign));
        allocator.dealloc(foreign, layout);
    }
    let stats = allocator.session().unwrap().stats().unwrap();
    assert_eq!((stats.frees, stats.errors), (0, 0), "the foreign pointer reached the server");
    assert_eq!(allocator.counters().failed_frees, 0);
}

#[test]
fn one_allocator_serves_several_threads() {
    let server = common::Server::start(&system());
    let allocator: &'static GlobalKmalloc = Box::leak(Box::new(allocator_of(&server)));
    // Connected first: threads allocating while the connection is being made would be served
    // by the bootstrap allocator (what `bootstrap_allocations` counts).
    allocator.session().unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let layout = Layout::from_size_align(48, 16).unwrap();
                for _ in 0..100 {
                    // SAFETY: 48-byte blocks, written within their size, freed once.
                    let blocks: Vec<*mut u8> = (0..20)
                        .map(|_| unsafe {
                            let p = allocator.alloc(layout);
                            assert!(!p.is_null() && p.addr().is_multiple_of(16));
                            p.write_bytes(t, 48);
                            p
                        })
                        .collect();
                    for p in blocks {
                        // SAFETY: as above.
                        unsafe {
                            assert!(std::slice::from_raw_parts(p, 48).iter().all(|&b| b == t), "shared block");
                            allocator.dealloc(p, layout);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let session = allocator.session().unwrap();
    let c = session.counters();
    assert_eq!(c.kmalloc_hits + c.kmalloc_misses, 16_000, "8,000 kmallocs and 8,000 kfrees");
    let stats = session.stats().unwrap();
    assert_eq!(stats.live_objects, stats.magazine_objects, "everything freed (some of it in magazines)");
    let counters = allocator.counters();
    assert_eq!((counters.served_allocations, counters.served_frees), (8_000, 8_000), "what the allocator counts");
    assert_eq!(counters.bootstrap_allocations, 0);
}

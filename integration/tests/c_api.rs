//! The C API as C programs use it: `libmemclient.a` (built here with cargo, as `make c-api`
//! does) and the committed `memclient.h`, compiled with `cc … -lmemclient`, run against a
//! real server. The reference document's hash table (`examples/c/hash_table.c`) runs with
//! its debug flags off and on; `tests/c/linux_api.c` checks one Linux rule per test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{field, one_app_system as system};

/// The system libraries a Rust static library needs (docs/client.md lists the same).
const SYSTEM_LIBS: [&str; 3] = ["-lpthread", "-ldl", "-lm"];

/// The compiled C programs.
struct Programs {
    _dir: tempfile::TempDir,
    hash_table: PathBuf,
    hash_table_debug: PathBuf,
    linux_api: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the static library with the cargo and target directory of this test (the profile
/// of this test binary, so nothing is rebuilt twice), copied as `dir/libmemclient.a`.
fn build_library(dir: &Path) {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap(); // target/<profile>/deps/…
    let target_dir = profile_dir.parent().unwrap();
    let profile = if profile_dir.ends_with("release") { "release" } else { "test" };
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["build", "-p", "memclient-c-staticlib", "--lib", "--profile", profile, "--target-dir"])
        .arg(target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build -p memclient-c-staticlib failed");
    std::fs::copy(profile_dir.join("libmemclient_c_staticlib.a"), dir.join("libmemclient.a")).unwrap();
}

/// `cc -std=c11 -Wall -Wextra -Werror -I clients/c/include SOURCE -L dir -lmemclient …`.
fn compile(dir: &Path, source: &Path, out: &str, defines: &[&str]) -> PathBuf {
    let binary = dir.join(out);
    let output = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .args(defines)
        .arg("-I")
        .arg(workspace().join("clients/c/include"))
        .arg(source)
        .arg("-L")
        .arg(dir)
        .arg("-lmemclient")
        .args(SYSTEM_LIBS)
        .arg("-o")
        .arg(&binary)
        .output()
        .expect("cc (gcc) is needed to test the C API");
    assert!(output.status.success(), "cc {}: {}", source.display(), String::from_utf8_lossy(&output.stderr));
    binary
}

fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        build_library(dir.path());
        let hash_table = workspace().join("examples/c/hash_table.c");
        let linux_api = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/linux_api.c");
        Programs {
            hash_table: compile(dir.path(), &hash_table, "hash_table", &[]),
            hash_table_debug: compile(dir.path(), &hash_table, "hash_table_debug", &["-DDEBUG"]),
            linux_api: compile(dir.path(), &linux_api, "linux_api", &[]),
            _dir: dir,
        }
    })
}

/// Runs `program args` as client `app` of `server` (no `MEMSERVER_*` without a server).
fn run(server: Option<&common::Server>, program: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args).env_remove("MEMSERVER_SOCKET").env_remove("MEMSERVER_CLIENT");
    if let Some(server) = server {
        command.env("MEMSERVER_SOCKET", server.socket()).env("MEMSERVER_CLIENT", "app");
    }
    command.output().unwrap()
}

/// Runs rule `rule` of linux_api.c against a fresh server; returns its stderr.
fn rule(rule: &str) -> String {
    let server = common::Server::start(&system());
    let out = run(Some(&server), &programs().linux_api, &[rule]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{rule}: {:?}\n{stderr}", out.status);
    stderr
}

/// Runs a hash-table build; returns its summary line after the common checks.
fn hash_table(program: &Path) -> String {
    let server = common::Server::start(&system());
    let out = run(Some(&server), program, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("INFO uninit_toa_ipv6_slab, there are 500 ipv6 nodes not freed"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
    let line = stdout.lines().find(|l| l.starts_with("hash_table:")).unwrap().to_owned();
    assert_eq!(field(&line, "live_objects"), 0, "{line}");
    line
}

#[test]
fn hash_table_example_runs_through_magazines_without_debug_flags() {
    let line = hash_table(&programs().hash_table);
    assert_eq!(field(&line, "flags"), 0, "{line}");
    // Every kmem_cache_zalloc/kmem_cache_free of the 1,000 nodes was a magazine hit or a
    // magazine exchange, never a per-object IPC.
    assert_eq!((field(&line, "allocs"), field(&line, "frees")), (0, 0), "{line}");
    assert!(field(&line, "alloc_hits") >= 900 && field(&line, "free_hits") >= 900, "{line}");
}

#[test]
fn hash_table_example_runs_with_the_documents_debug_flags() {
    let line = hash_table(&programs().hash_table_debug);
    let debug = protocol::flags::SLAB_RED_ZONE
        | protocol::flags::SLAB_POISON
        | protocol::flags::SLAB_STORE_USER
        | protocol::flags::SLAB_CONSISTENCY_CHECKS;
    assert_eq!(field(&line, "flags"), u64::from(debug), "{line}");
    // A debug cache has no magazines: each node was one checked Zalloc and one checked Free.
    assert_eq!((field(&line, "allocs"), field(&line, "frees")), (1000, 1000), "{line}");
    assert_eq!(field(&line, "alloc_hits"), 0, "{line}");
}

#[test]
fn kmalloc_zero_is_zero_size_ptr() {
    rule("kmalloc_zero_is_zero_size_ptr");
}

#[test]
fn kmalloc_power_of_two_sizes_are_naturally_aligned() {
    rule("kmalloc_power_of_two_sizes_are_naturally_aligned");
}

#[test]
fn ksize_and_roundup_give_the_size_class() {
    rule("ksize_and_roundup_give_the_size_class");
}

#[test]
fn krealloc_keeps_contents_and_pointer_while_it_fits() {
    rule("krealloc_keeps_contents_and_pointer_while_it_fits");
}

#[test]
fn kcalloc_checks_overflow_and_zeroes() {
    rule("kcalloc_checks_overflow_and_zeroes");
}

#[test]
fn kmem_cache_zalloc_and_gfp_zero_zero_objects() {
    rule("kmem_cache_zalloc_and_gfp_zero_zero_objects");
}

#[test]
fn ctor_runs_once_per_object() {
    rule("ctor_runs_once_per_object");
}

#[test]
fn destroy_with_live_objects_warns_and_keeps_the_cache() {
    let stderr = rule("destroy_with_live_objects_warns_and_keeps_the_cache");
    assert!(stderr.contains("kmem_cache_destroy kept: Slab cache still has objects (2 live)"), "{stderr}");
}

#[test]
fn errors_are_reported_like_errno() {
    let stderr = rule("errors_are_reported_like_errno");
    for report in ["kmem_cache_free(two, ", "WrongCache", "DoubleFree", "kfree(", "not in this client's window"] {
        assert!(stderr.contains(report), "no {report:?} in {stderr}");
    }
}

#[test]
fn debug_cache_catches_use_after_free() {
    rule("debug_cache_catches_use_after_free");
}

#[test]
fn threads_share_caches() {
    rule("threads_share_caches");
}

#[test]
fn kmem_cache_shrink_reports_whether_slabs_remain() {
    rule("kmem_cache_shrink_reports_whether_slabs_remain");
}

#[test]
fn bulk_alloc_is_all_or_nothing() {
    rule("bulk_alloc_is_all_or_nothing");
}

#[test]
fn slab_panic_aborts_when_creation_fails() {
    use std::os::unix::process::ExitStatusExt;
    let server = common::Server::start(&system());
    let out = run(Some(&server), &programs().linux_api, &["slab_panic_aborts_when_creation_fails"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(6), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("memclient: SLAB_PANIC: kmem_cache_create(panics)"), "{stderr}");
}

#[test]
fn explicit_connect_after_a_failed_automatic_one() {
    let server = common::Server::start(&system());
    let socket = server.socket();
    let out = run(None, &programs().linux_api, &["explicit_connect", socket.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<_> = stderr.lines().filter(|l| l.contains("no memserver session")).collect();
    assert_eq!(
        warnings,
        ["memclient: no memserver session: MEMSERVER_SOCKET is not set; memclient calls fail (return NULL)"]
    );
}

#[test]
fn the_c_library_knows_the_servers_kmalloc_classes() {
    let server: Vec<usize> = memserver_engine::KMALLOC_SIZES.iter().map(|&s| s as usize).collect();
    assert_eq!(memclient_c::kmalloc::KMALLOC_SIZES.as_slice(), server.as_slice());
    assert_eq!(memclient_c::kmalloc::KMALLOC_MAX_SIZE, memserver_engine::KMALLOC_MAX as usize);
}

/// The call counters the seL4 C task checks after `main` (`memclient_c::counters`) count each
/// object once, through `krealloc`'s three outcomes and the bulk calls. In-process (the only
/// test here that is, so nothing else moves the process-wide counters).
#[test]
fn call_counters_count_each_object_once_through_krealloc_and_bulk() {
    use memclient_c::{cache, counters, kmalloc as k, session};
    use std::ffi::{CString, c_void};

    let server = common::Server::start(&system());
    let socket = CString::new(server.socket().into_os_string().into_string().unwrap()).unwrap();
    // SAFETY: two NUL-terminated strings.
    assert_eq!(unsafe { session::memclient_connect(socket.as_ptr(), c"app".as_ptr()) }, 0);
    let before = counters::snapshot();
    let p = k::kmalloc(24, 0);
    assert!(!p.is_null());
    // SAFETY: each call gets the live object the previous one returned, used by nobody else.
    let (same, moved, gone) = unsafe {
        let same = k::krealloc(p, 30, 0); // fits kmalloc-32: the same object
        let moved = k::krealloc(same, 5000, 0); // a page-sized object: moved
        (same, moved, k::krealloc(moved, 0, 0)) // freed: ZERO_SIZE_PTR
    };
    assert!(same == p && !moved.is_null() && moved != same);
    assert_eq!(gone as usize, k::ZERO_SIZE_PTR_ADDRESS);
    let c = counters::snapshot();
    let delta = |c: counters::CallCounters| {
        (c.objects_allocated - before.objects_allocated, c.objects_freed - before.objects_freed)
    };
    assert_eq!(delta(c), (2, 2), "kmalloc, the move (one freed, one allocated), the free");

    // SAFETY: a NUL-terminated name, no ctor.
    let cache = unsafe { cache::kmem_cache_create(c"counted".as_ptr(), 64, 0, 0, None) };
    assert!(!cache.is_null());
    let mut objects = [std::ptr::null_mut::<c_void>(); 5];
    // SAFETY: `cache` is live; `objects` has room for 5 pointers, and holds its 5 objects for the free.
    unsafe {
        assert_eq!(cache::kmem_cache_alloc_bulk(cache, 0, objects.len(), objects.as_mut_ptr()), 5);
        assert_eq!(delta(counters::snapshot()), (7, 2));
        cache::kmem_cache_free_bulk(cache, objects.len(), objects.as_mut_ptr());
        cache::kmem_cache_destroy(cache);
    }
    let after = counters::snapshot();
    assert_eq!(delta(after), (7, 7));
    assert_eq!(
        (after.caches_created - before.caches_created, after.caches_destroyed - before.caches_destroyed),
        (1, 1)
    );
}

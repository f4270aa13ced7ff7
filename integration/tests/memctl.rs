//! `memctl` against a real `memserver` process: slabinfo (all clients and one), stats --json,
//! and clear errors. The server comes from `common`.

mod common;

use std::process::Output;

use common::Server;

use memclient::Cache;
use memserver_system::SystemText;

/// The server, started for `memctl`.
fn start() -> Server {
    Server::start(&SystemText::new(4096).client("app", 1024, 2048).introspector("memctl").to_string())
}

/// Runs `memctl ARGS` against `server`.
fn memctl(server: &Server, args: &[&str]) -> Output {
    server.run(env!("CARGO_BIN_EXE_memctl-under-test"), args)
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "memctl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn slabinfo_and_stats_show_a_running_client() {
    let server = start();
    let app = memclient::host::connect(&server.socket(), "app").unwrap();
    let cache = Cache::create(&app, "dentry", 192, 0, 0, None).unwrap();
    let objects: Vec<_> = (0..100).map(|_| cache.alloc().unwrap()).collect();

    let all = stdout(&memctl(&server, &["slabinfo"]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "slabinfo - version: 2.1");
    assert_eq!(
        lines[1],
        "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>"
    );
    let row = lines.iter().find(|l| l.starts_with("app/dentry ")).expect("app/dentry row");
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields.len(), 16, "{row}");
    assert!(fields[1].parse::<u32>().unwrap() >= 100, "active_objs {row}");
    assert!(lines.iter().any(|l| l.starts_with("memctl/kmalloc-8 ")));

    let one = stdout(&memctl(&server, &["slabinfo", "--client", "app"]));
    assert!(one.lines().any(|l| l.starts_with("dentry ")), "{one}");
    assert!(!one.contains("memctl") && !one.contains("app/"), "{one}");

    let json: serde_json::Value = serde_json::from_str(&stdout(&memctl(&server, &["stats", "--json"]))).unwrap();
    assert_eq!(json["pool"]["pages"], 4096);
    let app_stats = json["clients"].as_array().unwrap().iter().find(|c| c["name"] == "app").expect("app in stats");
    assert_eq!(app_stats["quota_pages"], 1024);
    assert!(app_stats["pages"].as_u64().unwrap() > 0);
    assert!(app_stats["live_objects"].as_u64().unwrap() >= 100);
    assert!(app_stats["magazines"]["alloc_hits"].as_u64().unwrap() >= 90, "{app_stats}");
    assert!(app_stats["ipc"]["refills"].as_u64().unwrap() >= 1);
    let window = &app_stats["window"];
    assert_eq!(window["granted_pages"], app_stats["pages"], "the runner's grant is the engine's frames");
    assert!(window["resident_pages"].as_u64().unwrap() <= window["granted_pages"].as_u64().unwrap());
    assert_eq!(window["violations"], 0);
    assert!(json["clients"].as_array().unwrap().iter().any(|c| c["name"] == "memctl"));

    let table = stdout(&memctl(&server, &["stats"]));
    assert!(table.starts_with("pool: ") && table.contains(" app "), "{table}");
    assert!(table.contains(" GRANTED RESIDENT  VIOL "), "{table}");
    for p in objects {
        cache.free(p).unwrap();
    }
}

#[test]
fn errors_are_clear_and_exit_nonzero() {
    let server = start();
    let unknown = memctl(&server, &["slabinfo", "--client", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no client \"nobody\""));
    let no_server = memctl(&server, &["--socket", "/nonexistent/memserver.sock", "stats"]);
    assert!(!no_server.status.success());
    assert!(
        String::from_utf8_lossy(&no_server.stderr)
            .contains("cannot connect to the memserver at /nonexistent/memserver.sock")
    );
    // A client without introspection rights sees nothing of the others.
    let _memctl = memclient::host::connect(&server.socket(), "memctl").unwrap();
    let as_app = memctl(&server, &["--name", "app", "stats", "--json"]);
    assert!(!as_app.status.success());
    let message = String::from_utf8_lossy(&as_app.stderr);
    assert!(message.contains("client \"app\" may not look at other clients"), "{message}");
}

#[test]
fn validate_reports_repairs_and_says_so_in_its_exit_status() {
    let server = start();
    let app = memclient::host::connect(&server.socket(), "app").unwrap();
    let cache = Cache::create(&app, "guarded", 100, 0, protocol::flags::SLAB_RED_ZONE, None).unwrap();
    let objects: Vec<_> = (0..10).map(|_| cache.alloc().unwrap()).collect();
    let clean = stdout(&memctl(&server, &["validate", "app", "guarded"]));
    assert!(clean.starts_with("app/guarded: 1 slabs, "), "{clean}");
    assert!(clean.contains(" 0 errors found"), "{clean}");
    // A write one byte past an object: found once, repaired, and the exit status says so.
    // SAFETY: byte 100 of a 100-byte object of a red-zoned cache is its right red zone, in
    // the window mapped into this process.
    unsafe { objects[3].as_ptr().add(100).write(0x00) };
    let out = memctl(&server, &["validate", "app", "guarded"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 1 error found and repaired"), "{text}");
    assert!(
        text.contains("first: red zone overwritten in object ") && text.contains(" at offset 100: 0x00 instead of "),
        "{text}"
    );
    assert!(stdout(&memctl(&server, &["validate", "app", "guarded"])).contains(" 0 errors found"));
    // The kmalloc caches validate too; unknown names are clear errors.
    assert!(stdout(&memctl(&server, &["validate", "app", "kmalloc-64"])).starts_with("app/kmalloc-64: "));
    let missing = memctl(&server, &["validate", "app", "nothing"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("client \"app\" has no cache \"nothing\""));
    for p in objects {
        cache.free(p).unwrap();
    }
}

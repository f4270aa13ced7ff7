//! One test per rejection, plus the repository's own system.toml.

use super::*;

/// A good description: an application and memctl.
fn good() -> String {
    SystemText::new(16384).server("magazine_slots", 16).client("app", 4096, 8192).introspector("memctl").to_string()
}

fn rejected_key(text: &str) -> String {
    match System::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let message = e.to_string();
            e.key().unwrap_or_else(|| panic!("no key in {message}")).to_owned()
        }
    }
}

#[test]
fn good_description_parses_with_ids_from_order() {
    let s = System::parse(&good()).unwrap();
    assert_eq!(s.server.hello_timeout_ms, 2000);
    assert_eq!(s.server.magazines, Magazines::default());
    assert_eq!(s.client_by_name("memctl").map(|(id, c)| (id, c.introspect)), Some((2, true)));
    assert_eq!(s.client(1).unwrap().name, "app");
    assert!(s.client(0).is_none() && s.client(3).is_none());
    assert_eq!(s.client(1).unwrap().window_bytes(), 8192 * 4096);
}

#[test]
fn repository_system_toml_is_valid() {
    let s = System::parse(include_str!("../../system.toml")).unwrap();
    for name in ["app", "memctl", "loadgen-0", "loadgen-1", "conformance", "hostile-0", "hostile-2"] {
        assert!(s.client_by_name(name).is_some(), "{name} missing");
    }
    assert!(s.client_by_name("memctl").unwrap().1.introspect);
}

#[test]
fn magazine_capacity_by_object_size() {
    let m = Magazines::default();
    assert_eq!([8, 256, 257, 1024, 4096, 4097].map(|n| m.capacity_for(n)), [64, 64, 32, 32, 16, 8]);
}

#[test]
fn socket_override() {
    let s = System::parse(&good()).unwrap();
    assert_eq!(s.socket_path(None), PathBuf::from("memserver.sock"));
    assert_eq!(s.socket_path(Some(Path::new("/tmp/x"))), PathBuf::from("/tmp/x"));
}

#[test]
fn rejects_quota_above_pool_naming_both_keys() {
    let text = good().replace("quota_pages = 1\n", "quota_pages = 99999\n");
    let e = System::parse(&text).unwrap_err().to_string();
    assert!(e.contains("client[1].quota_pages = 99999 exceeds server.pool_pages = 16384"), "{e}");
}

#[test]
fn rejects_duplicate_names() {
    let text = good().replace("\"memctl\"", "\"app\"");
    let e = System::parse(&text).unwrap_err().to_string();
    assert!(e.contains("client[1].name = \"app\" duplicates client[0].name"), "{e}");
}

#[test]
fn rejects_unknown_keys() {
    let e = System::parse(&good().replace("introspect", "introspekt")).unwrap_err();
    assert!(matches!(&e, ConfigError::Parse(m) if m.contains("introspekt")), "{e}");
    let e = System::parse(&good().replace("magazine_slots = 16", "magazine_slots = 16\npool = 3")).unwrap_err();
    assert!(matches!(&e, ConfigError::Parse(m) if m.contains("pool")), "{e}");
}

#[test]
fn rejects_missing_keys_and_wrong_types() {
    assert!(matches!(System::parse(&good().replace("pool_pages = 16384\n", "")), Err(ConfigError::Parse(_))));
    assert!(matches!(System::parse(&good().replace("= 16384", "= \"lots\"")), Err(ConfigError::Parse(_))));
    assert!(matches!(System::parse(&good().replace("= 16384", "= -1")), Err(ConfigError::Parse(_))));
}

#[test]
fn rejects_zero_sizes() {
    assert_eq!(rejected_key(&good().replace("pool_pages = 16384", "pool_pages = 0")), "server.pool_pages");
    assert_eq!(rejected_key(&good().replace("quota_pages = 4096", "quota_pages = 0")), "client[0].quota_pages");
    assert_eq!(rejected_key(&good().replace("window_pages = 1\n", "window_pages = 0\n")), "client[1].window_pages");
    assert_eq!(
        rejected_key(&good().replace("max_caches_per_client = 32", "max_caches_per_client = 0")),
        "server.max_caches_per_client"
    );
}

#[test]
fn rejects_oversized_values() {
    assert_eq!(rejected_key(&good().replace("pool_pages = 16384", "pool_pages = 16777217")), "server.pool_pages");
    assert_eq!(
        rejected_key(&good().replace("window_pages = 8192", "window_pages = 16777217")),
        "client[0].window_pages"
    );
    assert_eq!(rejected_key(&good().replace("magazine_slots = 16", "magazine_slots = 33")), "server.magazine_slots");
    assert_eq!(
        rejected_key(&good().replace("magazine_slots = 16", "magazine_slots = 16\nhello_timeout_ms = 0")),
        "server.hello_timeout_ms"
    );
}

#[test]
fn rejects_window_below_quota() {
    let e = System::parse(&good().replace("window_pages = 8192", "window_pages = 4095")).unwrap_err();
    assert!(e.to_string().contains("client[0].window_pages = 4095 is below client[0].quota_pages = 4096"), "{e}");
}

#[test]
fn rejects_magazine_capacity_above_64_or_zero() {
    // The [server.magazines] table goes right after the [server] keys.
    let place = |table: &str| {
        good().replace("magazine_slots = 16", &format!("magazine_slots = 16\n[server.magazines]\n{table}"))
    };
    assert_eq!(rejected_key(&place("small = 65\nmedium = 32\nlarge = 16\nhuge = 8")), "server.magazines.small");
    assert_eq!(rejected_key(&place("small = 64\nmedium = 32\nlarge = 16\nhuge = 0")), "server.magazines.huge");
    assert!(matches!(System::parse(&place("small = 64")), Err(ConfigError::Parse(_))));
}

#[test]
fn rejects_bad_names() {
    assert_eq!(rejected_key(&good().replace("\"memctl\"", "\"\"")), "client[1].name");
    assert_eq!(rejected_key(&good().replace("\"memctl\"", &format!("\"{}\"", "m".repeat(32)))), "client[1].name");
    assert_eq!(rejected_key(&good().replace("\"memctl\"", "\"mem ctl\"")), "client[1].name");
    assert!(System::parse(&good().replace("\"memctl\"", &format!("\"{}\"", "m".repeat(31)))).is_ok());
}

#[test]
fn rejects_no_clients_and_empty_socket() {
    assert_eq!(rejected_key(&SystemText::new(16384).to_string()), "client");
    assert_eq!(rejected_key(&good().replace("\"memserver.sock\"", "\"\"")), "server.socket");
}

#[test]
fn load_reports_the_path() {
    let e = System::load("/nonexistent/system.toml").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/system.toml"), "{e}");
}

#[test]
fn image_names_the_sel4_program_and_is_optional() {
    let s = System::parse(&good()).unwrap();
    assert_eq!(s.client(1).unwrap().image, None);
    let with_image = good().replace("name = \"app\"", "name = \"app\"\nimage = \"loadgen\"");
    assert_eq!(System::parse(&with_image).unwrap().client(1).unwrap().image.as_deref(), Some("loadgen"));
    assert_eq!(rejected_key(&good().replace("name = \"app\"", "name = \"app\"\nimage = \"\"")), "client[0].image");
    assert_eq!(
        rejected_key(&good().replace("name = \"app\"", "name = \"app\"\nimage = \"Load Gen\"")),
        "client[0].image"
    );
    let repo = System::parse(include_str!("../../system.toml")).unwrap();
    assert_eq!(repo.client_by_name("conformance").unwrap().1.image.as_deref(), Some("conformance"));
    assert_eq!(repo.client_by_name("conformance-peer").unwrap().1.image.as_deref(), Some("conformance"));
    assert_eq!(repo.client_by_name("loadgen-0").unwrap().1.image.as_deref(), Some("loadgen"));
}

#[test]
fn host_runner_defaults_for_the_trust_boundary() {
    let s = System::parse(&good()).unwrap();
    assert_eq!((s.server.pending_connections, s.server.socket_mode, s.server.poll_us), (32, 0o600, 50));
    assert_eq!(s.server.identity, Identity::default());
    assert_eq!(
        s.server.audit,
        Audit { interval_ms: 50, slack_pages: 32, violations_max: 3, violation_window_ms: 10_000 }
    );
    assert_eq!(s.client(1).unwrap().identity(&s.server), Identity::default(), "uid: the server's, at run time");
}

#[test]
fn client_identity_key_by_key_over_the_server_default() {
    let text = good()
        .replace("magazine_slots = 16", "magazine_slots = 16\n[server.identity]\nuid = 1000\nexe = \"/usr/bin/app\"")
        .replace("name = \"memctl\"", "name = \"memctl\"\nuid = 0\ngid = 4");
    let s = System::parse(&text).unwrap();
    let app = s.client(1).unwrap().identity(&s.server);
    let memctl = s.client(2).unwrap().identity(&s.server);
    assert_eq!(app, Identity { uid: Some(1000), gid: None, exe: Some("/usr/bin/app".into()) });
    assert_eq!(memctl, Identity { uid: Some(0), gid: Some(4), exe: Some("/usr/bin/app".into()) });
}

#[test]
fn rejects_bad_trust_boundary_settings() {
    let server = |extra: &str| good().replace("magazine_slots = 16", &format!("magazine_slots = 16\n{extra}"));
    assert_eq!(rejected_key(&server("socket_mode = 0o1777")), "server.socket_mode");
    assert_eq!(rejected_key(&server("socket_mode = 0o066")), "server.socket_mode", "the server's own uid must connect");
    assert_eq!(rejected_key(&server("pending_connections = 0")), "server.pending_connections");
    assert_eq!(rejected_key(&server("poll_us = 10001")), "server.poll_us");
    assert_eq!(rejected_key(&server("[server.identity]\nexe = \"relative/app\"")), "server.identity.exe");
    assert_eq!(rejected_key(&server("[server.audit]\ninterval_ms = 0")), "server.audit.interval_ms");
    assert_eq!(rejected_key(&server("[server.audit]\nviolations_max = 0")), "server.audit.violations_max");
    assert_eq!(rejected_key(&good().replace("name = \"app\"", "name = \"app\"\nexe = \"app\"")), "client[0].exe");
    assert!(System::parse(&server("socket_mode = 0o660\n[server.audit]\nslack_pages = 0")).is_ok());
}

#[test]
fn heap_names_another_client_without_an_image_for_an_sel4_task() {
    // `app` runs on seL4 with `memctl` as its heap (a made-up pairing: the rules are the point).
    let app = |heap: &str| {
        SystemText::new(16384)
            .client("app", 4096, 8192)
            .client_key("image", "\"loadgen\"")
            .client_key("heap", format!("{heap:?}"))
            .introspector("memctl")
    };
    let s = System::parse(&app("memctl").to_string()).unwrap();
    assert_eq!(s.client(1).unwrap().heap.as_deref(), Some("memctl"));
    assert_eq!(System::parse(&good()).unwrap().client(1).unwrap().heap, None);
    assert_eq!(rejected_key(&app("nobody").to_string()), "client[0].heap", "an unknown client");
    assert_eq!(rejected_key(&app("app").to_string()), "client[0].heap", "itself");
    let no_image =
        SystemText::new(16384).client("app", 4096, 8192).client_key("heap", "\"memctl\"").introspector("memctl");
    assert_eq!(rejected_key(&no_image.to_string()), "client[0].heap", "a heap serves an seL4 task");
    let heap_is_a_task = app("memctl").client_key("image", "\"x\"");
    assert_eq!(rejected_key(&heap_is_a_task.to_string()), "client[0].heap", "the heap runs as a task itself");
    let shared = app("memctl").client("b", 1, 1).client_key("image", "\"x\"").client_key("heap", "\"memctl\"");
    assert_eq!(rejected_key(&shared.to_string()), "client[2].heap", "one heap per task");
}

#[test]
fn slub_debug_follows_linux_syntax_and_refuses_the_rest() {
    let with = |spec: &str| good().replace("name = \"app\"", &format!("name = \"app\"\nslub_debug = {spec:?}"));
    let s = System::parse(&with("FZ,kmalloc-*")).unwrap();
    let app = s.client(1).unwrap();
    assert_eq!(
        app.slub_debug().flags_for("kmalloc-64"),
        protocol::flags::SLAB_CONSISTENCY_CHECKS | protocol::flags::SLAB_RED_ZONE
    );
    assert_eq!(app.slub_debug().flags_for("dentry"), 0);
    assert_eq!(s.client(2).unwrap().slub_debug(), protocol::slub_debug::SlubDebug::NONE);
    for bad in ["FT", "Z,,x", "O,kmalloc-*"] {
        assert_eq!(rejected_key(&with(bad)), "client[0].slub_debug", "{bad}");
    }
}

#[test]
fn magazine_slots_stay_within_the_control_region_format() {
    let text = good()
        .replace("max_caches_per_client = 32", "max_caches_per_client = 128")
        .replace("magazine_slots = 16", "magazine_slots = 65");
    assert_eq!(rejected_key(&text), "server.magazine_slots");
}

#[test]
fn system_text_renders_what_it_was_told_and_parses() {
    let text = SystemText::new(64)
        .server("magazine_slots", 4)
        .server("hello_timeout_ms", 300)
        .table("server.audit", &[("slack_pages", 8)])
        .clients("worker", 2, 8, 16)
        .introspector("memctl")
        .client("debug", 4, 8)
        .client_key("slub_debug", "\"FZ\"")
        .to_string();
    let s = System::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s.server.pool_pages, 64);
    assert_eq!(s.server.magazine_slots, 4, "a later value replaces the default");
    assert_eq!(text.matches("magazine_slots").count(), 1);
    let names: Vec<&str> = s.clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["worker-0", "worker-1", "memctl", "debug"]);
    assert!(s.clients[2].introspect && !s.clients[0].introspect);
    assert_eq!((s.clients[1].quota_pages, s.clients[1].window_pages), (8, 16));
}

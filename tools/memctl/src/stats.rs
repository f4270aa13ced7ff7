//! `memctl stats`: the pool and every client's frames, quota, window (pages granted, resident,
//! violations of the grant), magazine counters and IPC counts, as one JSON object or a table.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::snapshot::{ClientView, Snapshot};

/// The JSON document (schema in `docs/client.md`).
pub fn json(snapshot: &Snapshot) -> Value {
    json!({
        "pool": {
            "page_size": protocol::PAGE_SIZE,
            "pages": snapshot.pool_pages,
            "free_pages": snapshot.pool_free_pages,
            "used_pages": snapshot.pool_pages.saturating_sub(snapshot.pool_free_pages),
        },
        "clients": snapshot.clients.iter().map(client_json).collect::<Vec<_>>(),
    })
}

fn client_json(c: &ClientView) -> Value {
    let s = &c.stats;
    json!({
        "id": c.id,
        "name": c.name,
        "pages": s.client_pages,
        "quota_pages": s.quota_pages,
        "caches": s.caches,
        "window": {
            "granted_pages": s.granted_pages,
            "resident_pages": s.resident_pages,
            "violations": s.grant_violations,
        },
        "live_objects": s.live_objects,
        "magazine_objects": s.magazine_objects,
        "magazines": {
            "alloc_hits": s.alloc_hits,
            "free_hits": s.free_hits,
            "misses": s.magazine_misses,
            "hit_rate": c.hit_rate(),
        },
        "ipc": {
            "requests": s.requests,
            "allocs": s.allocs,
            "frees": s.frees,
            "refills": s.refills,
            "drains": s.drains,
            "flushes": s.flushes,
            "objects_refilled": s.objects_refilled,
            "objects_drained": s.objects_drained,
            "errors": s.errors,
        },
    })
}

/// A human-readable table.
pub fn table(snapshot: &Snapshot) -> String {
    let used = snapshot.pool_pages.saturating_sub(snapshot.pool_free_pages);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pool: {used} / {} pages used ({} KiB free)",
        snapshot.pool_pages,
        u64::from(snapshot.pool_free_pages) * protocol::PAGE_SIZE as u64 / 1024
    );
    let _ = writeln!(
        out,
        "{:>3} {:<16} {:>8} {:>8} {:>8} {:>8} {:>5} {:>6} {:>10} {:>8} {:>9} {:>12} {:>7}",
        "ID",
        "NAME",
        "PAGES",
        "QUOTA",
        "GRANTED",
        "RESIDENT",
        "VIOL",
        "CACHES",
        "LIVE",
        "IN-MAGS",
        "REQUESTS",
        "MAG-HITS",
        "HIT%"
    );
    for c in &snapshot.clients {
        let s = &c.stats;
        let _ = writeln!(
            out,
            "{:>3} {:<16} {:>8} {:>8} {:>8} {:>8} {:>5} {:>6} {:>10} {:>8} {:>9} {:>12} {:>6.1}%",
            c.id,
            c.name,
            s.client_pages,
            s.quota_pages,
            s.granted_pages,
            s.resident_pages,
            s.grant_violations,
            s.caches,
            s.live_objects,
            s.magazine_objects,
            s.requests,
            s.alloc_hits.saturating_add(s.free_hits),
            c.hit_rate() * 100.0
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_pool_and_every_client() {
        let mut stats = protocol::Stats {
            client: 1,
            client_pages: 12,
            quota_pages: 4096,
            requests: 7,
            granted_pages: 12,
            resident_pages: 40,
            grant_violations: 2,
            ..Default::default()
        };
        stats.alloc_hits = 90;
        stats.free_hits = 9;
        stats.magazine_misses = 1;
        let snapshot = Snapshot {
            pool_pages: 100,
            pool_free_pages: 88,
            clients: vec![ClientView { id: 1, name: "app".into(), stats }],
            rows: vec![],
        };
        let v = json(&snapshot);
        assert_eq!(v["pool"]["used_pages"], 12);
        assert_eq!(v["clients"][0]["name"], "app");
        assert_eq!(v["clients"][0]["quota_pages"], 4096);
        assert_eq!(v["clients"][0]["magazines"]["alloc_hits"], 90);
        assert_eq!(v["clients"][0]["magazines"]["hit_rate"], 0.99);
        assert_eq!(v["clients"][0]["ipc"]["requests"], 7);
        assert_eq!(v["clients"][0]["window"]["granted_pages"], 12);
        assert_eq!(v["clients"][0]["window"]["resident_pages"], 40);
        assert_eq!(v["clients"][0]["window"]["violations"], 2);
        let table = table(&snapshot);
        assert!(table.contains(" 99.0%"));
        let header = table.lines().nth(1).unwrap();
        let row: Vec<&str> = table.lines().nth(2).unwrap().split_whitespace().collect();
        let column = |name: &str| header.split_whitespace().position(|h| h == name).unwrap();
        assert_eq!((row[column("GRANTED")], row[column("RESIDENT")], row[column("VIOL")]), ("12", "40", "2"));
    }
}

//! The scale table, from `scale.json` (shared by `make scale` and `make bench`).

use std::fmt::Write as _;

use serde_json::Value;

fn ns(v: &Value) -> String {
    v.as_f64()
        .map_or("-".into(), |v| if v >= 10_000.0 { format!("{:.1} µs", v / 1000.0) } else { format!("{v:.1} ns") })
}

fn bytes(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |v| format!("{v:.2} B"))
}

/// The table, if `scale` is a `make scale` result.
pub fn render(scale: &Value) -> Option<String> {
    let rows = scale["in_process"].as_array()?;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "make scale ({}, {:.0} s): in process, real dispatch and engine, mixed sizes 8 B – 2 KiB",
        scale["date"].as_str().unwrap_or(""),
        scale["seconds"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "| scenario | live objects | caches (client 1) | exchange via depot, per object | via slabs, per object | shrink (4 slabs) | server tables per object | bitmaps per object (charged) |"
    );
    let _ = writeln!(t, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let m = &r["memory"];
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r["name"].as_str().unwrap_or("?"),
            m["live_objects"].as_f64().map_or("-".into(), |v| format!("{v:.0}")),
            r["caches_client_1"],
            ns(&r["exchange_depot_ns_per_object"]),
            ns(&r["exchange_slabs_ns_per_object"]),
            ns(&r["shrink_ns"]),
            bytes(&m["tables_per_object"]),
            bytes(&m["bitmaps_per_object"]),
        );
    }
    if let Some(runs) = scale["processes"].as_array() {
        let _ = writeln!(
            t,
            "\nreal processes (a memserver process; clients holding 64 B objects; scheduler's placement):\n"
        );
        let _ = writeln!(t, "| clients | objects each | Alloc IPC round trip | alloc/free burst, per operation |");
        let _ = writeln!(t, "| ---: | ---: | ---: | ---: |");
        for r in runs {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} |",
                r["clients"],
                r["objects_per_client"],
                ns(&r["alloc_ipc_ns"]),
                r.get("error").map_or_else(|| ns(&r["burst_ns_per_op"]), |e| format!("error: {e}")),
            );
        }
    }
    Some(t)
}

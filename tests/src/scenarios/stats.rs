//! Rule 14: statistics in `/proc/slabinfo` 2.1 form.

use alloc::string::String;
use alloc::vec::Vec;

use protocol::{Error, SLABINFO_ROWS_PER_PAGE, slabinfo};

use super::{CLIENT, PEER, connect};
use crate::client::{Failure, err, ok};
use crate::ensure;
use crate::harness::Harness;

pub fn slabinfo_rows(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let created = ok("create", c.create("rows", 100, 0, 0, false))?;
    for _ in 0..5 {
        ok("alloc", c.alloc(created.cache))?;
    }
    let info = ok("info", c.cache_info(created.cache))?;
    let rows = ok("slabinfo", c.slabinfo(false))?;
    let row = rows.iter().find(|r| r.name.as_str() == "rows").ok_or("no row for the cache")?;
    ensure!(row.active_objs == 5 && row.num_objs == info.num_objs, "objs {}/{}", row.active_objs, row.num_objs);
    ensure!(row.objsize == info.layout.stride, "objsize {} vs stride {}", row.objsize, info.layout.stride);
    ensure!(
        row.objperslab == info.layout.objects_per_slab && row.pagesperslab == info.layout.pages_per_slab,
        "geometry"
    );
    ensure!(row.num_objs == row.num_slabs * row.objperslab, "num_objs {} != slabs x objs", row.num_objs);
    ensure!(row.active_slabs == 1 && row.num_slabs == 1, "slabs {}/{}", row.active_slabs, row.num_slabs);
    let mut text = String::new();
    slabinfo::write_header(&mut text).map_err(|_| "header")?;
    for r in &rows {
        slabinfo::write_row(&mut text, r).map_err(|_| "row")?;
    }
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines[0] == "slabinfo - version: 2.1", "first line {:?}", lines[0]);
    for line in &lines[2..] {
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            fields.len() == 16 && fields[6] == ":" && fields[7] == "tunables" && fields[11] == ":",
            "line {line:?}"
        );
    }
    Ok(())
}

pub fn slabinfo_paging(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let extra = SLABINFO_ROWS_PER_PAGE + 5;
    for i in 0..extra {
        ok("create", c.create(&alloc::format!("paged-{i}"), 32 + i as u32, 0, 0, false))?;
    }
    let first = ok("page 0", c.slab_info(0, false))?;
    ensure!(first.rows.len() == SLABINFO_ROWS_PER_PAGE && first.more, "page 0: {} rows", first.rows.len());
    let rows = ok("all pages", c.slabinfo(false))?;
    ensure!(rows.len() == extra + 13, "{} rows for {} caches", rows.len(), extra + 13);
    for i in 0..extra {
        let name = alloc::format!("paged-{i}");
        ensure!(rows.iter().filter(|r| r.name.as_str() == name).count() == 1, "{name} not exactly once");
    }
    let past = ok("page past the end", c.slab_info(1000, false))?;
    ensure!(past.rows.is_empty() && !past.more, "page past the end: {} rows, more {}", past.rows.len(), past.more);
    Ok(())
}

pub fn slabinfo_all_needs_rights(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    ok("create", c.create("mine", 64, 0, 0, false))?;
    err("all clients without rights", c.slab_info(0, true), Error::PermissionDenied)?;
    let mut peer = connect(h, PEER)?;
    let rows = ok("all clients with rights", peer.slabinfo(true))?;
    ensure!(rows.iter().any(|r| r.name.as_str() == "mine" && r.client == c.id), "other client's cache missing");
    ensure!(rows.iter().any(|r| r.client == peer.id), "own caches missing");
    Ok(())
}

pub fn stats_accounting(h: &mut dyn Harness) -> Result<(), Failure> {
    let mut c = connect(h, CLIENT)?;
    let s0 = ok("stats", c.stats())?;
    let created = ok("create", c.create("accounted", 1024, 0, 0, false))?;
    ok("alloc", c.alloc(created.cache))?;
    let s1 = ok("stats", c.stats())?;
    ensure!(s1.requests == s0.requests + 3, "requests {} -> {}", s0.requests, s1.requests);
    ensure!(
        s1.client_pages == s0.client_pages + created.layout.pages_per_slab,
        "pages {} -> {}",
        s0.client_pages,
        s1.client_pages
    );
    ensure!(
        s1.pool_free_pages + created.layout.pages_per_slab == s0.pool_free_pages,
        "pool free {} -> {}",
        s0.pool_free_pages,
        s1.pool_free_pages
    );
    ensure!(s1.allocs == s0.allocs + 1 && s1.live_objects == s0.live_objects + 1, "allocs/live");
    err("bad free", c.free(created.cache, protocol::Handle(8)), Error::InvalidObject)?;
    let s2 = ok("stats", c.stats())?;
    ensure!(s2.errors == s1.errors + 1, "errors {} -> {}", s1.errors, s2.errors);
    Ok(())
}

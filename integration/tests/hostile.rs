//! The hostile-client suite: one named test per attack against the real `memserver` process,
//! with three victim clients and an introspecting observer (issue 6).
//!
//! # Design
//! A custom harness (`harness = false`), because the suite is one story: a single server
//! process survives every attack in turn, and the victims set up once keep their patterned
//! objects through all of them. Each attack runs as a named test (`cargo test --test hostile
//! -- NAME` filters, `--list` lists); after each, the runner checks from real state that the
//! server process is alive, that no victim object, magazine or page count changed and every
//! victim is still served, and that pool accounting is exact (used pages = the slabs of every
//! client in the observer's all-clients slabinfo, free pages = the baseline once the attackers
//! are reclaimed). It ends with the counters it computed:
//!
//! `hostile: attacks=N server_crashes=0 cross_client_effects=0 leaked_frames=0`
//!
//! A crashed server is counted and restarted (with fresh victims) so later attacks still run.

#[path = "hostile/budgets.rs"]
mod budgets;
#[path = "hostile/edges.rs"]
mod edges;
#[path = "hostile/fast_path.rs"]
mod fast_path;
#[path = "hostile/handles.rs"]
mod handles;
mod host;
#[path = "hostile/identity.rs"]
mod identity;
#[path = "hostile/kills.rs"]
mod kills;
#[path = "hostile/kmalloc.rs"]
mod kmalloc;
#[path = "hostile/limits.rs"]
mod limits;
#[path = "hostile/magazines.rs"]
mod magazines;
#[path = "hostile/peer.rs"]
mod peer;
#[path = "hostile/pending.rs"]
mod pending;
#[path = "hostile/residency.rs"]
mod residency;
#[path = "hostile/wire.rs"]
mod wire;
#[path = "hostile/world.rs"]
mod world;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use peer::Failure;
use world::World;

type Attack = fn(&mut World) -> Result<(), Failure>;

/// Every attack (issues 6, 10, 11 and 12), in the order they run.
const ATTACKS: &[(&str, Attack)] = &[
    ("forged_free", handles::forged_free),
    ("double_free", handles::double_free),
    ("foreign_handles", handles::foreign_handles),
    ("tampered_magazine", magazines::tampered_magazine),
    ("control_page_scribbled", magazines::control_page_scribbled),
    ("quota_exhaustion", limits::quota_exhaustion),
    ("pool_exhaustion", limits::pool_exhaustion),
    ("malformed_messages", wire::malformed_messages),
    ("hostile_cache_create", limits::hostile_cache_create),
    ("destroy_busy_unknown_twice", limits::destroy_busy_unknown_twice),
    ("sigkill_holding_objects", kills::sigkill_holding_objects),
    ("sigkill_loaded_magazines", kills::sigkill_loaded_magazines),
    ("sigkill_mid_exchange", kills::sigkill_mid_exchange),
    ("never_hello_and_connection_flood", wire::never_hello_and_connection_flood),
    ("red_zone_and_poison", handles::red_zone_and_poison),
    ("flooding_client_fairness", wire::flooding_client_fairness),
    // Issues 10 and 11: the host's memory grant, identity, shared pre-admission resources, edges.
    ("dirty_whole_window", residency::dirty_whole_window),
    ("fallocate_whole_window", residency::fallocate_whole_window),
    ("write_after_kfree", residency::write_after_kfree),
    ("other_uid_impersonates_every_client", identity::other_uid_impersonates_every_client),
    ("name_squatting", identity::name_squatting),
    ("silent_connection_flood", pending::silent_connection_flood),
    ("stderr_never_read", pending::stderr_never_read),
    ("shutdown_write_is_not_a_message", edges::shutdown_write_is_not_a_message),
    ("hello_version_retry", edges::hello_version_retry),
    ("disguised_cache_names", edges::disguised_cache_names),
    // Issue 12: the page-owner and cache tables, the dtor two-phase shrink, validation.
    ("forged_kmalloc_tables", kmalloc::forged_kmalloc_tables),
    ("dtor_commit_forged", kmalloc::dtor_commit_forged),
    ("validate_foreign_cache", kmalloc::validate_foreign_cache),
    // Issue 11: the client library's own fast path (the hardened free).
    ("fast_path_double_free", fast_path::fast_path_double_free),
    ("fast_path_wrong_cache", fast_path::fast_path_wrong_cache),
    ("fast_path_interior_pointer", fast_path::fast_path_interior_pointer),
    ("kfree_double_free", fast_path::kfree_double_free),
    // Issue 11: what one client's use may cost the others.
    ("store_user_tracking_exhaustion", budgets::store_user_tracking_exhaustion),
    ("own_out_of_memory_spares_other_depots", budgets::own_out_of_memory_spares_other_depots),
    ("cache_id_reuse_after_wrap", budgets::cache_id_reuse_after_wrap),
];

/// What the runner counted.
#[derive(Default)]
struct Tally {
    attacks: u32,
    server_crashes: u32,
    cross_client_effects: u32,
    leaked_frames: u64,
    failed: Vec<String>,
    skipped: Vec<String>,
}

/// Runs one attack and the checks after it; returns the problems found.
fn run_one(world: &mut World, attack: Attack, tally: &mut Tally) -> Vec<String> {
    let mut problems = Vec::new();
    match attack(world) {
        Ok(()) => {}
        Err(e) if e.starts_with(identity::SKIPPED) => tally.skipped.push(e),
        Err(e) => problems.push(format!("attack: {e}")),
    }
    if world.crashed() {
        tally.server_crashes += 1;
        problems.push(format!("server crashed: {}", world.server.stderr_so_far()));
        return problems;
    }
    if let Err(e) = world.reclaim_attackers() {
        problems.push(format!("reclaim: {e}"));
    }
    let effects = world.cross_client_effects();
    tally.cross_client_effects += effects.len() as u32;
    problems.extend(effects.into_iter().map(|e| format!("cross-client effect: {e}")));
    match world.leaked_frames() {
        Ok(0) => {}
        Ok(n) => {
            tally.leaked_frames += n;
            problems.push(format!("{n} frames unaccounted for"));
        }
        Err(e) => problems.push(format!("accounting: {e}")),
    }
    if world.crashed() {
        tally.server_crashes += 1;
        problems.push("server crashed during the checks".into());
    }
    problems
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--worker") {
        let [_, mode, socket, name] = &args[..] else {
            return ExitCode::from(2);
        };
        let worker = match mode.as_str() {
            "impersonate" | "squat" => identity::worker,
            _ => kills::worker,
        };
        return match worker(mode, Path::new(socket), name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let selected: Vec<_> = ATTACKS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| if exact { *name == f.as_str() } else { name.contains(f.as_str()) })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let start = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut tally = Tally::default();
    let mut world = match World::start() {
        Ok(w) => Some(w),
        Err(e) => {
            println!("hostile: cannot set up the world: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, attack) in &selected {
        let w = match world.as_mut() {
            Some(w) => w,
            None => match World::start() {
                Ok(w) => world.insert(w),
                Err(e) => {
                    tally.failed.push(format!("{name}: cannot restart the world: {e}"));
                    continue;
                }
            },
        };
        tally.attacks += 1;
        let skipped = tally.skipped.len();
        let problems = run_one(w, *attack, &mut tally);
        if let Some(reason) = tally.skipped.get(skipped) {
            println!("test {name} ... {reason}");
        } else if problems.is_empty() {
            println!("test {name} ... ok");
        } else {
            println!("test {name} ... FAILED");
            for p in &problems {
                println!("    {p}");
            }
            tally.failed.push((*name).to_string());
        }
        if w.crashed() {
            world = None;
        }
    }
    let passed = (tally.attacks as usize).saturating_sub(tally.failed.len() + tally.skipped.len());
    let verdict = if tally.failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; {} ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        tally.failed.len(),
        tally.skipped.len(),
        ATTACKS.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    if let Some(w) = world {
        let (status, log) = w.server.stop();
        if !status.success() {
            tally.server_crashes += 1;
            println!("server exit {status:?}: {log}");
        }
    }
    println!(
        "hostile: attacks={} server_crashes={} cross_client_effects={} leaked_frames={}",
        tally.attacks, tally.server_crashes, tally.cross_client_effects, tally.leaked_frames
    );
    let clean = tally.failed.is_empty()
        && tally.server_crashes == 0
        && tally.cross_client_effects == 0
        && tally.leaked_frames == 0;
    if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

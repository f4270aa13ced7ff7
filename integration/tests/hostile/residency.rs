//! Attack on the host's memory grant (issue 10): a client dirties every page of its window,
//! far beyond the pages the server granted it, again and again.
//!
//! What the suite sees from the client's side, in the kernel's own figures: the `Rss` of the
//! client's mapping of its window (`/proc/self/smaps`), which falls when the server punches
//! the pages out of the memfd, and the server's `Stats` of the attacker (granted, resident,
//! violations). The attacker keeps patterned objects in its granted pages: the audit must not
//! touch them.

use std::time::Duration;

use crate::host::mapping_resident_kib;
use crate::peer::{Failure, Peer, ok};
use crate::world::World;

const PAGE: u64 = 4096;

/// How long the suite waits for the audit to act (a liveness bound, not a speed check).
const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// The attacker's figures after one round.
struct Round {
    dirty_kib: u64,
    after_kib: u64,
}

/// Dirties every byte of the window, rewrites the attacker's own objects, then makes requests
/// until the mapping's `Rss` falls (`Ok(None)` once the server closed the connection).
fn dirty_round(a: &mut Peer, objects: &[(u64, u8)], object_len: usize) -> Result<Option<Round>, Failure> {
    let window = a.connection.window_len();
    if !a.write(0, &vec![0xd1; window]) {
        return Err("cannot write the window".into());
    }
    for &(at, seed) in objects {
        a.write(at, &vec![seed; object_len]);
    }
    let base = a.connection.window_base();
    let dirty_kib = mapping_resident_kib(base);
    let start = std::time::Instant::now();
    loop {
        match a.stats() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("stats refused: {e:?}")),
            Err(_) => return Ok(None),
        }
        let after_kib = mapping_resident_kib(base);
        if after_kib < dirty_kib {
            return Ok(Some(Round { dirty_kib, after_kib }));
        }
        if start.elapsed() > AUDIT_WAIT {
            return Err(format!(
                "window still {dirty_kib} KiB resident after {AUDIT_WAIT:?} (whole window {} KiB): \
                 nothing holds the client to its grant",
                window as u64 / 1024
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Attack (issue 10): a client with a 32-page quota dirties all 64 pages of its window, round
/// after round. Each time the server punches every page it did not grant (the attacker's own
/// objects keep their bytes), counts a violation, and after the configured number of
/// violations disconnects and reclaims it, emptying the whole window even though the attacker
/// still maps it. The other clients notice nothing (the runner's checks).
pub fn dirty_whole_window(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let object_len = 256usize;
    let c = ok("create", a.create("a-dirty", object_len as u32, 0, 0))?;
    let mut objects = Vec::new();
    for i in 0..4u8 {
        let h = ok("alloc", a.alloc(c.cache))?;
        objects.push((h.0, 0x30 + i));
    }
    let window_kib = a.connection.window_len() as u64 / 1024;
    let base = a.connection.window_base();
    let mut rounds = 0u32;
    let mut figures = Vec::new();
    loop {
        rounds += 1;
        if rounds > 20 {
            return Err(format!("still connected after {} rounds of dirtying ({})", rounds - 1, figures.join("; ")));
        }
        let Some(round) = dirty_round(&mut a, &objects, object_len)? else { break };
        // The audit that punched may also have been the one that disconnected.
        let Ok(stats) = a.stats() else { break };
        let stats = stats.map_err(|e| format!("stats refused: {e:?}"))?;
        let granted_kib = u64::from(stats.client_pages) * PAGE / 1024;
        figures.push(format!("round {rounds}: {} KiB dirty -> {} KiB", round.dirty_kib, round.after_kib));
        // Held to its grant: what is left resident is what it was granted (objects' pages).
        if round.after_kib > granted_kib {
            return Err(format!(
                "round {rounds}: {} KiB resident after the audit, {granted_kib} KiB granted",
                round.after_kib
            ));
        }
        for &(at, seed) in &objects {
            if a.read(at, object_len) != Some(vec![seed; object_len]) {
                return Err(format!("round {rounds}: the audit changed the attacker's own object {at:#x}"));
            }
        }
    }
    let disconnected_after = rounds - 1;
    // Reclaimed: the server emptied the whole window although the attacker still maps it.
    let start = std::time::Instant::now();
    let mut left = mapping_resident_kib(base);
    while left > 0 && start.elapsed() < AUDIT_WAIT {
        std::thread::sleep(Duration::from_millis(10));
        left = mapping_resident_kib(base);
    }
    println!(
        "    dirty_whole_window: window {window_kib} KiB; {}; disconnected after {disconnected_after} violations; \
         {left} KiB left in the window after the disconnect",
        figures.join("; ")
    );
    if left > 0 {
        return Err(format!("{left} KiB of the disconnected attacker's window still resident"));
    }
    drop(a);
    Ok(())
}

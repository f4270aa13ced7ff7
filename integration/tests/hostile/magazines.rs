//! Attacks on the shared control region: tampered magazines, and a second thread scribbling
//! over the whole region while the first thread exchanges magazines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use protocol::control::{Magazine, MagazineRole};
use protocol::{Error, ExchangeOp, Reply, Request};

use crate::peer::{Failure, ok, refused};
use crate::world::World;

fn magazine(handles: &[u64]) -> Result<Magazine, Failure> {
    Magazine::from_handles(handles).map_err(|e| format!("{e:?}"))
}

/// Attack 4: Tampered magazines: a count above the capacity, out-of-range, misaligned, duplicated
/// and foreign handles, and one object in both the loaded and the previous magazine. Each is
/// refused and changes nothing; the honest magazine then drains.
pub fn tampered_magazine(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-1")?;
    let c = ok("create", a.create("a-mag", 64, 0, 0))?;
    let other = ok("create", a.create("a-mag-other", 64, 0, 0))?;
    let slot = c.slot.ok_or("no slot")?;
    ok("refill", a.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
    let honest = a.magazine(slot, MagazineRole::Loaded);
    let n = honest.count as usize;
    let held = &honest.handles[..n];
    let foreign = ok("alloc other", a.alloc(other.cache))?.handle;
    let victim = w.victims[0].handles()[3];
    let mut bad: Vec<(&str, Magazine, Error)> = Vec::new();
    for count in [u32::from(c.magazine_capacity) + 1, 65, 1000, u32::MAX] {
        let mut m = honest;
        m.count = count;
        bad.push(("count above capacity", m, Error::InvalidArgument));
    }
    let mut with = |what, i: usize, h: u64, e| -> Result<(), Failure> {
        let mut hs = held.to_vec();
        hs[i] = h;
        bad.push((what, magazine(&hs)?, e));
        Ok(())
    };
    with("out of the window", 1, 64 * 4096 + 64, Error::InvalidObject)?;
    with("far out of the window", 2, !7u64, Error::InvalidObject)?;
    with("misaligned", 3, held[3] + 8, Error::InvalidObject)?;
    with("flag bits", 4, held[4] | 1, Error::InvalidObject)?;
    with("duplicated", 5, held[6], Error::DoubleFree)?;
    with("another cache's object", 7, foreign.0, Error::WrongCache)?;
    with("a victim's handle", 8, victim.0, Error::InvalidObject)?;
    let free_slot_neighbour = held.iter().max().copied().unwrap_or(0) + 64;
    with("a free object", 9, free_slot_neighbour, Error::DoubleFree)?;
    for (what, m, expected) in &bad {
        a.set_magazine(slot, MagazineRole::Loaded, m);
        refused(what, a.magazine_exchange(c.cache, slot, ExchangeOp::Drain), |e| {
            e == expected
                || matches!(e, Error::InvalidObject | Error::DoubleFree | Error::WrongCache | Error::InvalidArgument)
        })?;
        refused(what, a.magazine_exchange(c.cache, slot, ExchangeOp::Flush), |_| true)?;
    }
    // The same objects in the loaded and the previous magazine: the flush is refused whole.
    a.set_magazine(slot, MagazineRole::Loaded, &honest);
    a.set_magazine(slot, MagazineRole::Previous, &magazine(&held[..2])?);
    refused("object in both magazines", a.magazine_exchange(c.cache, slot, ExchangeOp::Flush), |e| {
        *e == Error::DoubleFree
    })?;
    // Another cache's slot, a slot out of range, a refill over a non-empty magazine.
    refused("wrong slot", a.magazine_exchange(other.cache, slot, ExchangeOp::Drain), |e| *e == Error::InvalidArgument)?;
    refused("slot out of range", a.magazine_exchange(c.cache, 999, ExchangeOp::Drain), |e| {
        *e == Error::InvalidArgument
    })?;
    refused("refill over a full magazine", a.magazine_exchange(c.cache, slot, ExchangeOp::Refill), |e| {
        *e == Error::InvalidArgument
    })?;
    // Nothing changed: the honest magazines drain, and every object is accounted for.
    a.set_magazine(slot, MagazineRole::Previous, &Magazine::EMPTY);
    let s = ok("stats", a.stats())?;
    if s.live_objects != n as u64 + 1 {
        return Err(format!("{} live objects, expected {}", s.live_objects, n + 1));
    }
    ok("honest flush", a.magazine_exchange(c.cache, slot, ExchangeOp::Flush))?;
    ok("free", a.free(other.cache, foreign))?;
    let s = ok("stats", a.stats())?;
    if s.live_objects != 0 {
        return Err(format!("{} objects live after the honest flush", s.live_objects));
    }
    a.close();
    Ok(())
}

/// A thread that writes pseudo-random words over the whole control region until told to
/// stop; returns how many writes it made.
fn scribble(base: usize, len: usize, stop: Arc<AtomicBool>, writes: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while !stop.load(Ordering::Relaxed) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize % (len / 8)) * 8;
            // Mostly small counts and plausible handles, sometimes anything.
            let value = match x >> 60 {
                0..=5 => (x >> 32) % 70,
                6..=11 => (x >> 20) & 0x3_ffc0,
                _ => x,
            };
            // SAFETY: `at + 8 <= len`, and the region stays mapped until the caller joins this
            // thread (the connection that owns the mapping is dropped only after the join).
            // The server and this thread race on these bytes on purpose; volatile keeps every
            // write.
            unsafe { std::ptr::write_volatile((base + at) as *mut u64, value) };
            writes.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Attack 5: The control region rewritten while the server reads it: a second thread scribbles in a
/// loop while the first exchanges magazines, allocates and frees. Every reply is well formed,
/// the connection stays up, and on close everything goes back.
pub fn control_page_scribbled(w: &mut World) -> Result<(), Failure> {
    let mut a = w.attacker("hostile-2")?;
    let mut caches = Vec::new();
    for i in 0..3 {
        let c = ok("create", a.create(&format!("a-scribble-{i}"), 32 << i, 0, 0))?;
        caches.push((c.cache, c.slot.ok_or("no slot")?));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let scribbler = scribble(
        a.connection_mut().control_base() as usize,
        a.connection_mut().control_len(),
        stop.clone(),
        writes.clone(),
    );
    let ops = [ExchangeOp::Refill, ExchangeOp::Drain, ExchangeOp::Flush];
    let (mut exchanged, mut refused_n) = (0u32, 0u32);
    let mut result = Ok(());
    for i in 0..3000usize {
        let (cache, slot) = caches[i % caches.len()];
        let request = if i % 5 == 4 {
            Request::Alloc { cache }
        } else {
            Request::MagazineExchange { cache, slot, op: ops[(i / 3) % 3] }
        };
        match a.call(&request) {
            Ok(Reply::Exchanged { .. } | Reply::Object { .. }) => exchanged += 1,
            Ok(Reply::Error(_)) => refused_n += 1,
            Ok(other) => {
                result = Err(format!("unexpected reply {other:?}"));
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    scribbler.join().map_err(|_| "scribbler panicked")?;
    result?;
    if writes.load(Ordering::Relaxed) == 0 || exchanged == 0 || refused_n == 0 {
        return Err(format!(
            "no race: {} writes, {exchanged} served, {refused_n} refused",
            writes.load(Ordering::Relaxed)
        ));
    }
    // The attacker's accounting is still self-consistent and within its quota.
    let s = ok("stats", a.stats())?;
    if s.client_pages > s.quota_pages {
        return Err(format!("{} pages over a quota of {}", s.client_pages, s.quota_pages));
    }
    a.close();
    Ok(())
}

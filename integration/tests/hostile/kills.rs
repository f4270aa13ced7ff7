//! Attack 11: Clients killed with SIGKILL: while holding objects, with loaded magazines and a full
//! depot, and between sending a `MagazineExchange` and reading its reply. The attacker is a
//! separate process (this test binary re-run as `--worker MODE SOCKET NAME`), so the kill is a
//! real one; the runner then checks that everything it held came back.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use protocol::control::{Magazine, MagazineRole};
use protocol::{ExchangeOp, Request};

use crate::peer::{Failure, Peer, encode, ok};
use crate::world::World;

/// What a worker does before it says `ready` and waits to be killed.
pub fn worker(mode: &str, socket: &Path, name: &str) -> Result<(), Failure> {
    let mut p = Peer::connect(socket, name)?;
    match mode {
        "hold" => {
            let c = ok("create", p.create("w-hold", 256, 0, 0))?;
            for _ in 0..40 {
                let h = ok("alloc", p.alloc(c.cache))?.handle;
                p.write(h.0, &[0xab; 256]);
            }
            for size in [20_000u32, 100, 100, 3000] {
                ok("kmalloc", p.kmalloc(size))?;
            }
        }
        "loaded" => {
            let c = ok("create", p.create("w-loaded", 64, 0, 0))?;
            let slot = c.slot.ok_or("no slot")?;
            ok("refill", p.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
            let full = p.magazine(slot, MagazineRole::Loaded);
            p.set_magazine(slot, MagazineRole::Previous, &full);
            p.set_magazine(slot, MagazineRole::Loaded, &Magazine::EMPTY);
            ok("refill", p.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
            // A second cache whose depot holds a full magazine.
            let d = ok("create", p.create("w-depot", 96, 0, 0))?;
            let dslot = d.slot.ok_or("no slot")?;
            ok("refill", p.magazine_exchange(d.cache, dslot, ExchangeOp::Refill))?;
            ok("drain", p.magazine_exchange(d.cache, dslot, ExchangeOp::Drain))?;
            ok("refill", p.magazine_exchange(d.cache, dslot, ExchangeOp::Refill))?;
        }
        "exchange" => {
            let c = ok("create", p.create("w-exchange", 64, 0, 0))?;
            let slot = c.slot.ok_or("no slot")?;
            ok("refill", p.magazine_exchange(c.cache, slot, ExchangeOp::Refill))?;
            // Sent, never received: the kill lands between the request and its reply.
            let ops = [ExchangeOp::Drain, ExchangeOp::Refill, ExchangeOp::Flush];
            for op in ops.iter().cycle().take(30) {
                let bytes = encode(&Request::MagazineExchange { cache: c.cache, slot, op: *op });
                p.connection_mut().send(&bytes).map_err(|e| e.to_string())?;
            }
        }
        other => return Err(format!("unknown worker mode {other}")),
    }
    println!("ready");
    // Wait to be killed (stdin closes only if the parent dies).
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    Ok(())
}

fn spawn_worker(w: &World, mode: &str, name: &str) -> Result<Child, Failure> {
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(["--worker", mode])
        .arg(w.socket())
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let out = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(out).read_line(&mut line).map_err(|e| e.to_string())?;
    if line.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("worker {mode} did not get ready: {line:?}"));
    }
    Ok(child)
}

/// Spawns a worker, checks that it holds frames, kills it with SIGKILL; the runner then
/// checks the frames came back.
fn kill_after(w: &mut World, mode: &str, name: &str) -> Result<(), Failure> {
    let before = w.pool_free()?;
    let mut child = spawn_worker(w, mode, name)?;
    let holding = w.pool_free()?;
    child.kill().map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Err(format!("worker {mode} was not killed: {status}"));
    }
    if holding >= before {
        return Err(format!("worker {mode} held no frames ({before} → {holding} free)"));
    }
    w.reclaim_attackers()?;
    let after = w.pool_free()?;
    if after != before {
        return Err(format!("after killing worker {mode}: {after} pages free, {before} before"));
    }
    Ok(())
}

/// Attack 11a: Killed while holding objects (slab objects, small and large kmallocs).
pub fn sigkill_holding_objects(w: &mut World) -> Result<(), Failure> {
    kill_after(w, "hold", "hostile-1")
}

/// Attack 11b: Killed with both magazines of a slot loaded and a depot magazine.
pub fn sigkill_loaded_magazines(w: &mut World) -> Result<(), Failure> {
    kill_after(w, "loaded", "hostile-2")
}

/// Attack 11c: Killed between sending `MagazineExchange` requests and reading their replies, many
/// times over (the kill lands at different points of the server's work).
pub fn sigkill_mid_exchange(w: &mut World) -> Result<(), Failure> {
    for i in 0..10 {
        kill_after(w, "exchange", ["hostile-1", "hostile-2"][i % 2])?;
    }
    Ok(())
}

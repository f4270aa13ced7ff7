//! The world every attack runs in: one real `memserver` process, three victim clients that
//! hold patterned objects (plain, debug, and magazine caches), and an introspecting observer
//! (`memctl`) that checks frame accounting exactly.
//!
//! After every attack the runner asks the world three questions, each answered from real
//! state: is the server process still alive ([`World::crashed`]), are the victims' objects,
//! magazines and page counts exactly as they were ([`World::cross_client_effects`]), and how
//! many frames are unaccounted for ([`World::leaked_frames`]).

use std::path::PathBuf;
use std::time::Duration;

use protocol::control::{Magazine, MagazineRole};
use protocol::flags::{SLAB_POISON, SLAB_RED_ZONE};
use protocol::{CacheId, ExchangeOp, Handle};

use crate::host;
use crate::peer::{Failure, Peer, ok};
use memserver_system::SystemText;

/// The suite's system description: an observer, three victims, three attackers, and a second
/// introspecting task nobody runs (`inspector`, for the identity attacks). `hostile-0` may take
/// the whole pool (quota = pool); the others have small quotas.
pub fn system() -> String {
    SystemText::new(1024)
        .server("magazine_slots", 24)
        .server("hello_timeout_ms", 300)
        .table("server.audit", &[("slack_pages", AUDIT_SLACK_PAGES)])
        .introspector("memctl")
        .clients("victim", 3, 64, 128)
        .client("hostile-0", 1024, 2048)
        .client("hostile-1", 32, 64)
        .client("hostile-2", 32, 64)
        .introspector("inspector")
        .into()
}

/// `server.audit.slack_pages` of [`system`]: pages a client may keep beyond its grant.
pub const AUDIT_SLACK_PAGES: u64 = 8;

/// Names of the attacking client tasks.
pub const ATTACKERS: [&str; 3] = ["hostile-0", "hostile-1", "hostile-2"];

/// An object a victim wrote a pattern into.
struct Patterned {
    handle: Handle,
    len: usize,
    seed: u8,
}

/// A victim: its objects, its magazines as it left them, its page count.
pub struct Victim {
    pub peer: Peer,
    objects: Vec<Patterned>,
    magazines: Vec<(u16, MagazineRole, Magazine)>,
    pub caches: Vec<CacheId>,
    pages: u32,
    live: u64,
}

fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31)) ^ 0x5a
}

impl Victim {
    fn remember(&mut self, handle: Handle, len: usize) -> Result<(), Failure> {
        let seed = (self.objects.len() as u8).wrapping_mul(7).wrapping_add(self.peer.id as u8);
        let bytes: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
        if !self.peer.write(handle.0, &bytes) {
            return Err(format!("{}: object {handle:?} outside the window", self.peer.name));
        }
        self.objects.push(Patterned { handle, len, seed });
        Ok(())
    }

    fn alloc_patterned(&mut self, cache: CacheId, len: usize, n: usize) -> Result<(), Failure> {
        for _ in 0..n {
            let h = ok("victim alloc", self.peer.alloc(cache))?.handle;
            self.remember(h, len)?;
        }
        Ok(())
    }

    /// The handles of the objects it wrote.
    pub fn handles(&self) -> Vec<Handle> {
        self.objects.iter().map(|o| o.handle).collect()
    }

    /// Every difference between what this victim wrote and what is there now.
    pub fn differences(&mut self) -> Result<Vec<String>, Failure> {
        let mut out = Vec::new();
        for o in &self.objects {
            let now = self.peer.read(o.handle.0, o.len).ok_or("object outside the window")?;
            if now.iter().enumerate().any(|(i, &b)| b != pattern(o.seed, i)) {
                out.push(format!("{}: object {:#x} overwritten", self.peer.name, o.handle.0));
            }
        }
        for (slot, role, m) in &self.magazines {
            if self.peer.magazine(*slot, *role) != *m {
                out.push(format!("{}: {role:?} magazine of slot {slot} changed", self.peer.name));
            }
        }
        let s = ok("victim stats", self.peer.stats())?;
        if s.client_pages != self.pages || s.live_objects != self.live {
            out.push(format!(
                "{}: pages {} live {} (were {} and {})",
                self.peer.name, s.client_pages, s.live_objects, self.pages, self.live
            ));
        }
        Ok(out)
    }

    /// The server still serves this victim: one alloc, write, free, shrink round trip on each
    /// of its caches leaves its accounting as it was.
    pub fn probe(&mut self) -> Result<(), Failure> {
        for &cache in &self.caches {
            let h = ok("probe alloc", self.peer.alloc(cache))?.handle;
            self.peer.write(h.0, &[0xee; 8]);
            ok("probe free", self.peer.free(cache, h))?;
            ok("probe shrink", self.peer.shrink(cache))?;
        }
        Ok(())
    }

    fn settle(&mut self) -> Result<(), Failure> {
        for &cache in &self.caches {
            ok("victim shrink", self.peer.shrink(cache))?;
        }
        let s = ok("victim stats", self.peer.stats())?;
        self.pages = s.client_pages;
        self.live = s.live_objects;
        Ok(())
    }
}

/// The server and its well-behaved clients.
pub struct World {
    pub server: host::Server,
    pub victims: Vec<Victim>,
    pub observer: Peer,
    /// Free pool pages once the victims are set up (attackers hold nothing between attacks).
    baseline_free: u32,
}

impl World {
    /// Starts the server and sets up the victims.
    pub fn start() -> Result<World, Failure> {
        let server = host::start_real(&system());
        let observer = Peer::connect(&server.socket, "memctl")?;
        let mut victims = Vec::new();
        for name in ["victim-0", "victim-1", "victim-2"] {
            let peer = Peer::connect(&server.socket, name)?;
            victims.push(Victim {
                peer,
                objects: Vec::new(),
                magazines: Vec::new(),
                caches: Vec::new(),
                pages: 0,
                live: 0,
            });
        }
        // victim-0: plain objects (a partial slab left) and kmalloc.
        let v = &mut victims[0];
        let c = ok("create", v.peer.create("v0-objs", 64, 0, 0))?;
        v.caches.push(c.cache);
        v.alloc_patterned(c.cache, 64, 150)?;
        for size in [24u32, 100, 700, 3000] {
            for _ in 0..5 {
                let h = ok("kmalloc", v.peer.kmalloc(size))?.handle;
                v.remember(h, size as usize)?;
            }
        }
        // victim-1: a red-zone + poison debug cache and a plain 512-byte cache.
        let v = &mut victims[1];
        let d = ok("create debug", v.peer.create("v1-debug", 100, 0, SLAB_RED_ZONE | SLAB_POISON))?;
        let p = ok("create", v.peer.create("v1-512", 512, 0, 0))?;
        v.caches.extend([d.cache, p.cache]);
        v.alloc_patterned(d.cache, 100, 40)?;
        v.alloc_patterned(p.cache, 512, 30)?;
        // victim-2: both magazines of its slot full, and objects by IPC.
        let v = &mut victims[2];
        let m = ok("create", v.peer.create("v2-mag", 128, 0, 0))?;
        let slot = m.slot.ok_or("victim-2 got no magazine slot")?;
        v.caches.push(m.cache);
        ok("refill", v.peer.magazine_exchange(m.cache, slot, ExchangeOp::Refill))?;
        let first = v.peer.magazine(slot, MagazineRole::Loaded);
        v.peer.set_magazine(slot, MagazineRole::Previous, &first);
        v.peer.set_magazine(slot, MagazineRole::Loaded, &Magazine::EMPTY);
        ok("refill", v.peer.magazine_exchange(m.cache, slot, ExchangeOp::Refill))?;
        for role in [MagazineRole::Loaded, MagazineRole::Previous] {
            let mag = v.peer.magazine(slot, role);
            for &h in &mag.handles[..mag.count as usize] {
                v.remember(Handle(h), 128)?;
            }
            v.magazines.push((slot, role, mag));
        }
        v.alloc_patterned(m.cache, 128, 50)?;
        for v in &mut victims {
            v.settle()?;
        }
        let mut world = World { server, victims, observer, baseline_free: 0 };
        world.baseline_free = ok("observer stats", world.observer.stats())?.pool_free_pages;
        Ok(world)
    }

    /// The socket clients connect to.
    pub fn socket(&self) -> PathBuf {
        self.server.socket.clone()
    }

    /// Connects as one of the attacking client tasks.
    pub fn attacker(&self, name: &str) -> Result<Peer, Failure> {
        Peer::connect(&self.server.socket, name)
    }

    /// Whether the server process has exited.
    pub fn crashed(&mut self) -> bool {
        !matches!(self.server.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) until the server has reclaimed every attacker: a new connection under
    /// each attacker's name is admitted (the server admits a name only once its previous
    /// session is gone), then closed.
    pub fn reclaim_attackers(&self) -> Result<(), Failure> {
        for name in ATTACKERS {
            let mut last = String::new();
            let admitted = (0..1000).find_map(|_| match Peer::connect(&self.server.socket, name) {
                Ok(p) => Some(p),
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(10));
                    None
                }
            });
            admitted.ok_or_else(|| format!("{name} never readmitted: {last}"))?.close();
        }
        Ok(())
    }

    /// Every victim difference (objects, magazines, accounting) and every victim that the
    /// server no longer serves.
    pub fn cross_client_effects(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for v in &mut self.victims {
            match v.differences() {
                Ok(d) => out.extend(d),
                Err(e) => out.push(e),
            }
            if let Err(e) = v.probe() {
                out.push(format!("{}: not served: {e}", v.peer.name));
            }
        }
        out
    }

    /// Frames unaccounted for: the pool's used pages against every client's slabs in the
    /// observer's all-clients slabinfo (exact: victims hold no large kmallocs), and the free
    /// count against the baseline (attackers hold nothing now).
    pub fn leaked_frames(&mut self) -> Result<u64, Failure> {
        let stats = ok("observer stats", self.observer.stats())?;
        let rows = ok("observer slabinfo", self.observer.slabinfo(true))?;
        let in_slabs: u64 = rows.iter().map(|r| u64::from(r.num_slabs) * u64::from(r.pagesperslab)).sum();
        let used = u64::from(stats.pool_pages - stats.pool_free_pages);
        Ok(used.abs_diff(in_slabs).max(u64::from(stats.pool_free_pages).abs_diff(u64::from(self.baseline_free))))
    }

    /// Pool pages free right now.
    pub fn pool_free(&mut self) -> Result<u32, Failure> {
        Ok(ok("observer stats", self.observer.stats())?.pool_free_pages)
    }
}

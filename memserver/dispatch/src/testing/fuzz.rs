//! The bodies of the fuzz targets, shared by `cargo fuzz` (`fuzz/fuzz_targets/*.rs`) and the
//! stable proptest smoke run (`tests/fuzz_smoke.rs`): [`dispatch_target`] and
//! [`magazine_target`] turn bytes into [`Op`]s (the engine model's object ops sent as requests,
//! and the dispatch's own) and run them against a [`Server`] with three clients, checking
//! after every step:
//!
//! * nothing panics and every reply decodes;
//! * no request meets an internal error (`Error::Internal` or a platform fault): nothing a
//!   client does is the server's fault;
//! * `check_invariants()` holds and the pool's frames add up (free + every client's = total),
//!   every client within its quota;
//! * an exact model of what each client holds: no object is handed out twice, and the server
//!   only ever takes back (by `Free`, `Kfree`, `Drain`, `Flush`, `Destroy`) objects the client
//!   really held in that cache — the magazine validator's whole job;
//! * every held object of every client still carries its owner's byte pattern, so no client's
//!   operation ever touched another client's memory;
//! * every error a request gets is one the interface declares for it
//!   (`protocol::api::REQUESTS`), or the door's `PermissionDenied` for a session that is not
//!   open.
#![allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

extern crate std;

use std::collections::BTreeMap;
use std::vec::Vec;

use arbitrary::Unstructured;
use protocol::control::{self, Magazine, MagazineRole};
use protocol::{CacheId, ClientId, Error, ExchangeOp, Handle, PAGE_SIZE, PROTOCOL_VERSION, Reply, Request};

use super::ops::{Forge, HelloKind, ObjectOp, Op, WireOp};
use super::{OwnedStorage, ServerPlatform};
use crate::{ClientSpec, MagazineSizes, Phase, Server, ServerConfig, Session};
use memserver_engine::{Engine, EngineConfig};

/// Clients of the fuzzed server (ids 1..=3).
pub const CLIENTS: u8 = 3;
const WINDOW_PAGES: u32 = 32;
const QUOTAS: [u32; 3] = [12, 20, 48];
const MAX_OPS: usize = 256;
/// Handles each client freed most recently (for `FreeAgain`).
const FREED_KEPT: usize = 16;

/// The engine and dispatch settings of the fuzzed server: a pool smaller than the quotas add
/// up to, small windows, sixteen magazine slots (13 for the kmalloc classes, 3 for the
/// client's own caches) with small magazines.
pub fn configs() -> (EngineConfig, ServerConfig) {
    let mut engine = EngineConfig::new(48, u16::from(CLIENTS) + 1, WINDOW_PAGES);
    engine.max_caches_per_client = 20;
    let sizes = MagazineSizes { small: 8, medium: 4, large: 2, huge: 1 };
    (engine, ServerConfig { magazine_slots: 16, magazine_sizes: sizes })
}

/// The `slub_debug` of client `c`: the third one's kmalloc caches are red-zoned (with owner
/// records), so its kmalloc slack is red zone and `Krealloc` resizes through the server.
fn slub_debug(c: ClientId) -> protocol::slub_debug::SlubDebug {
    let spec = if c == 3 { "ZU,kmalloc-*" } else { "" };
    protocol::slub_debug::SlubDebug::parse(spec).expect("slub_debug")
}

/// What one client holds, as the model knows it.
#[derive(Default)]
struct Model {
    /// Caches it created (destroyed ones stay: their stale ids are good probes).
    caches: Vec<(CacheId, Option<u16>, u32)>,
    /// Its kmalloc caches, as the cache table describes them at `Hello` (their magazine slots
    /// are exchanged too).
    kmalloc: Vec<(CacheId, Option<u16>, u32)>,
    /// The token of the last two-phase shrink plan of each cache.
    plans: BTreeMap<CacheId, u32>,
    /// Held objects: handle → (cache, or `None` for kmalloc; object size).
    held: BTreeMap<u64, (Option<CacheId>, u32)>,
    /// Handles it freed most recently, newest last.
    freed: Vec<u64>,
}

/// The server under test plus the model.
pub struct FuzzHarness<'a> {
    server: Server<'a, ServerPlatform>,
    models: [Model; CLIENTS as usize],
}

fn pattern(client: ClientId) -> u8 {
    0x40 + client as u8
}

/// Up to [`MAX_OPS`] ops from `data`.
pub fn ops(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match u.arbitrary::<Op>() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// Runs a fresh server over `storage` and `sessions` through `body`.
fn with_harness(body: impl FnOnce(&mut FuzzHarness<'_>)) {
    let (engine_config, server_config) = configs();
    let mut storage = OwnedStorage::new(&engine_config);
    let mut sessions = std::vec![Session::VACANT; usize::from(CLIENTS) + 1];
    let engine = Engine::new(engine_config, storage.storage(), ServerPlatform::default()).expect("engine");
    let server = Server::new(engine, &mut sessions, server_config).expect("server");
    let mut h = FuzzHarness { server, models: Default::default() };
    for c in 1..=ClientId::from(CLIENTS) {
        h.connect(c, HelloKind::Honest);
    }
    body(&mut h);
    for c in 1..=ClientId::from(CLIENTS) {
        h.server.disconnect(c);
    }
    let pool = h.server.engine().pool_stats();
    assert_eq!(pool.free_frames, pool.total_frames, "frames leaked after every client left");
    h.server.engine().check_invariants().expect("invariants at the end");
}

/// The dispatch target: any op as any client.
pub fn dispatch_target(data: &[u8]) {
    let program = ops(data);
    with_harness(|h| {
        for op in &program {
            h.apply(ClientId::from(op.client() % CLIENTS) + 1, op);
        }
    });
}

/// The magazine-validator target: client 1 with three magazine caches (one refilled) and a
/// neighbour holding objects; the magazine ops of `data`, all as client 1.
pub fn magazine_target(data: &[u8]) {
    let program: Vec<Op> = ops(data).into_iter().filter(Op::is_magazine_op).collect();
    let create = |client, name, size| {
        Op::Object(ObjectOp::Create { client, name, size, align: 0, flags: 0, ctor: false, dtor: false })
    };
    let alloc = |client, cache| Op::Object(ObjectOp::Alloc { client, cache, zero: false });
    with_harness(|h| {
        for (name, size) in [(0u8, 64u32), (1, 200), (2, 1000)] {
            h.apply(1, &create(0, name, size));
        }
        h.apply(1, &Op::Wire(WireOp::Exchange { client: 0, cache: 0, slot: None, op: 0 }));
        h.apply(1, &alloc(0, 1));
        h.apply(2, &create(1, 0, 64));
        h.apply(2, &alloc(1, 0));
        for op in &program {
            h.apply(1, op);
        }
    });
}

impl FuzzHarness<'_> {
    fn model(&mut self, c: ClientId) -> &mut Model {
        &mut self.models[usize::from(c) - 1]
    }

    /// Sends `bytes` as `c`; the decoded reply (it must decode).
    fn send(&mut self, c: ClientId, bytes: &[u8]) -> Reply {
        let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
        let n = self.server.dispatch(c, bytes, &mut buf);
        protocol::decode_reply(&buf[..n]).expect("every reply decodes")
    }

    fn connect(&mut self, c: ClientId, hello: HelloKind) {
        if self.server.session(c).is_none() {
            let size = self.server.control_size(WINDOW_PAGES);
            self.server.engine_mut().platform_mut().create_control(c, size);
            let spec = ClientSpec {
                name: protocol::client_name(&std::format!("fuzz-{c}")).unwrap(),
                window_pages: WINDOW_PAGES,
                quota_pages: QUOTAS[usize::from(c) - 1],
                introspect: c == 3,
                slub_debug: slub_debug(c),
            };
            self.server.admit(c, &spec).expect("admit a vacant client");
        }
        let (version, name) = match hello {
            HelloKind::Honest => (PROTOCOL_VERSION, std::format!("fuzz-{c}")),
            HelloKind::Version(v) => (v, std::format!("fuzz-{c}")),
            HelloKind::OtherName => (PROTOCOL_VERSION, std::format!("fuzz-{}", c % 3 + 1)),
        };
        let request = Request::Hello { version, client_name: protocol::client_name(&name).unwrap() };
        self.request(c, request);
    }

    fn cache(&self, c: ClientId, i: u8) -> (CacheId, Option<u16>, u32) {
        let m = &self.models[usize::from(c) - 1];
        if i % 8 == 6 && !m.kmalloc.is_empty() {
            return m.kmalloc[usize::from(i / 8) % m.kmalloc.len()];
        }
        if i % 8 == 7 || m.caches.is_empty() {
            return (CacheId(u32::from(i / 8)), Some(u16::from(i % 4)), 64);
        }
        m.caches[usize::from(i) % m.caches.len()]
    }

    /// The kmalloc caches the server's cache table lists for `c` (read at `Hello`, as the
    /// client library reads them).
    fn kmalloc_caches(&mut self, c: ClientId) -> Vec<(CacheId, Option<u16>, u32)> {
        let layout = self.server.control_layout(WINDOW_PAGES);
        let region = self.server.engine_mut().platform_mut().control_bytes(c);
        (0..layout.caches)
            .filter_map(|i| control::tables::read_cache_entry(region.as_slice(), &layout, i).ok())
            .filter(|e| e.cache != 0 && e.kmalloc_class != control::NOT_KMALLOC)
            .map(|e| (CacheId(e.cache), (e.slot != control::NO_SLOT).then_some(e.slot), e.object_size))
            .collect()
    }

    /// The held object `pick` selects (modulo what `client` holds), with its cache.
    fn held(&self, client: ClientId, pick: u16) -> Option<(u64, Option<CacheId>)> {
        let held = &self.models[usize::from(client) - 1].held;
        held.iter().nth(usize::from(pick) % held.len().max(1)).map(|(&h, &(cache, _))| (h, cache))
    }

    /// A held object's handle, or a made-up one when the client holds none.
    fn held_or_any(&self, client: ClientId, pick: u16) -> u64 {
        self.held(client, pick).map_or(u64::from(pick) * 64, |(h, _)| h)
    }

    fn forge(&self, c: ClientId, pick: u8, forge: Forge) -> Handle {
        let pick = u16::from(pick);
        Handle(match forge {
            Forge::Held => self.held_or_any(c, pick),
            Forge::Shifted(d) => self.held_or_any(c, pick).wrapping_add_signed(i64::from(d)),
            Forge::Foreign => self.held_or_any(c % 3 + 1, pick),
            Forge::Raw(x) => x,
        })
    }

    fn magazine(&mut self, c: ClientId, slot: u16, role: MagazineRole) -> Magazine {
        let region = self.server.engine_mut().platform_mut().control_bytes(c);
        control::read_magazine(region.as_slice(), slot, role).unwrap_or(Magazine::EMPTY)
    }

    fn fill(&mut self, c: ClientId, h: u64, size: u32) {
        self.server.engine_mut().platform_mut().windows.fill_bytes(c, h, size as usize, pattern(c));
    }

    /// A new object: never one the client already holds.
    fn handed_out(&mut self, c: ClientId, h: u64, cache: Option<CacheId>, size: u32) {
        let old = self.model(c).held.insert(h, (cache, size));
        assert!(old.is_none(), "client {c}: object {h:#x} handed out twice ({old:?})");
        assert!(h + u64::from(size) <= u64::from(WINDOW_PAGES) * PAGE_SIZE as u64, "object {h:#x} outside the window");
        self.fill(c, h, size);
    }

    /// An object taken back: the client must have held it, in `cache` (`None`: `kfree`, which
    /// takes an object of any of the client's caches back to its cache).
    fn taken_back(&mut self, c: ClientId, h: u64, cache: Option<CacheId>, what: &str) {
        match self.model(c).held.remove(&h) {
            Some(_) if cache.is_none() => {}
            Some((held_in, _)) => assert!(held_in == cache || held_in.is_none(), "{what}: {h:#x} of {held_in:?}"),
            None => panic!("client {c}: {what} took back {h:#x}, which it did not hold"),
        }
    }

    /// One request, with the model's bookkeeping and oracles.
    fn request(&mut self, c: ClientId, request: Request) -> Reply {
        let bytes = encode(&request);
        let slot_of = |r: &Request| match *r {
            Request::MagazineExchange { slot, .. } => Some(slot),
            _ => None,
        };
        let before: Option<(Magazine, Magazine)> = match &request {
            Request::MagazineExchange { slot, .. } => {
                Some((self.magazine(c, *slot, MagazineRole::Loaded), self.magazine(c, *slot, MagazineRole::Previous)))
            }
            Request::Destroy { cache } => self
                .model(c)
                .caches
                .iter()
                .find(|x| x.0 == *cache)
                .and_then(|x| x.1)
                .map(|s| (self.magazine(c, s, MagazineRole::Loaded), self.magazine(c, s, MagazineRole::Previous))),
            _ => None,
        };
        let was_open = self.server.session(c).is_some_and(|s| s.phase == Phase::Open);
        let reply = self.send(c, &bytes);
        if let Reply::Error(e) = &reply {
            check_declared(&request, e, was_open);
        }
        if trace() {
            std::eprintln!("client {c}: {request:?} -> {reply:?}");
        }
        let size_of =
            |m: &Model, cache: CacheId| m.caches.iter().chain(&m.kmalloc).find(|x| x.0 == cache).map_or(8, |x| x.2);
        match (&request, &reply) {
            (Request::Hello { .. }, Reply::Hello(_)) => {
                *self.model(c) = Model::default();
                let kmalloc = self.kmalloc_caches(c);
                assert_eq!(kmalloc.len(), 13, "client {c}: the cache table lists {} kmalloc caches", kmalloc.len());
                self.model(c).kmalloc = kmalloc;
            }
            (Request::Goodbye, Reply::Done) => *self.model(c) = Model::default(),
            (Request::CacheCreate { size, .. }, Reply::Created(protocol::Created { cache, slot, .. })) => {
                self.model(c).caches.push((*cache, *slot, *size));
            }
            (Request::Alloc { cache } | Request::Zalloc { cache }, Reply::Object(protocol::Object { handle, .. })) => {
                let size = size_of(self.model(c), *cache);
                self.handed_out(c, handle.0, Some(*cache), size);
            }
            (Request::Kmalloc { size }, Reply::Object(protocol::Object { handle, .. })) => {
                self.handed_out(c, handle.0, None, *size)
            }
            (Request::Free { cache, handle }, Reply::Done) => {
                self.taken_back(c, handle.0, Some(*cache), "free");
                self.freed(c, handle.0);
            }
            (Request::Kfree { handle }, Reply::Done) => {
                self.taken_back(c, handle.0, None, "kfree");
                self.freed(c, handle.0);
            }
            (Request::Krealloc { handle, size, .. }, Reply::Object(protocol::Object { handle: new, .. })) => {
                // In place (the object stays in its cache, whichever it is), or moved (a new
                // kmalloc object; the old one is back): the client must have held it.
                let cache = self.model(c).held.get(&handle.0).and_then(|&(cache, _)| cache);
                self.taken_back(c, handle.0, None, "krealloc");
                if new == handle {
                    self.handed_out(c, new.0, cache, *size);
                } else {
                    self.freed(c, handle.0);
                    self.handed_out(c, new.0, None, *size);
                }
            }
            (Request::ShrinkBegin { cache }, Reply::ShrinkPlan(plan)) => {
                assert!(plan.slabs.len() <= protocol::SHRINK_PLAN_SLABS && plan.token != 0);
                // Only empty slabs: none holds an object the client has.
                for slab in &plan.slabs {
                    let end = slab.0 + PAGE_SIZE as u64;
                    let held = self.model(c).held.range(slab.0..end).next().map(|(&h, _)| h);
                    assert!(held.is_none(), "a named slab at {:#x} holds object {held:#x?}", slab.0);
                }
                self.model(c).plans.insert(*cache, plan.token);
            }
            (Request::MagazineExchange { cache, op, .. }, Reply::Exchanged(protocol::Exchanged { count, .. })) => {
                let (loaded, previous) = before.unwrap();
                match op {
                    ExchangeOp::Refill => {
                        let slot = slot_of(&request).unwrap();
                        let after = self.magazine(c, slot, MagazineRole::Loaded);
                        assert_eq!(after.count, u32::from(*count), "refill count differs from the region");
                        let size = size_of(self.model(c), *cache);
                        for &h in &after.handles[..usize::from(*count)] {
                            self.handed_out(c, h, Some(*cache), size);
                        }
                    }
                    ExchangeOp::Drain | ExchangeOp::Flush => {
                        let mut back: Vec<u64> =
                            loaded.handles.get(..loaded.count as usize).expect("count > 64").to_vec();
                        if *op == ExchangeOp::Flush {
                            back.extend_from_slice(
                                previous.handles.get(..previous.count as usize).expect("count > 64"),
                            );
                        }
                        for h in back {
                            self.taken_back(c, h, Some(*cache), "magazine");
                        }
                    }
                }
            }
            (Request::Destroy { cache }, Reply::Done) => {
                let in_magazines: Vec<u64> = before.map_or(Vec::new(), |(l, p)| {
                    l.handles[..(l.count as usize).min(64)]
                        .iter()
                        .chain(&p.handles[..(p.count as usize).min(64)])
                        .copied()
                        .collect()
                });
                let live: Vec<u64> =
                    self.model(c).held.iter().filter(|(_, v)| v.0 == Some(*cache)).map(|(&h, _)| h).collect();
                for h in live {
                    assert!(in_magazines.contains(&h), "destroy of {cache:?} with live object {h:#x}");
                    self.model(c).held.remove(&h);
                }
            }
            (_, Reply::Error(_)) => {}
            _ => {}
        }
        reply
    }

    /// Remembers a handle `c` freed.
    fn freed(&mut self, c: ClientId, h: u64) {
        let freed = &mut self.model(c).freed;
        if freed.len() == FREED_KEPT {
            freed.remove(0);
        }
        freed.push(h);
    }

    /// Runs one op as client `c` and checks everything.
    pub fn apply(&mut self, c: ClientId, op: &Op) {
        match op {
            Op::Object(op) => self.object(c, op),
            Op::Wire(op) => self.wire(c, op),
        }
        self.check();
    }

    /// An object-lifecycle op, as the requests it corresponds to.
    fn object(&mut self, c: ClientId, op: &ObjectOp) {
        let request = match *op {
            ObjectOp::Create { name, size, align, flags, ctor, dtor, .. } => {
                let name = protocol::cache_name(&std::format!("f{}", name % 6)).unwrap();
                Request::CacheCreate { name, size, align, flags, ctor, dtor }
            }
            ObjectOp::Krealloc { pick, size, zero, .. } => {
                let Some((h, _)) = self.held(c, pick) else { return };
                Request::Krealloc { handle: Handle(h), size, zero }
            }
            ObjectOp::Validate { cache, .. } => {
                let (cache, ..) = self.cache(c, cache);
                let name = self.server.engine().cache_info(c, cache).map_or_else(
                    |_| protocol::cache_name("none").unwrap(),
                    |i| protocol::cache_name(i.name.as_str()).unwrap(),
                );
                Request::Validate { client: c, name }
            }
            ObjectOp::ShrinkBegin { cache, .. } => Request::ShrinkBegin { cache: self.cache(c, cache).0 },
            ObjectOp::ShrinkCommit { cache, forged, .. } => {
                let cache = self.cache(c, cache).0;
                let token = self.models[usize::from(c) - 1].plans.get(&cache).copied().unwrap_or(1);
                Request::ShrinkCommit { cache, token: token.wrapping_add(u32::from(forged)) }
            }
            ObjectOp::Alloc { cache, zero, .. } => {
                let cache = self.cache(c, cache).0;
                if zero { Request::Zalloc { cache } } else { Request::Alloc { cache } }
            }
            ObjectOp::Free { pick, .. } | ObjectOp::Kfree { pick, .. } => {
                let Some((h, cache)) = self.held(c, pick) else { return };
                match (op, cache) {
                    (ObjectOp::Free { .. }, Some(cache)) => Request::Free { cache, handle: Handle(h) },
                    _ => Request::Kfree { handle: Handle(h) },
                }
            }
            ObjectOp::FreeWrongCache { pick, cache, .. } => {
                Request::Free { cache: self.cache(c, cache).0, handle: Handle(self.held_or_any(c, pick)) }
            }
            ObjectOp::FreeBogus { cache, pick, delta, foreign, kfree, .. } => {
                let owner = if foreign { c % 3 + 1 } else { c };
                let handle = Handle(self.held_or_any(owner, pick).wrapping_add(delta));
                if kfree { Request::Kfree { handle } } else { Request::Free { cache: self.cache(c, cache).0, handle } }
            }
            ObjectOp::FreeAgain { pick, .. } => {
                let freed = &self.models[usize::from(c) - 1].freed;
                let Some(&h) = freed.get(usize::from(pick) % freed.len().max(1)) else { return };
                Request::Kfree { handle: Handle(h) }
            }
            ObjectOp::Destroy { cache, .. } => Request::Destroy { cache: self.cache(c, cache).0 },
            ObjectOp::Shrink { cache, .. } => Request::Shrink { cache: self.cache(c, cache).0 },
            ObjectOp::Kmalloc { size, .. } => Request::Kmalloc { size },
            // A bulk allocation is what a refill does, a bulk free what a drain (or, with the
            // duplicate, a flush of both magazines) does.
            ObjectOp::AllocBulk { cache, .. } => {
                let (cache, slot, _) = self.cache(c, cache);
                Request::MagazineExchange { cache, slot: slot.unwrap_or(0), op: ExchangeOp::Refill }
            }
            ObjectOp::FreeBulk { n, dup, .. } => {
                let Some((_, Some(cache))) = self.held(c, u16::from(n)) else { return };
                let Some(&(_, slot, _)) = self.models[usize::from(c) - 1].caches.iter().find(|x| x.0 == cache) else {
                    return;
                };
                let op = if dup { ExchangeOp::Flush } else { ExchangeOp::Drain };
                Request::MagazineExchange { cache, slot: slot.unwrap_or(0), op }
            }
            ObjectOp::Reclaim { .. } => {
                self.disconnect(c);
                return self.connect(c, HelloKind::Honest);
            }
        };
        _ = self.request(c, request);
    }

    /// The client vanishes: everything it held goes back.
    fn disconnect(&mut self, c: ClientId) {
        self.server.disconnect(c);
        *self.model(c) = Model::default();
    }

    /// An op only the dispatch layer sees.
    fn wire(&mut self, c: ClientId, op: &WireOp) {
        match op {
            WireOp::Connect { hello, .. } => self.connect(c, *hello),
            WireOp::Disconnect { .. } => self.disconnect(c),
            WireOp::Goodbye { .. } => _ = self.request(c, Request::Goodbye),
            WireOp::Exchange { cache, slot, op, .. } => {
                let (cache, own_slot, _) = self.cache(c, *cache);
                let slot = slot.map(u16::from).or(own_slot).unwrap_or(0);
                let op = [ExchangeOp::Refill, ExchangeOp::Drain, ExchangeOp::Flush][usize::from(op % 3)];
                _ = self.request(c, Request::MagazineExchange { cache, slot, op });
            }
            WireOp::Tamper { slot, previous, count, handles, .. } => {
                let mut m = Magazine::EMPTY;
                for (i, (pick, forge)) in handles.iter().take(control::MAGAZINE_MAX).enumerate() {
                    m.handles[i] = self.forge(c, *pick, *forge).0;
                }
                m.count = if *count < 200 { u32::from(*count) % 70 } else { u32::from(*count) << 20 };
                let role = if *previous { MagazineRole::Previous } else { MagazineRole::Loaded };
                let region = self.server.engine_mut().platform_mut().control_bytes(c);
                _ = control::write_magazine(region.as_mut_slice(), u16::from(slot % 4), role, &m);
            }
            WireOp::ControlWrite { offset, value, .. } => {
                let region = self.server.engine_mut().platform_mut().control_bytes(c);
                let at = usize::from(*offset) % region.len().max(1);
                let end = (at + 8).min(region.len());
                region[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
            }
            WireOp::ObjectWrite { pick, offset, byte, .. } => {
                let h = self.forge(c, *pick, Forge::Held).0.wrapping_add_signed(i64::from(*offset));
                if h < u64::from(WINDOW_PAGES) * PAGE_SIZE as u64 {
                    self.server.engine_mut().platform_mut().windows.fill_bytes(c, h, 1, *byte);
                }
                let held: Vec<(u64, u32)> = self.model(c).held.iter().map(|(&h, v)| (h, v.1)).collect();
                for (h, size) in held {
                    self.fill(c, h, size);
                }
            }
            WireOp::Query { kind, cache, arg, .. } => {
                let cache = self.cache(c, *cache).0;
                let handle = self.forge(c, *arg as u8, Forge::Held);
                _ = self.request(
                    c,
                    match kind % 4 {
                        0 => Request::CacheInfo { cache },
                        1 => Request::SlabInfo { page: arg % 3, all_clients: arg & 0x100 != 0 },
                        2 => Request::ObjectOwner { handle },
                        _ => Request::Stats,
                    },
                );
            }
            WireOp::Raw { bytes, .. } => match protocol::decode_request(bytes) {
                Ok(request) => _ = self.request(c, request),
                Err(_) => match self.send(c, bytes) {
                    Reply::Error(Error::Malformed | Error::PermissionDenied) => {}
                    other => panic!("undecodable request answered with {other:?}"),
                },
            },
        }
    }

    /// Invariants, frame accounting, quotas and every client's object patterns.
    fn check(&self) {
        let engine = self.server.engine();
        if let Err(v) = engine.check_invariants() {
            panic!("invariant violated: {v:?}");
        }
        // Nothing a client does is the server's fault.
        let internal = &engine.platform().internal_errors;
        assert!(internal.is_empty(), "internal errors: {internal:?}");
        let pool = engine.pool_stats();
        let mut used = 0;
        for c in 1..=ClientId::from(CLIENTS) {
            if let Ok(s) = engine.client_stats(c) {
                assert!(s.frames_used <= s.quota_frames, "client {c} over its quota");
                used += s.frames_used;
            }
            for (&h, &(_, size)) in &self.models[usize::from(c) - 1].held {
                let mut first = [0u8; 8];
                let n = first.len().min(size as usize);
                first[..n].copy_from_slice(&engine.platform().windows.bytes(c, h, n));
                let mut last = [0u8; 1];
                last.copy_from_slice(&engine.platform().windows.bytes(c, h + u64::from(size.max(1) - 1), 1));
                let want = pattern(c);
                assert!(first[..n].iter().chain(&last).all(|&b| b == want), "client {c}: object {h:#x} changed");
            }
        }
        assert_eq!(used + pool.free_frames + pool.quarantined_frames, pool.total_frames, "frames unaccounted for");
        engine.platform().windows.assert_agrees_with(engine);
    }
}

/// An error reply to a decoded `request` is one the interface declares for it, or the door's
/// `PermissionDenied` while the session is not open (then no handler may have run: only
/// `Hello` gets past the door).
fn check_declared(request: &Request, error: &Error, was_open: bool) {
    let info = request.info();
    if !was_open && !matches!(request, Request::Hello { .. }) {
        assert_eq!(*error, Error::PermissionDenied, "{} before Hello got past the door", info.name);
        return;
    }
    assert!(
        info.declares(error),
        "{} returned {error:?}, which the interface does not declare for it (declared: {:?})",
        info.name,
        info.errors
    );
}

/// Whether `MEMSERVER_FUZZ_TRACE` is set: every request and reply goes to stderr (to read a
/// crash input's story).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("MEMSERVER_FUZZ_TRACE").is_some())
}

/// Encodes a request (every request fits a message).
pub fn encode(request: &Request) -> Vec<u8> {
    let mut buf = [0u8; protocol::MAX_MESSAGE_BYTES];
    protocol::encode_request(request, &mut buf).expect("every request fits").to_vec()
}

//! Model-based testing: a [`Harness`] that runs an [`Op`] (the one op enum, [`super::ops`],
//! which the dispatch's fuzz targets run too) against the engine and a simple reference model
//! that predicts every result exactly, checking the invariants and the object memory (a byte
//! pattern per allocation) after every step. Mismatches panic (proptest reports and shrinks
//! them).
#![allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used)]

extern crate std;

use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec;

use protocol::flags::{SLAB_ALL, SLAB_RED_ZONE, SLAB_STORE_USER};
use protocol::{CacheId, ClientId, Error, Handle, PAGE_SIZE};

pub use super::ops::{MODEL_FLAGS, Op};
use super::{OwnedStorage, VecPlatform, state_digest};
use crate::{Engine, EngineConfig};

#[derive(Clone, Debug)]
struct MCache {
    id: CacheId,
    name: String,
    ctor: bool,
    kmalloc: bool,
    dtor: bool,
    /// The pending two-phase shrink: its token and the slabs it parked.
    pending: Option<(u32, u32)>,
}

#[derive(Clone, Copy, Debug)]
struct MObj {
    /// `None`: a large kmalloc.
    cache: Option<CacheId>,
    kmalloc: bool,
    size: u32,
    pattern: u8,
}

#[derive(Debug, Default)]
struct MClient {
    caches: Vec<MCache>,
    stale: Vec<CacheId>,
    live: BTreeMap<u64, MObj>,
    freed: Vec<u64>,
}

enum Pick<'a> {
    Live(&'a MCache),
    Stale(CacheId),
    None,
}

/// The engine under test plus the reference model.
pub struct Harness<'a> {
    pub engine: Engine<'a, VecPlatform>,
    clients: Vec<MClient>,
    quotas: Vec<u32>,
    window: u32,
    counter: u8,
    /// Error codes the run has met (to prove the failure paths are reached).
    pub seen: std::collections::BTreeSet<u16>,
}

/// The configuration the model runs with: a small pool, 3 clients, small windows.
pub fn model_config() -> (EngineConfig, [u32; 3]) {
    (EngineConfig::new(48, 3, 64), [12, 16, 24])
}

impl<'a> Harness<'a> {
    /// Attach the clients of [`model_config`] to an engine over `storage` (the last one with
    /// red-zoned kmalloc caches, `slub_debug = "ZU,kmalloc-*"`, so its kmalloc slack is red zone).
    pub fn new(storage: &'a mut OwnedStorage) -> Self {
        let (config, quotas) = model_config();
        let mut engine = storage.engine(config);
        let mut clients = Vec::new();
        for (c, &q) in quotas.iter().enumerate() {
            let kmalloc_flags = if c + 1 == quotas.len() { [SLAB_RED_ZONE | SLAB_STORE_USER; 13] } else { [0; 13] };
            engine.client_attach_with(c as ClientId, config.max_window_pages, q, kmalloc_flags).unwrap();
            clients.push(MClient::default());
        }
        let mut h = Harness {
            engine,
            clients,
            quotas: quotas.to_vec(),
            window: config.max_window_pages,
            counter: 0,
            seen: Default::default(),
        };
        for c in 0..quotas.len() {
            h.refresh_kmalloc(c);
        }
        h
    }

    fn refresh_kmalloc(&mut self, c: usize) {
        let ids: Vec<_> = self.engine.cache_ids(c as ClientId).collect();
        for id in ids {
            let i = self.engine.cache_info(c as ClientId, id).unwrap();
            let name = i.name.as_str().into();
            self.clients[c].caches.push(MCache { id, name, ctor: false, kmalloc: true, dtor: false, pending: None });
        }
    }

    /// Odd `i`: one of the client's own caches if it has any; even: any live or recently
    /// stale cache (kmalloc ones included).
    fn pick_cache(&self, c: usize, i: u8) -> Pick<'_> {
        let m = &self.clients[c];
        let own: Vec<&MCache> = m.caches.iter().filter(|x| !x.kmalloc).collect();
        if i % 2 == 1 && !own.is_empty() {
            return Pick::Live(own[usize::from(i / 2) % own.len()]);
        }
        let n = m.caches.len() + m.stale.len().min(4);
        if n == 0 {
            return Pick::None;
        }
        let i = usize::from(i) % n;
        match m.caches.get(i) {
            Some(x) => Pick::Live(x),
            None => Pick::Stale(m.stale[m.stale.len() - 1 - (i - m.caches.len())]),
        }
    }

    fn pick_live(&self, c: usize, pick: u16) -> Option<(u64, MObj)> {
        let live = &self.clients[c].live;
        if live.is_empty() {
            return None;
        }
        live.iter().nth(usize::from(pick) % live.len()).map(|(&h, &o)| (h, o))
    }

    /// Record a new object: aligned, inside the window, overlapping no live object; then
    /// fill it with a fresh pattern.
    fn add_live(&mut self, c: usize, h: Handle, obj: MObj) {
        let end = h.0 + u64::from(obj.size);
        assert!(end <= u64::from(self.window) * PAGE_SIZE as u64, "object {h:?} outside the window");
        assert_eq!(h.0 % 8, 0, "object {h:?} not 8-aligned");
        if let Some(id) = obj.cache {
            let a = self.engine.cache_info(c as ClientId, id).unwrap().align;
            assert_eq!(h.0 % u64::from(a), 0, "object {h:?} not {a}-aligned");
        }
        let live = &self.clients[c].live;
        if let Some((&p, prev)) = live.range(..=h.0).next_back() {
            assert!(p + u64::from(prev.size) <= h.0, "object {h:?} overlaps live {p:#x}");
        }
        if let Some((&n, _)) = live.range(h.0..).next() {
            assert!(end <= n, "object {h:?} overlaps live {n:#x}");
        }
        self.counter = self.counter.wrapping_add(1);
        let obj = MObj { pattern: self.counter, ..obj };
        self.engine.platform_mut().fill_bytes(c as ClientId, h.0, obj.size as usize, obj.pattern);
        self.clients[c].live.insert(h.0, obj);
    }

    fn verify_pattern(&self, c: usize, h: u64, o: &MObj) {
        let bytes = self.engine.platform().bytes(c as ClientId, h, o.size as usize);
        assert!(bytes.iter().all(|&b| b == o.pattern), "object {h:#x} of client {c} was overwritten (shared?)");
    }

    fn remove_live(&mut self, c: usize, h: u64) {
        let o = self.clients[c].live.remove(&h).unwrap();
        let _ = o;
        let freed = &mut self.clients[c].freed;
        freed.push(h);
        if freed.len() > 32 {
            freed.remove(0);
        }
    }

    /// A failed allocation: the error is one the situation allows, and nothing changed.
    fn check_alloc_failure(&mut self, c: usize, e: Error, pages: u32, before: &str) {
        self.seen.insert(e.code() as u16);
        let s = self.engine.client_stats(c as ClientId).unwrap();
        match e {
            Error::QuotaExceeded => assert!(s.frames_used + pages > s.quota_frames, "spurious QuotaExceeded"),
            Error::OutOfMemory => assert!(s.frames_used + pages <= s.quota_frames, "OOM where quota was hit"),
            other => panic!("allocation failed with {other:?}"),
        }
        assert_eq!(state_digest(&self.engine), before, "failed allocation changed state");
    }

    /// Run one op and check it against the model.
    pub fn apply(&mut self, op: &Op) {
        let before = state_digest(&self.engine);
        let nc = self.clients.len();
        match *op {
            Op::Create { client, name, size, align, flags, ctor, dtor } => {
                let c = usize::from(client) % nc;
                let name = format!("c{}", name % 8);
                let res = self.engine.cache_create_with_dtor(c as ClientId, &name, size, align, flags, ctor, dtor);
                let m = &self.clients[c];
                let valid = (1..=65536).contains(&size)
                    && (align == 0 || (align.is_power_of_two() && align <= 4096))
                    && flags & !SLAB_ALL == 0;
                let taken = m.caches.iter().any(|x| x.name == name);
                match res {
                    Ok(id) => {
                        assert!(valid && !taken, "create {name} {size} {align} should fail");
                        self.clients[c].caches.push(MCache { id, name, ctor, kmalloc: false, dtor, pending: None });
                    }
                    Err(Error::InvalidArgument) => assert!(!valid),
                    Err(Error::NameTaken) => assert!(valid && taken),
                    Err(Error::OutOfMemory) => assert!(m.caches.len() >= 64),
                    Err(e) => panic!("create: {e:?}"),
                }
            }
            Op::Alloc { client, cache, zero } => {
                let c = usize::from(client) % nc;
                let (id, ctor, kmalloc, parked) = match self.pick_cache(c, cache) {
                    Pick::Live(m) => (m.id, m.ctor, m.kmalloc, m.pending.map_or(0, |(_, slabs)| slabs)),
                    Pick::Stale(id) => {
                        assert_eq!(self.engine.cache_alloc(c as ClientId, id), Err(Error::NoSuchCache));
                        return self.check_all();
                    }
                    Pick::None => return,
                };
                let info = self.engine.cache_info(c as ClientId, id).unwrap();
                // Objects of parked slabs are out of use.
                let free = info.num_objs - info.active_objs - parked * info.objects_per_slab;
                let res = if zero {
                    self.engine.cache_zalloc(c as ClientId, id)
                } else {
                    self.engine.cache_alloc(c as ClientId, id)
                };
                match res {
                    Ok(a) => {
                        if zero {
                            let b = self.engine.platform().bytes(c as ClientId, a.handle.0, info.size as usize);
                            assert!(b.iter().all(|&x| x == 0), "zalloc not zeroed");
                        }
                        if free > 0 {
                            // A free object existed: no new slab was needed.
                            assert_eq!(self.engine.cache_info(c as ClientId, id).unwrap().num_slabs, info.num_slabs);
                        }
                        self.add_live(c, a.handle, MObj { cache: Some(id), kmalloc, size: info.size, pattern: 0 });
                    }
                    Err(Error::InvalidArgument) if zero && ctor => assert_eq!(state_digest(&self.engine), before),
                    Err(e) => {
                        assert_eq!(free, 0, "alloc failed with free objects: {e:?}");
                        self.check_alloc_failure(c, e, info.pages_per_slab + info.tracking_frames_per_slab, &before);
                    }
                }
            }
            Op::Free { client, pick } => {
                let c = usize::from(client) % nc;
                let Some((h, o)) = self.pick_live(c, pick) else { return };
                self.verify_pattern(c, h, &o);
                match o.cache {
                    Some(id) => self.engine.cache_free(c as ClientId, id, Handle(h)).unwrap(),
                    None => self.engine.kfree(c as ClientId, Handle(h)).unwrap(),
                }
                self.remove_live(c, h);
            }
            Op::FreeWrongCache { client, pick, cache } => {
                let c = usize::from(client) % nc;
                let Some((h, o)) = self.pick_live(c, pick) else { return };
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                if Some(m.id) == o.cache {
                    return;
                }
                let want = if o.cache.is_some() { Error::WrongCache } else { Error::InvalidObject };
                assert_eq!(self.engine.cache_free(c as ClientId, m.id, Handle(h)), Err(want));
                self.seen.insert(want.code() as u16);
                assert_eq!(state_digest(&self.engine), before);
            }
            Op::FreeBogus { client, cache, pick, delta, foreign, kfree } => {
                let c = usize::from(client) % nc;
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                let id = m.id;
                let owner = if foreign { (c + 1) % nc } else { c };
                let base = self.pick_live(owner, pick).map(|(h, _)| h).unwrap_or(0);
                let h = base.wrapping_add(delta);
                let live = self.clients[c].live.get(&h).copied();
                // A real object after all: one of that cache, or any live one for a kfree.
                if live.is_some_and(|o| kfree || o.cache == Some(id)) {
                    return;
                }
                let res = if kfree {
                    self.engine.kfree(c as ClientId, Handle(h))
                } else {
                    self.engine.cache_free(c as ClientId, id, Handle(h))
                };
                if let Err(e) = res {
                    self.seen.insert(e.code() as u16);
                }
                match res {
                    Err(Error::InvalidObject | Error::DoubleFree | Error::WrongCache) => {}
                    other => panic!("bogus free of {h:#x}: {other:?}"),
                }
                if !kfree && live.is_some_and(|o| o.cache.is_some()) {
                    assert_eq!(res, Err(Error::WrongCache));
                }
                assert_eq!(state_digest(&self.engine), before);
            }
            Op::FreeAgain { client, pick } => {
                let c = usize::from(client) % nc;
                let freed = &self.clients[c].freed;
                if freed.is_empty() {
                    return;
                }
                let h = freed[usize::from(pick) % freed.len()];
                if self.clients[c].live.contains_key(&h) {
                    return;
                }
                let res = self.engine.kfree(c as ClientId, Handle(h));
                if let Err(e) = res {
                    self.seen.insert(e.code() as u16);
                }
                match res {
                    Err(Error::InvalidObject | Error::DoubleFree | Error::WrongCache) => {}
                    other => panic!("second free of {h:#x}: {other:?}"),
                }
                assert_eq!(state_digest(&self.engine), before);
            }
            Op::Destroy { client, cache } => {
                let c = usize::from(client) % nc;
                // Mostly the client's own caches (kmalloc ones cannot be destroyed).
                let own: Vec<_> = self.clients[c].caches.iter().filter(|m| !m.kmalloc).map(|m| m.id).collect();
                let pick = if cache % 4 != 0 && !own.is_empty() {
                    Pick::Live(
                        self.clients[c]
                            .caches
                            .iter()
                            .find(|m| m.id == own[usize::from(cache / 4) % own.len()])
                            .unwrap(),
                    )
                } else {
                    self.pick_cache(c, cache)
                };
                let (id, kmalloc, dtor) = match pick {
                    Pick::Live(m) => (m.id, m.kmalloc, m.dtor),
                    Pick::Stale(id) => {
                        assert_eq!(self.engine.cache_destroy(c as ClientId, id), Err(Error::NoSuchCache));
                        return self.check_all();
                    }
                    Pick::None => return,
                };
                let live = self.clients[c].live.values().filter(|o| o.cache == Some(id)).count() as u32;
                let slabs = self.engine.cache_info(c as ClientId, id).unwrap().num_slabs;
                let res = self.engine.cache_destroy(c as ClientId, id);
                if let Err(e) = res {
                    self.seen.insert(e.code() as u16);
                }
                if kmalloc {
                    assert_eq!(res, Err(Error::InvalidArgument));
                } else if live > 0 {
                    assert_eq!(res, Err(Error::CacheBusy { live }));
                } else if dtor && slabs > 0 {
                    assert_eq!(res, Err(Error::InvalidArgument), "a dtor cache destroyed with slabs left");
                    assert_eq!(state_digest(&self.engine), before);
                } else {
                    res.unwrap();
                    let m = &mut self.clients[c];
                    m.caches.retain(|x| x.id != id);
                    m.stale.push(id);
                }
            }
            Op::Shrink { client, cache } => {
                let c = usize::from(client) % nc;
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                let (id, dtor, parked) = (m.id, m.dtor, m.pending.map_or(0, |(_, slabs)| slabs));
                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                let res = self.engine.cache_shrink(c as ClientId, id);
                if dtor {
                    assert_eq!(res, Err(Error::InvalidArgument), "a plain shrink of a dtor cache");
                    return self.check_all();
                }
                assert_eq!(res.unwrap(), (i.num_slabs - i.active_slabs - parked) * i.pages_per_slab);
                let j = self.engine.cache_info(c as ClientId, id).unwrap();
                assert_eq!(
                    j.num_slabs,
                    j.active_slabs + parked,
                    "a plain shrink takes the empty slabs, not parked ones"
                );
            }
            Op::Kmalloc { client, size } => {
                let c = usize::from(client) % nc;
                match self.engine.kmalloc(c as ClientId, size) {
                    Ok(h) => {
                        let large = size > 8192;
                        let cache = if large {
                            None
                        } else {
                            let class = crate::KMALLOC_SIZES.iter().position(|&s| s >= size).unwrap();
                            Some(self.clients[c].caches[class].id)
                        };
                        if let Some(id) = cache {
                            assert!(self.engine.cache_info(c as ClientId, id).unwrap().size >= size);
                        }
                        self.add_live(c, h, MObj { cache, kmalloc: true, size, pattern: 0 });
                    }
                    Err(Error::InvalidArgument) => assert!(size == 0 || size > 4 << 20),
                    Err(e) => {
                        self.seen.insert(e.code() as u16);
                        // A class's new slab (and its record frames on a red-zoned kmalloc cache);
                        // whole pages above 8 KiB.
                        let pages = match crate::KMALLOC_SIZES.iter().position(|&s| s >= size) {
                            Some(class) => {
                                let id = self.clients[c].caches.iter().filter(|m| m.kmalloc).nth(class).unwrap().id;
                                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                                i.pages_per_slab + i.tracking_frames_per_slab
                            }
                            None => size.div_ceil(4096),
                        };
                        let s = self.engine.client_stats(c as ClientId).unwrap();
                        assert!(matches!(e, Error::OutOfMemory | Error::QuotaExceeded), "kmalloc: {e:?}");
                        if e == Error::QuotaExceeded {
                            assert!(s.frames_used + pages > s.quota_frames);
                        }
                        assert_eq!(state_digest(&self.engine), before);
                    }
                }
            }
            Op::Kfree { client, pick } => {
                let c = usize::from(client) % nc;
                let Some((h, o)) = self.pick_live(c, pick) else { return };
                // `kfree` takes an object of any cache back to its cache, as Linux does.
                self.verify_pattern(c, h, &o);
                self.engine.kfree(c as ClientId, Handle(h)).unwrap();
                self.remove_live(c, h);
            }
            Op::AllocBulk { client, cache, n } => {
                let c = usize::from(client) % nc;
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                let (id, kmalloc) = (m.id, m.kmalloc);
                let size = self.engine.cache_info(c as ClientId, id).unwrap().size;
                let mut out = [Handle(0); 64];
                let n = usize::from(n % 16) + 1;
                match self.engine.cache_alloc_bulk(c as ClientId, id, &mut out[..n]) {
                    Ok((k, _fresh)) => {
                        assert!(k >= 1 && k <= n);
                        for &h in &out[..k] {
                            self.add_live(c, h, MObj { cache: Some(id), kmalloc, size, pattern: 0 });
                        }
                    }
                    Err(e) => {
                        assert!(matches!(e, Error::OutOfMemory | Error::QuotaExceeded), "bulk: {e:?}");
                        assert_eq!(state_digest(&self.engine), before);
                    }
                }
            }
            Op::FreeBulk { client, n, dup } => {
                let c = usize::from(client) % nc;
                let Some((_, first)) = self.pick_live(c, 0) else { return };
                let Some(id) = first.cache else { return };
                let mut hs: Vec<u64> = self.clients[c]
                    .live
                    .iter()
                    .filter(|(_, o)| o.cache == Some(id))
                    .map(|(&h, _)| h)
                    .take(usize::from(n % 8) + 1)
                    .collect();
                if dup {
                    hs.push(hs[0]);
                    let handles: Vec<_> = hs.iter().map(|&h| Handle(h)).collect();
                    let res = self.engine.cache_free_bulk(c as ClientId, id, &handles);
                    assert_eq!(res, Err((hs.len() - 1, Error::DoubleFree)));
                    assert_eq!(state_digest(&self.engine), before);
                } else {
                    let handles: Vec<_> = hs.iter().map(|&h| Handle(h)).collect();
                    for &h in &hs {
                        let o = self.clients[c].live[&h];
                        self.verify_pattern(c, h, &o);
                    }
                    self.engine.cache_free_bulk(c as ClientId, id, &handles).unwrap();
                    for h in hs {
                        self.remove_live(c, h);
                    }
                }
            }
            Op::Reclaim { client } => {
                let c = usize::from(client) % nc;
                let used = self.engine.client_stats(c as ClientId).unwrap().frames_used;
                assert_eq!(self.engine.reclaim(c as ClientId).unwrap(), used);
                let m = &mut self.clients[c];
                let old: Vec<_> = m.caches.drain(..).map(|x| x.id).collect();
                m.stale.extend(old);
                m.live.clear();
                m.freed.clear();
                self.refresh_kmalloc(c);
                assert_eq!(self.engine.client_stats(c as ClientId).unwrap().frames_used, 0);
            }
            Op::Krealloc { client, pick, size, zero } => {
                self.krealloc(usize::from(client) % nc, pick, size, zero, &before)
            }
            Op::Validate { client, cache } => {
                let c = usize::from(client) % nc;
                let id = match self.pick_cache(c, cache) {
                    Pick::Live(m) => m.id,
                    Pick::Stale(id) => {
                        assert_eq!(self.engine.cache_validate(c as ClientId, id), Err(Error::NoSuchCache));
                        return self.check_all();
                    }
                    Pick::None => return,
                };
                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                let report = self.engine.cache_validate(c as ClientId, id).unwrap();
                // The model never writes outside an object's requested bytes.
                assert_eq!((report.errors, report.first), (0, None), "validate of an intact cache: {report:?}");
                assert_eq!((report.slabs, report.objects), (i.num_slabs, i.num_objs));
                assert_eq!(state_digest(&self.engine), before, "validate of an intact cache changed state");
            }
            Op::ShrinkBegin { client, cache } => {
                let c = usize::from(client) % nc;
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                let (id, pending) = (m.id, m.pending);
                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                let mut out = [Handle(0); 64];
                let plan = self.engine.shrink_begin(c as ClientId, id, &mut out).unwrap();
                let empty = i.num_slabs - i.active_slabs;
                match pending {
                    Some((token, slabs)) => assert_eq!((plan.token, plan.slabs as u32), (token, slabs), "asked again"),
                    None => assert_eq!(plan.slabs as u32, empty.min(64), "every empty slab parked (up to 64)"),
                }
                assert!(plan.token != 0);
                for &slab in &out[..plan.slabs] {
                    assert_eq!(slab.0 % PAGE_SIZE as u64, 0);
                    let o = self.engine.object_cache(c as ClientId, Handle(slab.0 + u64::from(self.obj_offset(c, id))));
                    assert_eq!(o, Some(id), "a named slab is not the cache's");
                }
                let m = self.clients[c].caches.iter_mut().find(|m| m.id == id).unwrap();
                m.pending = Some((plan.token, plan.slabs as u32));
            }
            Op::ShrinkCommit { client, cache, forged } => {
                let c = usize::from(client) % nc;
                let Pick::Live(m) = self.pick_cache(c, cache) else { return };
                let (id, pending) = (m.id, m.pending);
                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                let token = pending.map_or(1, |(t, _)| t).wrapping_add(u32::from(forged));
                let res = self.engine.shrink_commit(c as ClientId, id, token);
                match pending {
                    Some((_, slabs)) if !forged => {
                        assert_eq!(res, Ok(slabs * i.pages_per_slab));
                        let m = self.clients[c].caches.iter_mut().find(|m| m.id == id).unwrap();
                        m.pending = None;
                    }
                    _ => {
                        assert_eq!(res, Err(Error::InvalidArgument), "a commit of no plan or another token");
                        self.seen.insert(Error::InvalidArgument.code() as u16);
                        assert_eq!(state_digest(&self.engine), before);
                    }
                }
            }
        }
        self.check_all();
    }

    /// The first object's offset in a slab of cache `id` (its left red zone).
    fn obj_offset(&self, c: usize, id: CacheId) -> u32 {
        self.engine.cache_entry(c as ClientId, id).map_or(0, |(_, e)| e.obj_offset)
    }

    /// `krealloc` of a held object: in place while `size` fits the object (its first bytes
    /// kept, with `zero` the grown bytes zero), else a new kmalloc object with the old bytes.
    fn krealloc(&mut self, c: usize, pick: u16, size: u32, zero: bool, before: &str) {
        let Some((h, o)) = self.pick_live(c, pick) else { return };
        self.verify_pattern(c, h, &o);
        let capacity = match o.cache {
            Some(id) => self.engine.cache_info(c as ClientId, id).unwrap().size,
            // A large kmalloc keeps the pages it got (a shrinking krealloc gives none back).
            None => self.engine.page_owner(c as ClientId, (h / PAGE_SIZE as u64) as u32).value * PAGE_SIZE as u32,
        };
        match self.engine.krealloc(c as ClientId, Handle(h), size, zero) {
            Ok(new) => {
                assert!(size > 0 && size <= 4 << 20);
                assert_eq!(new.0 == h, size <= capacity, "krealloc({size}) of a {capacity}-byte object at {h:#x}");
                let kept = o.size.min(size) as usize;
                let bytes = self.engine.platform().bytes(c as ClientId, new.0, size as usize);
                assert!(bytes[..kept].iter().all(|&b| b == o.pattern), "krealloc lost the object's bytes");
                // Only where the requested size is kept (a red-zoned kmalloc cache: the last
                // client's kmalloc classes) does `__GFP_ZERO` promise the bytes past it, in place
                // or moved; elsewhere, as in Linux, the caller zeroed them at allocation.
                let tracked = c + 1 == self.clients.len() && o.kmalloc && o.cache.is_some();
                if zero && tracked && size > o.size {
                    assert!(bytes[o.size as usize..].iter().all(|&b| b == 0), "grown bytes not zero");
                }
                self.clients[c].live.remove(&h);
                let cache = if new.0 == h {
                    o.cache
                } else if size > 8192 {
                    None
                } else {
                    let class = crate::KMALLOC_SIZES.iter().position(|&s| s >= size).unwrap();
                    Some(self.clients[c].caches.iter().filter(|m| m.kmalloc).nth(class).unwrap().id)
                };
                let kmalloc = new.0 != h || o.kmalloc;
                self.add_live(c, new, MObj { cache, kmalloc, size, pattern: 0 });
            }
            Err(Error::InvalidArgument) => assert!(size == 0 || size > 4 << 20),
            Err(e) => {
                assert!(size > capacity, "an in-place krealloc failed: {e:?}");
                assert!(matches!(e, Error::OutOfMemory | Error::QuotaExceeded), "krealloc: {e:?}");
                self.seen.insert(e.code() as u16);
                assert_eq!(state_digest(&self.engine), before, "a failed krealloc changed state");
            }
        }
    }

    /// Invariants plus the model: live counts per cache, frame accounting.
    pub fn check_all(&self) {
        if let Err(v) = self.engine.check_invariants() {
            panic!("invariant violated: {v:?}");
        }
        assert_eq!(self.engine.faults(), 0, "a platform hook failed: {:?}", self.engine.last_fault());
        let mut used = 0;
        for (c, m) in self.clients.iter().enumerate() {
            for mc in &m.caches {
                let i = self.engine.cache_info(c as ClientId, mc.id).unwrap();
                let live = m.live.values().filter(|o| o.cache == Some(mc.id)).count() as u32;
                assert_eq!(i.active_objs, live, "cache {} of client {c}", mc.name);
            }
            for &id in m.stale.iter().rev().take(4) {
                assert_eq!(self.engine.cache_info(c as ClientId, id).map(|_| ()), Err(Error::NoSuchCache));
            }
            let s = self.engine.client_stats(c as ClientId).unwrap();
            assert!(s.frames_used <= self.quotas[c]);
            used += s.frames_used;
        }
        let p = self.engine.pool_stats();
        assert_eq!(used + p.free_frames + p.quarantined_frames, p.total_frames);
        self.engine.platform().assert_agrees_with(&self.engine);
    }

    /// Verify every live object's pattern (nothing overwrote anything).
    pub fn verify_all(&self) {
        for (c, m) in self.clients.iter().enumerate() {
            for (&h, o) in &m.live {
                self.verify_pattern(c, h, o);
            }
        }
    }
}

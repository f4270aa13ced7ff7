//! One op against the engine, its result predicted from the model.

extern crate std;

use std::format;
use std::vec::Vec;

use protocol::flags::SLAB_ALL;
use protocol::{ClientId, Error, Handle, PAGE_SIZE};

use super::state::{MCache, MObj, Pick, batch};
use super::{Harness, Op};
use crate::testing::state_digest;

impl Harness<'_> {
    /// A failed allocation of a new slab of `pages` frames (its pages and record frames; a
    /// bitmap frame may come on top, when the cache has no room for another bitmap record):
    /// the error is one the situation allows, and nothing changed.
    fn check_alloc_failure(&mut self, c: usize, e: Error, pages: u32, before: &str) {
        self.saw(e);
        let s = self.engine.client_stats(c as ClientId).unwrap();
        match e {
            Error::QuotaExceeded => assert!(s.frames_used + pages + 1 > s.quota_frames, "spurious QuotaExceeded"),
            Error::OutOfMemory => assert!(s.frames_used + pages <= s.quota_frames, "OOM where quota was hit"),
            other => panic!("allocation failed with {other:?}"),
        }
        assert_eq!(state_digest(&self.engine), before, "failed allocation changed state");
    }

    /// A free of what is no held object (`what` of `h`) was refused as one of those.
    fn expect_refused_free(&mut self, res: Result<(), Error>, what: &str, h: u64) {
        if let Err(e) = res {
            self.saw(e);
        }
        match res {
            Err(Error::InvalidObject | Error::DoubleFree | Error::WrongCache) => {}
            other => panic!("{what} of {h:#x}: {other:?}"),
        }
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
                    Pick::Live(m) => (m.id, m.ctor, m.kmalloc, m.parked_slabs()),
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
                self.saw(want);
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
                self.expect_refused_free(res, "bogus free", h);
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
                self.expect_refused_free(res, "second free", h);
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
                let m = &self.clients[c];
                let live = m.live.values().chain(m.parked.values()).filter(|o| o.cache == Some(id)).count() as u32;
                let slabs = self.engine.cache_info(c as ClientId, id).unwrap().num_slabs;
                let res = self.engine.cache_destroy(c as ClientId, id);
                if let Err(e) = res {
                    self.saw(e);
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
                let (id, dtor, parked) = (m.id, m.dtor, m.parked_slabs());
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
                        let cache = self.kmalloc_cache(c, size);
                        if let Some(id) = cache {
                            assert!(self.engine.cache_info(c as ClientId, id).unwrap().size >= size);
                        }
                        self.add_live(c, h, MObj { cache, kmalloc: true, size, pattern: 0 });
                    }
                    Err(Error::InvalidArgument) => assert!(size == 0 || size > 4 << 20),
                    Err(e) => {
                        self.saw(e);
                        // A class's new slab (and its record frames on a red-zoned kmalloc cache);
                        // whole pages above 8 KiB.
                        let pages = match self.kmalloc_cache(c, size) {
                            Some(id) => {
                                let i = self.engine.cache_info(c as ClientId, id).unwrap();
                                i.pages_per_slab + i.tracking_frames_per_slab
                            }
                            None => size.div_ceil(4096),
                        };
                        let s = self.engine.client_stats(c as ClientId).unwrap();
                        assert!(matches!(e, Error::OutOfMemory | Error::QuotaExceeded), "kmalloc: {e:?}");
                        if e == Error::QuotaExceeded {
                            // A new slab's bitmap frame may come on top of its pages.
                            assert!(s.frames_used + pages + 1 > s.quota_frames);
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
                let Some((id, mut hs)) = batch(&self.clients[c].live, n) else { return };
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
            Op::Park { client, n, dup } => self.park(usize::from(client) % nc, n, dup, &before),
            Op::Unpark { client, n, free } => self.unpark(usize::from(client) % nc, n, free),
            Op::Reclaim { client } => {
                let c = usize::from(client) % nc;
                let used = self.engine.client_stats(c as ClientId).unwrap().frames_used;
                assert_eq!(self.engine.reclaim(c as ClientId).unwrap(), used);
                let m = &mut self.clients[c];
                let old: Vec<_> = m.caches.drain(..).map(|x| x.id).collect();
                m.stale.extend(old);
                m.live.clear();
                m.parked.clear();
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
                        self.saw(Error::InvalidArgument);
                        assert_eq!(state_digest(&self.engine), before);
                    }
                }
            }
        }
        self.check_all();
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
                let cache = if new.0 == h { o.cache } else { self.kmalloc_cache(c, size) };
                let kmalloc = new.0 != h || o.kmalloc;
                self.add_live(c, new, MObj { cache, kmalloc, size, pattern: 0 });
            }
            Err(Error::InvalidArgument) => assert!(size == 0 || size > 4 << 20),
            Err(e) => {
                assert!(size > capacity, "an in-place krealloc failed: {e:?}");
                assert!(matches!(e, Error::OutOfMemory | Error::QuotaExceeded), "krealloc: {e:?}");
                self.saw(e);
                assert_eq!(state_digest(&self.engine), before, "a failed krealloc changed state");
            }
        }
    }

    /// Up to `n % 8 + 1` held objects of one cache into the depot (`dup`: the first again at
    /// the end, which must fail with nothing changed); then a free of a parked one must fail.
    fn park(&mut self, c: usize, n: u8, dup: bool, before: &str) {
        let Some((id, hs)) = batch(&self.clients[c].live, n) else { return };
        let debug = self.engine.cache_info(c as ClientId, id).unwrap().flags & protocol::flags::SLAB_DEBUG != 0;
        let mut hs: Vec<Handle> = hs.into_iter().map(Handle).collect();
        if dup {
            hs.push(hs[0]);
        }
        let res = self.engine.cache_park_bulk(c as ClientId, id, &hs);
        if debug || dup {
            let want = if debug { (0, Error::InvalidArgument) } else { (hs.len() - 1, Error::DoubleFree) };
            assert_eq!(res, Err(want), "park");
            assert_eq!(state_digest(&self.engine), before);
            return;
        }
        res.unwrap();
        for h in &hs {
            let o = self.clients[c].live.remove(&h.0).unwrap();
            self.verify_pattern(c, h.0, &o);
            self.clients[c].parked.insert(h.0, o);
        }
        let after = state_digest(&self.engine);
        assert_eq!(self.engine.cache_free(c as ClientId, id, hs[0]), Err(Error::DoubleFree), "free of a parked object");
        assert_eq!(self.engine.cache_free_bulk(c as ClientId, id, &hs), Err((0, Error::DoubleFree)));
        assert_eq!(state_digest(&self.engine), after);
    }

    /// Up to `n % 8 + 1` parked objects of one cache back to the client, or freed (`free`).
    fn unpark(&mut self, c: usize, n: u8, free: bool) {
        let Some((id, hs)) = batch(&self.clients[c].parked, n) else { return };
        let hs: Vec<Handle> = hs.into_iter().map(Handle).collect();
        if free {
            self.engine.cache_free_parked_bulk(c as ClientId, id, &hs).unwrap();
            for h in &hs {
                let o = self.clients[c].parked.remove(&h.0).unwrap();
                self.verify_pattern(c, h.0, &o);
                self.remember_freed(c, h.0);
            }
        } else {
            self.engine.cache_unpark_bulk(c as ClientId, id, &hs).unwrap();
            for h in &hs {
                let o = self.clients[c].parked.remove(&h.0).unwrap();
                self.clients[c].live.insert(h.0, o);
            }
        }
    }
}

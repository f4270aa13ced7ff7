//! The reference model's state: per client its caches (live, and recently destroyed ones),
//! the objects it holds or parked, and the handles it freed recently; plus the bookkeeping
//! that records what the engine handed out.

extern crate std;

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use protocol::{CacheId, ClientId, Error, Handle, PAGE_SIZE};

use super::Harness;

#[derive(Clone, Debug)]
pub(super) struct MCache {
    pub(super) id: CacheId,
    pub(super) name: String,
    pub(super) ctor: bool,
    pub(super) kmalloc: bool,
    pub(super) dtor: bool,
    /// The pending two-phase shrink: its token and the slabs it parked.
    pub(super) pending: Option<(u32, u32)>,
}

impl MCache {
    /// The slabs the pending shrink parked (none without one).
    pub(super) fn parked_slabs(&self) -> u32 {
        self.pending.map_or(0, |(_, slabs)| slabs)
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct MObj {
    /// `None`: a large kmalloc.
    pub(super) cache: Option<CacheId>,
    pub(super) kmalloc: bool,
    pub(super) size: u32,
    pub(super) pattern: u8,
}

#[derive(Debug, Default)]
pub(super) struct MClient {
    pub(super) caches: Vec<MCache>,
    pub(super) stale: Vec<CacheId>,
    pub(super) live: BTreeMap<u64, MObj>,
    /// Objects parked in the (engine's view of the) depot: allocated, not the client's.
    pub(super) parked: BTreeMap<u64, MObj>,
    pub(super) freed: Vec<u64>,
}

/// The first held object's cache and up to `n % 8 + 1` held objects of it (`None`: nothing
/// held, or the first is a large kmalloc).
pub(super) fn batch(held: &BTreeMap<u64, MObj>, n: u8) -> Option<(CacheId, Vec<u64>)> {
    let id = held.values().next()?.cache?;
    let hs = held.iter().filter(|(_, o)| o.cache == Some(id)).map(|(&h, _)| h).take(usize::from(n % 8) + 1).collect();
    Some((id, hs))
}

pub(super) enum Pick<'a> {
    Live(&'a MCache),
    Stale(CacheId),
    None,
}

impl Harness<'_> {
    pub(super) fn refresh_kmalloc(&mut self, c: usize) {
        let ids: Vec<_> = self.engine.cache_ids(c as ClientId).collect();
        for id in ids {
            let i = self.engine.cache_info(c as ClientId, id).unwrap();
            let name = i.name.as_str().into();
            self.clients[c].caches.push(MCache { id, name, ctor: false, kmalloc: true, dtor: false, pending: None });
        }
    }

    /// Odd `i`: one of the client's own caches if it has any; even: any live or recently
    /// stale cache (kmalloc ones included).
    pub(super) fn pick_cache(&self, c: usize, i: u8) -> Pick<'_> {
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

    pub(super) fn pick_live(&self, c: usize, pick: u16) -> Option<(u64, MObj)> {
        let live = &self.clients[c].live;
        if live.is_empty() {
            return None;
        }
        live.iter().nth(usize::from(pick) % live.len()).map(|(&h, &o)| (h, o))
    }

    /// Record a new object: aligned, inside the window, overlapping no live object; then
    /// fill it with a fresh pattern.
    pub(super) fn add_live(&mut self, c: usize, h: Handle, obj: MObj) {
        let end = h.0 + u64::from(obj.size);
        assert!(end <= u64::from(self.window) * PAGE_SIZE as u64, "object {h:?} outside the window");
        assert_eq!(h.0 % 8, 0, "object {h:?} not 8-aligned");
        if let Some(id) = obj.cache {
            let a = self.engine.cache_info(c as ClientId, id).unwrap().align;
            assert_eq!(h.0 % u64::from(a), 0, "object {h:?} not {a}-aligned");
        }
        for held in [&self.clients[c].live, &self.clients[c].parked] {
            if let Some((&p, prev)) = held.range(..=h.0).next_back() {
                assert!(p + u64::from(prev.size) <= h.0, "object {h:?} overlaps held {p:#x}");
            }
            if let Some((&n, _)) = held.range(h.0..).next() {
                assert!(end <= n, "object {h:?} overlaps held {n:#x}");
            }
        }
        self.counter = self.counter.wrapping_add(1);
        let obj = MObj { pattern: self.counter, ..obj };
        self.engine.platform_mut().fill_bytes(c as ClientId, h.0, obj.size as usize, obj.pattern);
        self.clients[c].live.insert(h.0, obj);
    }

    pub(super) fn verify_pattern(&self, c: usize, h: u64, o: &MObj) {
        let bytes = self.engine.platform().bytes(c as ClientId, h, o.size as usize);
        assert!(bytes.iter().all(|&b| b == o.pattern), "object {h:#x} of client {c} was overwritten (shared?)");
    }

    pub(super) fn remove_live(&mut self, c: usize, h: u64) {
        self.clients[c].live.remove(&h).unwrap();
        self.remember_freed(c, h);
    }

    /// Remember `h` as freed recently (for `FreeAgain`).
    pub(super) fn remember_freed(&mut self, c: usize, h: u64) {
        let freed = &mut self.clients[c].freed;
        freed.push(h);
        if freed.len() > 32 {
            freed.remove(0);
        }
    }

    /// The kmalloc cache of client `c` for `size` bytes (`None` above 8 KiB: a large kmalloc).
    pub(super) fn kmalloc_cache(&self, c: usize, size: u32) -> Option<CacheId> {
        let class = crate::kmalloc_class(size)?;
        Some(self.clients[c].caches.iter().filter(|m| m.kmalloc).nth(class).unwrap().id)
    }

    /// Record an error code the run has met.
    pub(super) fn saw(&mut self, e: Error) {
        self.seen.insert(e.code() as u16);
    }

    /// The first object's offset in a slab of cache `id` (its left red zone).
    pub(super) fn obj_offset(&self, c: usize, id: CacheId) -> u32 {
        self.engine.cache_entry(c as ClientId, id).map_or(0, |(_, e)| e.obj_offset)
    }
}

//! The invariant checker (tests and the `debug-invariants` feature): frame pool, windows,
//! per-client accounting (window pages and tracking frames), cache lists and slab bitmaps, the
//! record frames (STORE_USER owners, kmalloc requested sizes) of every slab.

use protocol::{ClientId, PAGE_SIZE};

use super::debug::{InvariantViolation, violation};
use super::storage::{
    FRAME_FREE, FRAME_LARGE_HEAD, FRAME_LARGE_TAIL, FRAME_QUARANTINED, FRAME_SLAB, FRAME_TRACK, LIST_RELEASING, NIL,
    PAGE_FREED_LARGE, PAGE_NONE,
};
use super::track::track_frames_for;
use super::{Engine, Platform};

impl<P: Platform> Engine<'_, P> {
    /// Verify every invariant of the engine. Objects cannot overlap because every window page
    /// is backed by exactly one frame, every frame backs at most one page, every slab's
    /// objects fit in its pages and objects sit at multiples of the stride.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_pool()?;
        let mut slabs_in_lists = 0u32;
        let mut frames_held = 0u32;
        for client in 0..self.config.max_clients {
            let (slabs, frames) = self.check_client(client)?;
            slabs_in_lists += slabs;
            frames_held += frames;
        }
        if slabs_in_lists + self.free_slabs != self.config.max_tracked_slabs {
            return Err(violation("slab descriptors lost", slabs_in_lists, self.free_slabs));
        }
        // Every frame is exactly one of: free, quarantined, held by one client.
        if frames_held + self.free_frames + self.quarantined_frames != self.config.pool_frames {
            return Err(violation("frames lost or counted twice", frames_held, self.free_frames));
        }
        Ok(())
    }

    fn check_pool(&self) -> Result<(), InvariantViolation> {
        let mut n = 0u32;
        let mut f = self.free_frame_head;
        while f != NIL {
            let d = self.frame(f).map_err(|_| violation("free list leaves the pool", f, n))?;
            if d.kind != FRAME_FREE {
                return Err(violation("allocated frame on the free list", f, d.kind));
            }
            n += 1;
            if n > self.config.pool_frames {
                return Err(violation("free frame list has a cycle", f, n));
            }
            f = d.link;
        }
        let kind_free = self.st.frames.iter().take(self.config.pool_frames as usize).filter(|d| d.kind == FRAME_FREE);
        if n != self.free_frames || kind_free.count() as u32 != n {
            return Err(violation("free frame count", n, self.free_frames));
        }
        let mut s = self.free_slab_head;
        let mut m = 0u32;
        while s != NIL {
            let d = self.slab(s).map_err(|_| violation("free slab list out of range", s, m))?;
            if d.cache != NIL {
                return Err(violation("used slab descriptor on the free list", s, d.cache));
            }
            m += 1;
            if m > self.config.max_tracked_slabs {
                return Err(violation("free slab list has a cycle", s, m));
            }
            s = d.next;
        }
        if m != self.free_slabs {
            return Err(violation("free slab count", m, self.free_slabs));
        }
        let quarantined =
            self.st.frames.iter().take(self.config.pool_frames as usize).filter(|d| d.kind == FRAME_QUARANTINED);
        if quarantined.count() as u32 != self.quarantined_frames {
            return Err(violation("quarantined frame count", self.quarantined_frames, 0u32));
        }
        for (i, d) in self.st.frames.iter().enumerate().take(self.config.pool_frames as usize) {
            if d.kind == FRAME_FREE || d.kind == FRAME_QUARANTINED {
                continue;
            }
            if d.kind == FRAME_TRACK {
                // A slab's record frame: the slab is live, of a STORE_USER cache of that client.
                let owner = self.slab(d.page).ok().map(|s| s.cache).filter(|&gi| gi != NIL);
                let ok = owner.is_some_and(|gi| {
                    self.cache_client(gi) == d.client
                        && self.cache(gi).is_ok_and(super::track::has_records)
                        && self.client(d.client).is_ok()
                });
                if !ok {
                    return Err(violation("tracking frame of no STORE_USER slab of its client", i as u64, d.page));
                }
                continue;
            }
            match self.client(d.client) {
                Ok(c) if d.page < c.window_pages => {}
                _ => return Err(violation("frame held outside an attached window", i as u64, d.page)),
            }
            if self.page_map_get(d.client, d.page) != Ok(i as u32) {
                return Err(violation("frame's page does not map back to it", i as u64, d.page));
            }
        }
        Ok(())
    }

    /// Checks one client; returns the slabs its caches hold and the frames it holds.
    fn check_client(&self, client: ClientId) -> Result<(u32, u32), InvariantViolation> {
        let Ok(cl) = self.client(client) else {
            for slot in 0..self.config.max_caches_per_client {
                if self.cache(self.cache_slot(client, slot)).is_ok_and(|c| c.live) {
                    return Err(violation("live cache of a detached client", client, slot));
                }
            }
            return Ok((0, 0));
        };
        let mut frames = 0u32;
        for page in 0..self.config.max_window_pages {
            let e = self.page_map_get(client, page).map_err(|_| violation("page map short", client, page))?;
            let mapped = e < self.config.pool_frames;
            if mapped != self.page_used(client, page) {
                return Err(violation("occupancy bit disagrees with page map", client, page));
            }
            if page >= cl.window_pages && e != PAGE_NONE {
                return Err(violation("page map entry beyond the window", client, page));
            }
            if !mapped && e != PAGE_NONE && e != PAGE_FREED_LARGE {
                return Err(violation("page map entry out of the pool", client, page));
            }
            if !mapped {
                continue;
            }
            frames += 1;
            let fd = self.frame(e).map_err(|_| violation("bad frame", client, page))?;
            if fd.client != client || fd.page != page || fd.kind == FRAME_FREE {
                return Err(violation("page map entry disagrees with frame", client, page));
            }
            if fd.kind == FRAME_LARGE_HEAD {
                for tail in page + 1..page.saturating_add(fd.link) {
                    let ok = self
                        .page_map_get(client, tail)
                        .ok()
                        .and_then(|t| self.frame(t).ok())
                        .is_some_and(|t| t.kind == FRAME_LARGE_TAIL && t.link == page);
                    if !ok {
                        return Err(violation("large allocation tail broken", page, tail));
                    }
                }
            }
            if fd.kind == FRAME_SLAB {
                let d = self.slab(fd.link).map_err(|_| violation("frame's slab out of range", e, fd.link))?;
                if d.cache == NIL || self.cache_client(d.cache) != client {
                    return Err(violation("slab frame of a free slab or another client", e, fd.link));
                }
                if page < d.first_page || page >= d.first_page + (1u32 << d.order) {
                    return Err(violation("slab frame outside its slab", page, d.first_page));
                }
            }
        }
        let mut slabs = 0u32;
        let mut tracking = 0u32;
        let mut live = 0u16;
        for slot in 0..self.config.max_caches_per_client {
            let gi = self.cache_slot(client, slot);
            let c = self.cache(gi).map_err(|_| violation("cache table short", client, slot))?;
            if c.generation == 0 || c.generation > self.cache_generation_max() || (c.retired && c.live) {
                return Err(violation("cache slot generation", gi, c.generation));
            }
            if !c.live {
                if c.heads.iter().any(|&h| h != NIL) || c.counts.iter().any(|&n| n != 0) {
                    return Err(violation("dead cache holds slabs", client, slot));
                }
                continue;
            }
            live += 1;
            let slab_bytes = (PAGE_SIZE as u64) << c.order;
            if c.stride % c.align != 0
                || c.obj_offset % c.align != 0
                || c.objs == 0
                || u64::from(c.objs) * u64::from(c.stride) > slab_bytes
                || c.obj_offset + c.size > c.stride
            {
                return Err(violation("cache layout", gi, c.stride));
            }
            if c.release_token == 0 && c.heads.get(usize::from(LIST_RELEASING)) != Some(&NIL) {
                return Err(violation("slabs parked for release without a plan", gi, c.release_token));
            }
            let mut inuse = 0u32;
            for (list, &head) in c.heads.iter().enumerate() {
                let mut n = 0u32;
                let mut s = head;
                while s != NIL {
                    self.check_slab(gi, s)?;
                    let d = self.slab(s).map_err(|_| violation("slab out of range", gi, s))?;
                    if usize::from(d.list) != list {
                        return Err(violation("slab list tag", s, d.list));
                    }
                    inuse += u32::from(d.inuse);
                    tracking += self.check_track_chain(gi, s)?;
                    n += 1;
                    if n > self.config.max_tracked_slabs {
                        return Err(violation("slab list has a cycle", gi, s));
                    }
                    s = d.next;
                }
                if c.counts.get(list) != Some(&n) {
                    return Err(violation("slab list count", gi, n));
                }
                slabs += n;
            }
            if inuse != c.active_objs {
                return Err(violation("active_objs != sum of inuse", inuse, c.active_objs));
            }
        }
        if live != cl.caches {
            return Err(violation("client cache count", live, cl.caches));
        }
        if tracking != cl.tracking_frames {
            return Err(violation("client tracking frames", tracking, cl.tracking_frames));
        }
        let frames = frames + tracking;
        if frames != cl.frames_used || frames > cl.quota_frames {
            return Err(violation("client frame accounting", frames, cl.frames_used));
        }
        Ok((slabs, frames))
    }

    /// The record frames of slab `s` of cache `gi`: exactly as many as its objects need (none
    /// without `SLAB_STORE_USER`), each a tracking frame of the cache's client naming this slab.
    /// Returns how many.
    pub(crate) fn check_track_chain(&self, gi: u32, s: u32) -> Result<u32, InvariantViolation> {
        let c = self.cache(gi).map_err(|_| violation("cache index out of range", s, gi))?;
        let want = if super::track::has_records(c) { track_frames_for(u32::from(c.objs)) } else { 0 };
        let client = self.cache_client(gi);
        let mut f = self.slab(s).map_err(|_| violation("slab index out of range", s, gi))?.track_frame;
        let mut n = 0u32;
        while f != NIL {
            match self.frame(f) {
                Ok(d) if d.kind == FRAME_TRACK && d.client == client && d.page == s && n < want => f = d.link,
                _ => return Err(violation("slab's tracking frames broken", s, f)),
            }
            n += 1;
        }
        if n != want {
            return Err(violation("slab's tracking frame count", s, n));
        }
        Ok(n)
    }
}

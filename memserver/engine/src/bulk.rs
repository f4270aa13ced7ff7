//! Bulk operations for magazine refill and drain (`kmem_cache_alloc_bulk/free_bulk`), and the
//! *parked* state of objects the server's magazine depot holds.
//!
//! An object is free, held by its client, or parked: allocated, but in the depot of the
//! dispatch rather than with the client (the parked bit of `bitmap`). A handle coming back
//! from a client must be held by it, so one the depot already holds (given back twice) is a
//! `DoubleFree`, found in O(1). Within one bulk call a repeated handle is found the same way:
//! each handle is parked as it is checked, so its repeat looks parked; the check then unparks
//! what it parked (or, for [`Engine::cache_park_bulk`], keeps it so). Caches without debug
//! flags take the hot path (`plain`, and `runs`: a run of one slab at a time); debug caches
//! (no magazines, so never parked) the general one, with their checks.

use protocol::{CacheId, ClientId, Error, Handle};

use super::bitmap::bitmap_words;
use super::runs::Step;
use super::{BROKEN, Engine, Platform};

/// Most handles one bulk allocation fills (the fresh mask is a `u64`).
pub const BULK_MAX: usize = 64;
/// Most handles one bulk free, park or unpark takes (two full magazines).
pub const BULK_RETURN_MAX: usize = 2 * BULK_MAX;

/// The (slab, object index) of each handle of a bulk call, resolved once.
struct Resolved {
    at: [(u32, u32); BULK_RETURN_MAX],
    len: usize,
}

impl Resolved {
    fn new() -> Self {
        Resolved { at: [(0, 0); BULK_RETURN_MAX], len: 0 }
    }

    fn push(&mut self, slab: u32, idx: u32) -> Result<(), Error> {
        *self.at.get_mut(self.len).ok_or(Error::InvalidArgument)? = (slab, idx);
        self.len += 1;
        Ok(())
    }

    fn as_slice(&self) -> &[(u32, u32)] {
        self.at.get(..self.len).unwrap_or(&[])
    }
}

impl<P: Platform> Engine<'_, P> {
    /// Allocate up to `out.len()` (≤ 64) objects. Corresponds to `kmem_cache_alloc_bulk()`.
    ///
    /// Stops early, returning what it has, when an allocation fails after at least one
    /// succeeded (a corruption found then is left unrepaired, so the next allocation reports
    /// it); fails with the error if none could be allocated. Returns `(n, fresh)` where bit
    /// `i` of `fresh` says `out[i]` is fresh.
    pub fn cache_alloc_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        out: &mut [Handle],
    ) -> Result<(usize, u64), Error> {
        let gi = self.cache_lookup(client, cache)?;
        if out.is_empty() || out.len() > BULK_MAX {
            return Err(Error::InvalidArgument);
        }
        if let Some(sh) = self.plain_shape(client, gi)? {
            return self.plain_alloc(client, &sh, out);
        }
        let mut fresh = 0u64;
        let mut n = 0usize;
        for slot in out.iter_mut() {
            match self.alloc_one(client, gi, false, n == 0) {
                Ok(a) => {
                    *slot = a.handle;
                    if a.fresh {
                        fresh |= 1u64 << n;
                    }
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok((n, fresh))
    }

    /// Validate `handles` as [`cache_free_bulk`](Self::cache_free_bulk) would, without
    /// changing anything: every handle an allocated object of this cache held by this client
    /// (not parked), none repeated, red zones intact. On the first bad handle,
    /// `Err((index, error))`.
    pub fn cache_check_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        let gi = self.cache_lookup(client, cache).map_err(|e| (0, e))?;
        match self.plain_shape(client, gi).map_err(|e| (0, e))? {
            Some(sh) => {
                // Parked as they are checked (a repeat is a DoubleFree), then unparked again.
                self.runs_step_all(client, &sh, handles, Step::Park)?;
                self.runs_step_all(client, &sh, handles, Step::Unpark).map_err(|(_, e)| (0, e))
            }
            None => {
                let resolved = self.check_bulk(client, gi, handles)?;
                self.unpark_all(gi, resolved.as_slice()).map_err(|e| (0, e))
            }
        }
    }

    /// Park `handles`, all or none: each must be held by the client as for
    /// [`cache_free_bulk`](Self::cache_free_bulk); they stay allocated and count as active,
    /// held by the server's depot until [`cache_unpark_bulk`](Self::cache_unpark_bulk) gives
    /// them back to the client or [`cache_free_parked_bulk`](Self::cache_free_parked_bulk)
    /// frees them. A parked object coming back from the client again is a `DoubleFree`. A
    /// debug cache has no depot (its objects bypass the magazines): `InvalidArgument`.
    pub fn cache_park_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        let gi = self.cache_lookup(client, cache).map_err(|e| (0, e))?;
        let sh = self.plain_shape(client, gi).map_err(|e| (0, e))?.ok_or((0, Error::InvalidArgument))?;
        self.runs_step_all(client, &sh, handles, Step::Park)?;
        let c = self.cache_mut(gi).map_err(|e| (0, e))?;
        c.parked_objs = c.parked_objs.saturating_add(handles.len() as u32);
        Ok(())
    }

    /// Hand parked `handles` back to the client (a refill from the depot), all or none. They
    /// come from the server's own depot, so one that is not a parked object of this cache is
    /// the server's fault: `Internal`.
    pub fn cache_unpark_bulk(&mut self, client: ClientId, cache: CacheId, handles: &[Handle]) -> Result<(), Error> {
        let gi = self.depot_step(client, cache, handles, Step::Unpark)?;
        self.unparked(gi, handles.len())
    }

    /// Free parked `handles` (the depot flushed into the slabs), all or none; a handle that
    /// is not a parked object of this cache is `Internal`, as for `cache_unpark_bulk`.
    pub fn cache_free_parked_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), Error> {
        let gi = self.depot_step(client, cache, handles, Step::FreeParked)?;
        self.freed(gi, handles.len()).map_err(|(_, e)| e)?;
        self.unparked(gi, handles.len())
    }

    /// `step` (unpark or free) over parked `handles` of the server's own depot, all or none;
    /// returns the cache's global index. A handle that is not a parked object of the cache, or
    /// a cache without a depot, is the server's fault: `Internal`.
    fn depot_step(&mut self, client: ClientId, cache: CacheId, handles: &[Handle], step: Step) -> Result<u32, Error> {
        let gi = self.cache_lookup(client, cache)?;
        let sh = self.plain_shape(client, gi)?.ok_or(BROKEN)?;
        self.runs_step_all(client, &sh, handles, step).map_err(|(_, e)| e)?;
        Ok(gi)
    }

    /// `count` objects of cache `gi` left the depot.
    fn unparked(&mut self, gi: u32, count: usize) -> Result<(), Error> {
        let c = self.cache_mut(gi)?;
        c.parked_objs = c.parked_objs.checked_sub(count as u32).ok_or(BROKEN)?;
        Ok(())
    }

    /// Free all `handles` or none. Corresponds to `kmem_cache_free_bulk()`, but validating
    /// first: every handle must be an allocated object of this cache held by this client (not
    /// parked), no handle may appear twice (the second is a `DoubleFree`), red zones must be
    /// intact. On the first bad handle, `Err((index, error))` and nothing is freed. A platform
    /// failure writing object memory frees nothing either; one reaching a STORE_USER record
    /// (never expected: the record frames are the server's own) frees the handles before
    /// `index`.
    pub fn cache_free_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        let gi = self.cache_lookup(client, cache).map_err(|e| (0, e))?;
        if let Some(sh) = self.plain_shape(client, gi).map_err(|e| (0, e))? {
            self.runs_step_all(client, &sh, handles, Step::FreeHeld)?;
            return self.freed(gi, handles.len());
        }
        let resolved = self.check_bulk(client, gi, handles)?;
        self.free_resolved(client, gi, &resolved)
    }

    /// `n` objects of cache `gi` were freed on the hot path: its count and the operation
    /// sequence follow.
    fn freed(&mut self, gi: u32, n: usize) -> Result<(), (usize, Error)> {
        let c = self.cache_mut(gi).map_err(|e| (0, e))?;
        c.active_objs = c.active_objs.checked_sub(n as u32).ok_or((0, BROKEN))?;
        self.seq = self.seq.saturating_add(n as u64);
        Ok(())
    }

    /// Frees resolved objects of a debug cache, parked by the check: object memory of every
    /// object first, then the metadata, so a platform failure frees none (and unparks them).
    fn free_resolved(&mut self, client: ClientId, gi: u32, resolved: &Resolved) -> Result<(), (usize, Error)> {
        let objects = resolved.as_slice();
        for (i, &(slab, idx)) in objects.iter().enumerate() {
            if let Err(e) = self.free_prepare(client, gi, slab, idx) {
                for &(slab, idx) in objects.iter().take(i) {
                    self.debug_bytes_restore(client, gi, slab, idx, true);
                }
                self.unpark_all(gi, objects).map_err(|e| (0, e))?;
                return Err((i, e));
            }
        }
        self.unpark_all(gi, objects).map_err(|e| (0, e))?;
        for (i, &(slab, idx)) in objects.iter().enumerate() {
            self.free_commit(client, gi, slab, idx).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// The validation pass of a debug cache's bulk return: each handle held by the client
    /// (see [`Self::validate_free`], red zones included), parked as it is seen so a repeat is
    /// a `DoubleFree`. On a bad handle everything parked here is unparked again.
    fn check_bulk(&mut self, client: ClientId, gi: u32, handles: &[Handle]) -> Result<Resolved, (usize, Error)> {
        if handles.len() > BULK_RETURN_MAX {
            return Err((BULK_RETURN_MAX, Error::InvalidArgument));
        }
        let c = self.cache(gi).map_err(|e| (0, e))?;
        let (flags, words) = (c.flags, bitmap_words(c.objs));
        let mut resolved = Resolved::new();
        for (i, &h) in handles.iter().enumerate() {
            let checked = self
                .validate_free_in(client, gi, flags, words, h)
                .and_then(|(s, idx, b)| self.obj_set_parked(&b, idx, true).map(|()| (s, idx)))
                .and_then(|(s, idx)| resolved.push(s, idx));
            if let Err(e) = checked {
                self.unpark_all(gi, resolved.as_slice()).map_err(|e| (0, e))?;
                return Err((i, e));
            }
        }
        Ok(resolved)
    }

    /// Clears the parked bit of each object of cache `gi`.
    fn unpark_all(&mut self, gi: u32, objects: &[(u32, u32)]) -> Result<(), Error> {
        let words = bitmap_words(self.cache(gi)?.objs);
        for &(slab, idx) in objects {
            let b = self.slab_bits(slab, words)?;
            self.obj_set_parked(&b, idx, false)?;
        }
        Ok(())
    }
}

//! Bulk operations for magazine refill and drain (`kmem_cache_alloc_bulk/free_bulk`).

use protocol::{CacheId, ClientId, Error, Handle};

use super::{Engine, Platform};

/// Most handles one bulk allocation fills (the fresh mask is a `u64`).
pub const BULK_MAX: usize = 64;

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
    /// freeing anything: every handle an allocated object of this cache held by this client,
    /// none repeated, red zones intact. For magazines drained into the depot, whose objects
    /// stay allocated. On the first bad handle, `Err((index, error))`.
    pub fn cache_check_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        let gi = self.cache_lookup(client, cache).map_err(|e| (0, e))?;
        self.check_bulk(client, gi, handles)
    }

    /// Free all `handles` or none. Corresponds to `kmem_cache_free_bulk()`, but validating
    /// first: every handle must be an allocated object of this cache held by this client, no
    /// handle may appear twice (the second is a `DoubleFree`), red zones must be intact. On
    /// the first bad handle, `Err((index, error))` and nothing is freed. A platform failure
    /// writing object memory frees nothing either; one reaching a STORE_USER record (never
    /// expected: the record frames are the server's own) frees the handles before `index`.
    pub fn cache_free_bulk(
        &mut self,
        client: ClientId,
        cache: CacheId,
        handles: &[Handle],
    ) -> Result<(), (usize, Error)> {
        let gi = self.cache_lookup(client, cache).map_err(|e| (0, e))?;
        self.check_bulk(client, gi, handles)?;
        // Object memory of every object first, then the metadata: a platform failure frees none.
        for (i, &h) in handles.iter().enumerate() {
            let (slab, idx) = self.located_slab(client, h).map_err(|e| (i, e))?;
            if let Err(e) = self.free_prepare(client, gi, slab, idx) {
                for &done in handles.iter().take(i) {
                    if let Ok((slab, idx)) = self.located_slab(client, done) {
                        self.debug_bytes_restore(client, gi, slab, idx, true);
                    }
                }
                return Err((i, e));
            }
        }
        for (i, &h) in handles.iter().enumerate() {
            let (slab, idx) = self.located_slab(client, h).map_err(|e| (i, e))?;
            self.free_commit(client, gi, slab, idx).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Slab and index of a handle already validated as a slab object.
    fn located_slab(&self, client: ClientId, h: Handle) -> Result<(u32, u32), Error> {
        match self.locate(client, h)? {
            super::cache::Located::Slab { slab, idx, .. } => Ok((slab, idx)),
            _ => Err(super::BROKEN),
        }
    }

    /// The validation pass of the bulk operations: clears each object's bit as it is seen so
    /// a repeat looks free, then restores every bit it cleared.
    fn check_bulk(&mut self, client: ClientId, gi: u32, handles: &[Handle]) -> Result<(), (usize, Error)> {
        let mut bad = None;
        let mut seen = 0usize;
        for (i, &h) in handles.iter().enumerate() {
            match self.validate_free(client, gi, h) {
                Ok((s, idx)) => {
                    if let Err(e) = self.obj_bit_toggle(s, idx) {
                        bad = Some((i, e));
                        break;
                    }
                    seen += 1;
                }
                Err(e) => {
                    bad = Some((i, e));
                    break;
                }
            }
        }
        for &h in handles.iter().take(seen) {
            if let Ok(super::cache::Located::Slab { slab, idx, .. }) = self.locate(client, h) {
                self.obj_bit_toggle(slab, idx).map_err(|e| (0, e))?;
            }
        }
        match bad {
            Some(b) => Err(b),
            None => Ok(()),
        }
    }
}

//! The two-phase shrink: how a cache whose client runs a destructor gives slabs back.
//!
//! Linux 2.4 ran the dtor over a slab's objects in `kmem_slab_destroy()`; here the objects are
//! in the client's window and only the client can run its code. So the engine first takes the
//! empty slabs out of use (they move to the cache's `LIST_RELEASING`, where no allocation finds
//! them) and names them ([`Engine::shrink_begin`]); the client runs its dtor over their
//! objects; then [`Engine::shrink_commit`] with the plan's token releases exactly those slabs.
//! A commit with another token changes nothing. The plan stays pending until committed (or
//! the cache or client goes away); asking again names the same slabs.

use protocol::{CacheId, ClientId, Error, Handle, PAGE_SIZE};

use super::storage::{LIST_EMPTY, LIST_RELEASING, NIL};
use super::{BROKEN, Engine, Platform};

/// A pending two-phase shrink, as [`Engine::shrink_begin`] describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePlan {
    /// Names the plan in [`Engine::shrink_commit`].
    pub token: u32,
    /// Slabs named (the first `slabs` entries of the caller's buffer).
    pub slabs: usize,
    /// Whether the cache has more empty slabs than the plan holds.
    pub more: bool,
}

impl<P: Platform> Engine<'_, P> {
    /// First step of a two-phase shrink (`ShrinkBegin`): moves up to `out.len()` empty slabs
    /// of `cache` out of use and writes the window offset of each slab's first byte into `out`.
    /// With a plan already pending, names its slabs again under the same token.
    pub fn shrink_begin(&mut self, client: ClientId, cache: CacheId, out: &mut [Handle]) -> Result<ReleasePlan, Error> {
        let gi = self.cache_lookup(client, cache)?;
        let mut token = self.cache(gi)?.release_token;
        if token == 0 {
            token = match self.next_seq() as u32 {
                0 => 1,
                t => t,
            };
            for _ in 0..out.len() {
                let head = self.cache(gi)?.heads.get(usize::from(LIST_EMPTY)).copied().unwrap_or(NIL);
                if head == NIL {
                    break;
                }
                self.slab_move(gi, head, LIST_RELEASING)?;
            }
            self.cache_mut(gi)?.release_token = token;
        }
        let mut slabs = 0usize;
        let mut s = self.cache(gi)?.heads.get(usize::from(LIST_RELEASING)).copied().unwrap_or(NIL);
        while s != NIL {
            let d = self.slab(s)?;
            let slot = out.get_mut(slabs).ok_or(BROKEN)?;
            *slot = Handle(u64::from(d.first_page) * PAGE_SIZE as u64);
            slabs += 1;
            s = d.next;
        }
        let more = self.cache(gi)?.heads.get(usize::from(LIST_EMPTY)).is_some_and(|&h| h != NIL);
        Ok(ReleasePlan { token, slabs, more })
    }

    /// Second step (`ShrinkCommit`): releases the slabs of the pending plan `token` to the
    /// pool; returns the pages released. No plan pending, or another token → `InvalidArgument`
    /// and nothing changes.
    pub fn shrink_commit(&mut self, client: ClientId, cache: CacheId, token: u32) -> Result<u32, Error> {
        let gi = self.cache_lookup(client, cache)?;
        let pending = self.cache(gi)?.release_token;
        if pending == 0 || token != pending {
            return Err(Error::InvalidArgument);
        }
        let mut pages = 0u32;
        loop {
            let head = self.cache(gi)?.heads.get(usize::from(LIST_RELEASING)).copied().unwrap_or(NIL);
            if head == NIL {
                break;
            }
            pages = pages.saturating_add(self.slab_destroy(gi, head)?);
        }
        self.cache_mut(gi)?.release_token = 0;
        Ok(pages)
    }
}

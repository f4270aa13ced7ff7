//! What the dispatch's memory-pressure policy works with: why an allocation failed
//! ([`Shortage`]), a bounded shrink, the caches that may be reaped, and the caches of a client
//! by slot (no list to collect, however many).

use protocol::{CacheId, ClientId, Error};

use super::storage::{LIST_EMPTY, NIL};
use super::{Engine, Platform};

/// Why an allocation could not get memory. A client sees only `QuotaExceeded` or
/// `OutOfMemory` ([`ShortageKind::error`]); the dispatch's memory-pressure policy needs to know
/// whose shortage it is: a client's own (its quota, its tracking budget, its window) is relieved
/// from that client alone, only a shared one (the pool, the slab descriptors) from others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortageKind {
    /// The client's frame quota does not cover the pages.
    Quota,
    /// Its quota covers the slab's pages but not the private frames of its STORE_USER records.
    Tracking,
    /// No free run of pages in the client's window (full, or fragmented for this order).
    Window,
    /// The global frame pool is short.
    Pool,
    /// The global slab-descriptor table is exhausted.
    SlabDescriptors,
}

impl ShortageKind {
    /// The error the client sees.
    pub const fn error(self) -> Error {
        match self {
            ShortageKind::Quota | ShortageKind::Tracking => Error::QuotaExceeded,
            ShortageKind::Window | ShortageKind::Pool | ShortageKind::SlabDescriptors => Error::OutOfMemory,
        }
    }

    /// Whether only the client itself can relieve it (its quota, tracking budget or window).
    pub const fn is_own(self) -> bool {
        matches!(self, ShortageKind::Quota | ShortageKind::Tracking | ShortageKind::Window)
    }
}

/// The latest allocation failure for lack of memory ([`Engine::take_shortage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shortage {
    /// Who was allocating.
    pub client: ClientId,
    pub kind: ShortageKind,
    /// How much is missing: frames (quota, tracking, pool), contiguous window pages (window),
    /// descriptors (slab descriptors).
    pub needed: u32,
}

/// Cache flags that forbid reaping under memory pressure: `SLAB_NO_REAP` and
/// `SLAB_TYPESAFE_BY_RCU` (`flags::SLAB_NEVER_REAPED`). An explicit `Shrink` still works on such
/// a cache, as `kmem_cache_shrink()` does. A cache with a dtor is never reaped either (its
/// slabs leave only through the two-phase shrink, after the client ran the dtor).
pub const NO_REAP_FLAGS: u32 = protocol::flags::SLAB_NEVER_REAPED;

/// Whether cache flags `flags` forbid reaping.
pub(crate) const fn forbids_reaping(flags: u32) -> bool {
    flags & NO_REAP_FLAGS != 0
}

/// Memory given back: pool pages and slab descriptors (one per slab).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    pub pages: u32,
    pub slabs: u32,
}

impl Released {
    /// Nothing.
    pub const NONE: Released = Released { pages: 0, slabs: 0 };
    /// As much as there is.
    pub const ALL: Released = Released { pages: u32::MAX, slabs: u32::MAX };

    /// Whether `self` is at least `want` in both counts.
    pub const fn covers(&self, want: &Released) -> bool {
        self.pages >= want.pages && self.slabs >= want.slabs
    }

    /// What is still missing of `want` after `self`.
    pub const fn short_of(&self, want: &Released) -> Released {
        Released { pages: want.pages.saturating_sub(self.pages), slabs: want.slabs.saturating_sub(self.slabs) }
    }

    /// Both amounts together.
    pub const fn plus(&self, other: &Released) -> Released {
        Released { pages: self.pages.saturating_add(other.pages), slabs: self.slabs.saturating_add(other.slabs) }
    }
}

impl<P: Platform> Engine<'_, P> {
    /// Cache slots per client (the bound of [`Self::cache_in_slot`]).
    pub fn cache_slots(&self) -> u16 {
        self.config.max_caches_per_client
    }

    /// The live cache in slot `slot` of `client`, if any.
    pub fn cache_in_slot(&self, client: ClientId, slot: u16) -> Option<CacheId> {
        if self.client(client).is_err() || slot >= self.config.max_caches_per_client {
            return None;
        }
        let gi = self.cache_slot(client, slot);
        match self.cache(gi) {
            Ok(c) if c.live => self.cache_id(gi).ok(),
            _ => None,
        }
    }

    /// Whether memory pressure may reap `cache` (its depot flushed, its empty slabs released).
    pub fn cache_reapable(&self, client: ClientId, cache: CacheId) -> Result<bool, Error> {
        Ok(!self.cache(self.cache_lookup(client, cache)?)?.no_reap)
    }

    /// Forbid (or allow again) reaping `cache` under memory pressure (what `SLAB_NO_REAP`,
    /// `SLAB_TYPESAFE_BY_RCU` and a dtor set at creation).
    pub fn cache_set_no_reap(&mut self, client: ClientId, cache: CacheId, no_reap: bool) -> Result<(), Error> {
        let gi = self.cache_lookup(client, cache)?;
        self.cache_mut(gi)?.no_reap = no_reap;
        Ok(())
    }

    /// Set the generation of `client`'s free cache slot `slot` (tests drive a slot to the end of
    /// its generations cheaply). `InvalidArgument` for a live slot or a generation out of
    /// `1..=cache_generation_max()`.
    #[cfg(feature = "testing")]
    pub fn cache_slot_set_generation(&mut self, client: ClientId, slot: u16, generation: u32) -> Result<(), Error> {
        self.client(client)?;
        if slot >= self.config.max_caches_per_client || generation == 0 || generation > self.cache_generation_max() {
            return Err(Error::InvalidArgument);
        }
        let c = self.cache_mut(self.cache_slot(client, slot))?;
        if c.live {
            return Err(Error::InvalidArgument);
        }
        c.generation = generation;
        Ok(())
    }

    /// Release empty slabs of `cache` until `want` is covered or none is left. A bounded
    /// `kmem_cache_shrink()`: memory pressure takes only what it needs.
    pub fn cache_shrink_some(&mut self, client: ClientId, cache: CacheId, want: Released) -> Result<Released, Error> {
        let gi = self.cache_lookup(client, cache)?;
        let mut got = Released::NONE;
        while !got.covers(&want) {
            let head = self.cache(gi)?.heads.get(usize::from(LIST_EMPTY)).copied().unwrap_or(NIL);
            if head == NIL {
                break;
            }
            let pages = self.slab_destroy(gi, head)?;
            got = got.plus(&Released { pages, slabs: 1 });
        }
        Ok(got)
    }
}

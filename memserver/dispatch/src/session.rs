//! Per-client server state kept beside the engine: handshake, permissions, magazine slots
//! and their depots, request counters.

use protocol::control::MAGAZINE_MAX;
use protocol::reply::Stats;
use protocol::request::ClientName;
use protocol::slub_debug::SlubDebug;
use protocol::{CacheId, Handle};

/// Most control-region slots a client can have (`system.toml` `server.magazine_slots` is
/// checked against it): the protocol's [`SLOTS_MAX`](protocol::control::SLOTS_MAX).
pub const MAX_SLOTS: usize = protocol::control::SLOTS_MAX as usize;

/// Full magazines the depot of one (client, cache) keeps before it drains to the slabs.
pub const DEPOT_MAGAZINES: usize = 2;

/// Where a client's session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No client in this slot.
    Vacant,
    /// The runner admitted the client (engine attached, memory prepared); `Hello` not yet seen.
    Admitted,
    /// `Hello` succeeded: every request is served.
    Open,
}

/// A full magazine kept by the server: objects allocated in the engine, held by neither the
/// client nor the slabs.
#[derive(Clone, Copy, Debug)]
pub struct DepotMagazine {
    pub(crate) count: u16,
    pub(crate) handles: [Handle; MAGAZINE_MAX],
}

impl DepotMagazine {
    const EMPTY: DepotMagazine = DepotMagazine { count: 0, handles: [Handle(0); MAGAZINE_MAX] };

    pub(crate) fn handles(&self) -> &[Handle] {
        self.handles.get(..usize::from(self.count)).unwrap_or(&[])
    }
}

/// The depot of one (client, cache): full magazines the client drained, handed out again on
/// the next refill before the slabs are touched (Bonwick & Adams 2001, §3.3). Its objects are
/// parked in the engine, which is how a client giving one back again is caught.
#[derive(Clone, Copy, Debug)]
pub struct Depot {
    pub(crate) full: [DepotMagazine; DEPOT_MAGAZINES],
    pub(crate) len: usize,
}

impl Depot {
    pub(crate) const EMPTY: Depot = Depot { full: [DepotMagazine::EMPTY; DEPOT_MAGAZINES], len: 0 };

    /// Whether another full magazine fits.
    pub(crate) fn has_room(&self) -> bool {
        self.len < DEPOT_MAGAZINES
    }

    /// Keeps `handles` as one full magazine; `false` when the depot is full.
    pub(crate) fn push(&mut self, handles: &[Handle]) -> bool {
        let Some(slot) = self.full.get_mut(self.len) else { return false };
        let Some(dst) = slot.handles.get_mut(..handles.len()) else { return false };
        dst.copy_from_slice(handles);
        slot.count = handles.len() as u16;
        self.len += 1;
        true
    }

    /// Takes the newest full magazine.
    pub(crate) fn pop(&mut self) -> Option<DepotMagazine> {
        self.len = self.len.checked_sub(1)?;
        self.full.get(self.len).copied()
    }
}

/// One control-region slot as the server knows it (the shared copy is never trusted).
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// The cache bound to the slot.
    pub(crate) cache: Option<CacheId>,
    /// Handles per magazine.
    pub(crate) capacity: u16,
    /// The depot of that cache.
    pub(crate) depot: Depot,
}

impl Slot {
    const EMPTY: Slot = Slot { cache: None, capacity: 0, depot: Depot::EMPTY };
}

/// Everything the dispatch layer keeps per client.
#[derive(Clone, Debug)]
pub struct Session {
    pub(crate) phase: Phase,
    pub(crate) name: ClientName,
    pub(crate) introspect: bool,
    pub(crate) window_pages: u32,
    /// Its `slub_debug` setting (for the caches it creates).
    pub(crate) slub_debug: SlubDebug,
    pub(crate) slots: [Slot; MAX_SLOTS],
    pub(crate) stats: Stats,
}

impl Session {
    /// A vacant session (storage for [`Server::new`](super::Server::new) is filled with it).
    pub const VACANT: Session = Session {
        phase: Phase::Vacant,
        name: ClientName::new(),
        introspect: false,
        window_pages: 0,
        slub_debug: SlubDebug::NONE,
        slots: [Slot::EMPTY; MAX_SLOTS],
        stats: Stats {
            pool_pages: 0,
            pool_free_pages: 0,
            client: 0,
            client_pages: 0,
            quota_pages: 0,
            caches: 0,
            live_objects: 0,
            magazine_objects: 0,
            requests: 0,
            allocs: 0,
            frees: 0,
            refills: 0,
            drains: 0,
            flushes: 0,
            objects_refilled: 0,
            objects_drained: 0,
            errors: 0,
            alloc_hits: 0,
            free_hits: 0,
            magazine_misses: 0,
            granted_pages: 0,
            resident_pages: 0,
            grant_violations: 0,
            reclaimable_pages: 0,
        },
    };

    /// The slot bound to `cache`, if any.
    pub(crate) fn slot_of(&self, cache: CacheId) -> Option<u16> {
        self.slots.iter().position(|s| s.cache == Some(cache)).map(|i| i as u16)
    }
}

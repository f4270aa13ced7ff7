//! Memory pressure: what the server does when an allocation finds no memory. The policy is a
//! trait (talc's `OomHandler` is the model): the engine says why it could not allocate
//! ([`Shortage`]), the policy frees memory through [`Reclaim`], the allocation is retried once.
//!
//! [`FairReclaim`], the default, follows issue 11's rules: a client's own shortage (its quota,
//! its tracking budget, its window) is relieved from that client alone; only a shared one (the
//! pool, the slab descriptors) reclaims from the others, then in turns remembered across events
//! and only what is missing plus a small batch. Nothing is ever reaped from a cache that must
//! not be ([`memserver_engine::NO_REAP_FLAGS`], `Engine::cache_set_no_reap`).

use memserver_engine::{Platform, Released, Shortage, ShortageKind};
use protocol::{ClientId, Error};

use super::{ControlAccess, Server};

/// What a reclaim takes beyond what is missing, so the next allocations do not each pay for
/// an event of their own.
pub const RECLAIM_BATCH: u32 = 4;

/// What a [`PressurePolicy`] may take memory back with.
pub trait Reclaim {
    /// Client ids are `0..clients()`.
    fn clients(&self) -> u16;

    /// Take back from `client` until `want` is covered, if it can: first the empty slabs of
    /// its caches, then (still short) its depots flushed into the slabs and the slabs that
    /// empties. Caches that must not be reaped are left alone. Returns what was released.
    fn reclaim_from(&mut self, client: ClientId, want: Released) -> Released;
}

/// What the server does when an allocation meets a shortage.
pub trait PressurePolicy {
    /// An allocation of `shortage.client` failed for `shortage`: free memory through
    /// `reclaim`. Returns whether anything was freed (the allocation is then retried once).
    fn relieve(&mut self, shortage: &Shortage, reclaim: &mut dyn Reclaim) -> bool;
}

/// The default policy: own shortages from the client itself, shared ones from the client
/// then the others in turn, each event taking what is missing plus [`RECLAIM_BATCH`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FairReclaim {
    /// The client the next shared shortage reclaims from first.
    next: ClientId,
}

impl PressurePolicy for FairReclaim {
    fn relieve(&mut self, shortage: &Shortage, reclaim: &mut dyn Reclaim) -> bool {
        let needed = shortage.needed.saturating_add(RECLAIM_BATCH);
        let want = match shortage.kind {
            // Which pages would make a run is not known: everything of its own.
            ShortageKind::Window => Released::ALL,
            ShortageKind::SlabDescriptors => Released { pages: 0, slabs: needed },
            ShortageKind::Quota | ShortageKind::Tracking | ShortageKind::Pool => Released { pages: needed, slabs: 0 },
        };
        let mut got = reclaim.reclaim_from(shortage.client, want);
        if !shortage.kind.is_own() {
            let clients = reclaim.clients();
            let first = self.next;
            for i in 0..clients {
                if got.covers(&want) {
                    break;
                }
                let victim = ((u32::from(first) + u32::from(i)) % u32::from(clients)) as ClientId;
                if victim == shortage.client {
                    continue;
                }
                let taken = reclaim.reclaim_from(victim, got.short_of(&want));
                if taken != Released::NONE {
                    got = got.plus(&taken);
                    // The next shared shortage starts after the last client that gave.
                    self.next = ((u32::from(victim) + 1) % u32::from(clients)) as ClientId;
                }
            }
        }
        got != Released::NONE
    }
}

impl<'a, P: Platform + ControlAccess> Server<'a, P> {
    /// Replace the default [`FairReclaim`] policy.
    pub fn set_pressure_policy(&mut self, policy: &'a mut dyn PressurePolicy) {
        self.pressure.custom = Some(policy);
    }

    /// Runs an allocation; when it fails for lack of memory, the pressure policy frees what it
    /// decides from whom it decides, and the allocation is tried once more.
    pub(super) fn with_pressure_relief<T>(
        &mut self,
        client: ClientId,
        mut op: impl FnMut(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.engine.take_shortage();
        let error = match op(self) {
            Err(e @ (Error::OutOfMemory | Error::QuotaExceeded)) => e,
            other => return other,
        };
        let Some(shortage) = self.engine.take_shortage().filter(|s| s.client == client) else {
            return Err(error);
        };
        let relieved = match self.pressure.custom.take() {
            Some(policy) => {
                let relieved = policy.relieve(&shortage, self);
                self.pressure.custom = Some(policy);
                relieved
            }
            None => {
                let mut policy = self.pressure.fair;
                let relieved = policy.relieve(&shortage, self);
                self.pressure.fair = policy;
                relieved
            }
        };
        if relieved { op(self) } else { Err(error) }
    }
}

/// The policy a server runs.
pub(crate) struct Pressure<'a> {
    pub(crate) fair: FairReclaim,
    pub(crate) custom: Option<&'a mut dyn PressurePolicy>,
}

impl Pressure<'_> {
    pub(crate) const DEFAULT: Self = Pressure { fair: FairReclaim { next: 0 }, custom: None };
}

impl<P: Platform + ControlAccess> Reclaim for Server<'_, P> {
    fn clients(&self) -> u16 {
        u16::try_from(self.sessions.len()).unwrap_or(u16::MAX)
    }

    fn reclaim_from(&mut self, client: ClientId, want: Released) -> Released {
        let mut got = Released::NONE;
        // Pass 0: empty slabs as they are. Pass 1: depots flushed, and the slabs that empties.
        for pass in 0..2 {
            for slot in 0..self.engine.cache_slots() {
                if got.covers(&want) {
                    return got;
                }
                let Some(cache) = self.engine.cache_in_slot(client, slot) else { continue };
                if self.engine.cache_reapable(client, cache) != Ok(true) {
                    continue;
                }
                if pass == 1 && self.flush_depot(client, cache).is_err() {
                    self.account_internal(client, None, true);
                    continue;
                }
                match self.engine.cache_shrink_some(client, cache, got.short_of(&want)) {
                    Ok(released) => got = got.plus(&released),
                    Err(_) => self.account_internal(client, None, true),
                }
            }
        }
        got
    }
}

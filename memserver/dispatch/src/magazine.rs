//! The magazine layer's server half: control-region slots, the depot, `MagazineExchange`.
//!
//! The client can write its control region at any moment, so every exchange copies the
//! magazine out by value, validates the copy against server-private state (the slot's
//! capacity, the engine's object state), acts on the copy, and only then writes the new count
//! back. A bad magazine is an error reply that changes nothing. Objects in the depot are
//! *parked* in the engine (allocated, held by the server): a handle the depot holds coming
//! back from the client is a `DoubleFree` the engine finds in O(1), and every step of an
//! exchange costs O(1) per object moved.

use protocol::control::{self, MAGAZINE_MAX, Magazine, MagazineRole};
use protocol::request::ExchangeOp;
use protocol::{CacheId, ClientId, Error, Exchanged, Handle};

use super::{ControlAccess, Server};
use memserver_engine::Platform;

/// Magazine capacity by object stride (Bonwick & Adams 2001 size the magazines of small
/// objects larger); every value at most [`MAGAZINE_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MagazineSizes {
    /// Objects up to 256 bytes.
    pub small: u16,
    /// Up to 1 KiB.
    pub medium: u16,
    /// Up to 4 KiB.
    pub large: u16,
    /// Larger objects.
    pub huge: u16,
}

impl MagazineSizes {
    /// The defaults of `system.toml`.
    pub const DEFAULT: MagazineSizes = MagazineSizes { small: 64, medium: 32, large: 16, huge: 8 };

    /// Capacity of a magazine for objects of `stride` bytes.
    pub const fn capacity_for(&self, stride: u32) -> u16 {
        match stride {
            0..=256 => self.small,
            257..=1024 => self.medium,
            1025..=4096 => self.large,
            _ => self.huge,
        }
    }

    /// The largest capacity.
    pub fn largest(&self) -> u16 {
        self.small.max(self.medium).max(self.large).max(self.huge)
    }

    /// Every capacity in 1..=MAGAZINE_MAX.
    pub fn is_valid(&self) -> bool {
        [self.small, self.medium, self.large, self.huge].iter().all(|&c| c >= 1 && usize::from(c) <= MAGAZINE_MAX)
    }
}

/// A magazine's handles copied out of shared memory and checked against the slot capacity.
struct Taken {
    handles: [Handle; 2 * MAGAZINE_MAX],
    len: usize,
}

impl Taken {
    fn new() -> Self {
        Taken { handles: [Handle(0); 2 * MAGAZINE_MAX], len: 0 }
    }

    fn extend(&mut self, magazine: &Magazine, capacity: u16) -> Result<(), Error> {
        let src = magazine.checked_handles(capacity)?;
        // Never expected to fail: both magazines were checked against a capacity ≤ MAGAZINE_MAX.
        let end = self.len.checked_add(src.len()).ok_or(Error::Internal)?;
        let dst = self.handles.get_mut(self.len..end).ok_or(Error::Internal)?;
        // Slices of one length: a plain copy, no check per handle.
        for (d, &h) in dst.iter_mut().zip(src) {
            *d = Handle(h);
        }
        self.len = end;
        Ok(())
    }

    fn as_slice(&self) -> &[Handle] {
        self.handles.get(..self.len).unwrap_or(&[])
    }
}

impl<P: Platform + ControlAccess> Server<'_, P> {
    /// Binds a free control-region slot to a new cache; `(None, 0)` when none is free (the
    /// cache then works by IPC only).
    pub(super) fn bind_slot(&mut self, client: ClientId, cache: CacheId, stride: u32) -> (Option<u16>, u16) {
        let capacity = self.config.magazine_sizes.capacity_for(stride);
        let slots = usize::from(self.config.magazine_slots);
        let Some(session) = self.sessions.get_mut(usize::from(client)) else { return (None, 0) };
        let Some(index) = session.slots.iter().take(slots).position(|s| s.cache.is_none()) else {
            return (None, 0);
        };
        let Some(control) = self.engine.platform_mut().control(client) else { return (None, 0) };
        let slot = index as u16;
        if control::write_slot_binding(control, slot, Some((cache, capacity))).is_err() {
            return (None, 0);
        }
        if let Some(s) = session.slots.get_mut(index) {
            s.cache = Some(cache);
            s.capacity = capacity;
            s.depot = super::session::Depot::EMPTY;
        }
        (Some(slot), capacity)
    }

    /// Frees the slot of a destroyed cache.
    pub(super) fn unbind_slot(&mut self, client: ClientId, cache: CacheId) {
        let Some(session) = self.sessions.get_mut(usize::from(client)) else { return };
        let Some(slot) = session.slot_of(cache) else { return };
        if let Some(s) = session.slots.get_mut(usize::from(slot)) {
            s.cache = None;
            s.capacity = 0;
            s.depot = super::session::Depot::EMPTY;
        }
        if let Some(control) = self.engine.platform_mut().control(client) {
            let _ = control::write_slot_binding(control, slot, None);
        }
    }

    /// The slot's capacity, after checking that `slot` is bound to `cache`.
    fn slot_capacity(&self, client: ClientId, cache: CacheId, slot: u16) -> Result<u16, Error> {
        let session = self.sessions.get(usize::from(client)).ok_or(Error::PermissionDenied)?;
        match session.slots.get(usize::from(slot)) {
            Some(s) if s.cache == Some(cache) => Ok(s.capacity),
            _ => Err(Error::InvalidArgument),
        }
    }

    /// `MagazineExchange`.
    pub(super) fn exchange(
        &mut self,
        client: ClientId,
        cache: CacheId,
        slot: u16,
        op: ExchangeOp,
    ) -> Result<Exchanged, Error> {
        self.engine.cache_check(client, cache)?;
        let capacity = self.slot_capacity(client, cache, slot)?;
        match op {
            ExchangeOp::Refill => self.refill(client, cache, slot, capacity),
            ExchangeOp::Drain => {
                let loaded = self.read_magazine(client, slot, MagazineRole::Loaded)?;
                let mut taken = Taken::new();
                taken.extend(&loaded, capacity)?;
                let n = taken.len;
                self.keep_in_depot(client, cache, slot, taken.as_slice())?;
                self.write_count(client, slot, MagazineRole::Loaded, 0)?;
                self.count(client, |s| {
                    s.drains = s.drains.saturating_add(1);
                    s.objects_drained = s.objects_drained.saturating_add(n as u64);
                });
                Ok(Exchanged { count: 0, fresh_mask: 0 })
            }
            ExchangeOp::Flush => {
                let n = self.take_back_magazines(client, cache, slot)?;
                self.flush_depot(client, cache)?;
                self.count(client, |s| {
                    s.flushes = s.flushes.saturating_add(1);
                    s.objects_drained = s.objects_drained.saturating_add(n as u64);
                });
                Ok(Exchanged { count: 0, fresh_mask: 0 })
            }
        }
    }

    /// `Refill`: the loaded magazine must be empty; it gets a full magazine from the depot, or
    /// fresh objects from the slabs.
    fn refill(&mut self, client: ClientId, cache: CacheId, slot: u16, capacity: u16) -> Result<Exchanged, Error> {
        let loaded = self.read_magazine(client, slot, MagazineRole::Loaded)?;
        if loaded.count != 0 {
            return Err(Error::InvalidArgument);
        }
        let from_depot = self
            .sessions
            .get_mut(usize::from(client))
            .and_then(|s| s.slots.get_mut(usize::from(slot)))
            .and_then(|s| s.depot.pop());
        let (magazine, fresh_mask) = match from_depot {
            Some(full) => {
                // Parked since their drain: back to the client.
                if let Err(e) = self.engine.cache_unpark_bulk(client, cache, full.handles()) {
                    self.depot_push(client, slot, full.handles());
                    return Err(e);
                }
                (Magazine::from_handle_slice(full.handles())?, 0)
            }
            None => {
                let mut out = [Handle(0); MAGAZINE_MAX];
                let want = out.get_mut(..usize::from(capacity)).ok_or(Error::Internal)?;
                let (n, fresh) =
                    self.with_pressure_relief(client, |s| s.engine.cache_alloc_bulk(client, cache, want))?;
                (Magazine::from_handle_slice(out.get(..n).ok_or(Error::Internal)?)?, fresh)
            }
        };
        let control = self.engine.platform_mut().control(client).ok_or(Error::NotSupported)?;
        control::write_magazine(control, slot, MagazineRole::Loaded, &magazine)?;
        let count = magazine.count as u16;
        self.count(client, |s| {
            s.refills = s.refills.saturating_add(1);
            s.objects_refilled = s.objects_refilled.saturating_add(u64::from(count));
        });
        Ok(Exchanged { count, fresh_mask })
    }

    /// Takes back both magazines of a slot (loaded, then previous) into the slabs, all or
    /// nothing, and zeroes their counts. Returns how many objects came back.
    pub(super) fn take_back_magazines(&mut self, client: ClientId, cache: CacheId, slot: u16) -> Result<usize, Error> {
        let capacity = self.slot_capacity(client, cache, slot)?;
        let taken = self.both_magazines(client, slot, capacity)?;
        self.engine.cache_free_bulk(client, cache, taken.as_slice()).map_err(|(_, e)| e)?;
        self.write_count(client, slot, MagazineRole::Loaded, 0)?;
        self.write_count(client, slot, MagazineRole::Previous, 0)?;
        Ok(taken.len)
    }

    /// Both magazines of `slot` copied out (loaded, then previous), checked against `capacity`.
    fn both_magazines(&mut self, client: ClientId, slot: u16, capacity: u16) -> Result<Taken, Error> {
        let loaded = self.read_magazine(client, slot, MagazineRole::Loaded)?;
        let previous = self.read_magazine(client, slot, MagazineRole::Previous)?;
        let mut taken = Taken::new();
        taken.extend(&loaded, capacity)?;
        taken.extend(&previous, capacity)?;
        Ok(taken)
    }

    /// Objects a destroy would take back before destroying: the depot's, and both magazines
    /// of `slot` if they validate (a tampered magazine gives none back). Reads copies only.
    pub(super) fn returnable_objects(&mut self, client: ClientId, cache: CacheId, slot: Option<u16>) -> u32 {
        let Some(session) = self.sessions.get(usize::from(client)) else { return 0 };
        let depot = slot
            .and_then(|i| session.slots.get(usize::from(i)))
            .map_or(0, |s| s.depot.full.iter().take(s.depot.len).map(|m| u32::from(m.count)).sum::<u32>());
        let Some(slot) = slot else { return depot };
        let Ok(capacity) = self.slot_capacity(client, cache, slot) else { return depot };
        let Ok(taken) = self.both_magazines(client, slot, capacity) else { return depot };
        match self.engine.cache_check_bulk(client, cache, taken.as_slice()) {
            Ok(()) => depot + taken.len as u32,
            Err(_) => depot,
        }
    }

    /// Handles coming back from a client go into the depot as one full magazine, parked in
    /// the engine, or straight to the slabs when the depot is full. Either way the engine
    /// validates every handle first (an allocated object of this cache held by this client,
    /// none repeated): a bad one changes nothing.
    fn keep_in_depot(&mut self, client: ClientId, cache: CacheId, slot: u16, handles: &[Handle]) -> Result<(), Error> {
        let room = self
            .sessions
            .get(usize::from(client))
            .and_then(|s| s.slots.get(usize::from(slot)))
            .is_some_and(|s| s.depot.has_room());
        if !room {
            return self.engine.cache_free_bulk(client, cache, handles).map_err(|(_, e)| e);
        }
        self.engine.cache_park_bulk(client, cache, handles).map_err(|(_, e)| e)?;
        if !self.depot_push(client, slot, handles) {
            // Never expected (room was checked): unpark rather than lose track of them.
            self.engine.cache_unpark_bulk(client, cache, handles)?;
            return Err(Error::Internal);
        }
        Ok(())
    }

    /// Puts `handles` into the depot of `slot` as one full magazine; `false` if it is full.
    fn depot_push(&mut self, client: ClientId, slot: u16, handles: &[Handle]) -> bool {
        self.sessions
            .get_mut(usize::from(client))
            .and_then(|s| s.slots.get_mut(usize::from(slot)))
            .is_some_and(|s| s.depot.push(handles))
    }

    /// Every depot magazine of `cache` back to the slabs (before shrink and destroy, and under
    /// memory pressure, see [`crate::pressure`]).
    pub(super) fn flush_depot(&mut self, client: ClientId, cache: CacheId) -> Result<(), Error> {
        let Some(session) = self.sessions.get_mut(usize::from(client)) else { return Ok(()) };
        let Some(slot) = session.slot_of(cache) else { return Ok(()) };
        let Some(s) = session.slots.get_mut(usize::from(slot)) else { return Ok(()) };
        while let Some(full) = s.depot.pop() {
            if let Err(e) = self.engine.cache_free_parked_bulk(client, cache, full.handles()) {
                // The handles were validated on the way in, so only the server can be at
                // fault; keep them rather than lose track of them.
                s.depot.push(full.handles());
                return Err(if e.is_internal() { e } else { Error::Internal });
            }
        }
        Ok(())
    }

    /// Objects the client's two magazines of `slot` hold, as its control region says (an
    /// informational figure: clamped to the capacity, never trusted for anything else).
    pub(super) fn magazine_objects(&mut self, client: ClientId, slot: u16, capacity: u16) -> u32 {
        let mut total = 0u32;
        for role in [MagazineRole::Loaded, MagazineRole::Previous] {
            if let Ok(m) = self.read_magazine(client, slot, role) {
                total += m.count.min(u32::from(capacity));
            }
        }
        total
    }

    fn read_magazine(&mut self, client: ClientId, slot: u16, role: MagazineRole) -> Result<Magazine, Error> {
        let control = self.engine.platform_mut().control(client).ok_or(Error::NotSupported)?;
        control::read_magazine(control, slot, role)
    }

    fn write_count(&mut self, client: ClientId, slot: u16, role: MagazineRole, count: u32) -> Result<(), Error> {
        let control = self.engine.platform_mut().control(client).ok_or(Error::NotSupported)?;
        control::write_count(control, slot, role, count)
    }
}

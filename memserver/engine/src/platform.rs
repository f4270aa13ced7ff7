//! The seam between the engine and the machine: the [`Platform`] hooks, and the record of
//! their failures ([`Fault`]) the dispatch logs.

use core::cell::Cell;

use protocol::{ClientId, Error, PAGE_SIZE};

/// What the engine needs from the machine it runs on.
///
/// # Failures
/// Every hook is fallible and the engine never drops a failure. Its rules, which keep its
/// metadata consistent whatever a hook does:
/// * `map` may fail for lack of resources (seL4: no untyped left for page tables): the engine
///   undoes everything (already mapped chunks are released again) and the allocation fails
///   with `map`'s error, changing nothing.
/// * `release` and `private_release` run before a frame goes back to the pool. The engine's
///   bookkeeping moves either way (the pages are gone from the client, the slab is gone), but a
///   frame whose release failed is **quarantined**, never handed out again
///   (`PoolStats::quarantined_frames`): on seL4 it may still be mapped into its old client.
///   The operation itself completes; the failure is recorded as a [`Fault`] the dispatch logs.
/// * `read`, `write`, `fill` and `private_frame` run before the engine commits the change they
///   serve (checks before an allocation, poison and red zones before a free's bookkeeping), so
///   a failure leaves the metadata as it was; the operation fails with [`Error::Internal`] and
///   the platform's own error is kept in the [`Fault`].
///
/// Platforms return [`Error::Internal`] for anything but a resource shortage in `map`.
pub trait Platform {
    /// Window pages `[first_page, first_page + frames.len())` of `client` are now backed by
    /// pool frames (`frames[i]` backs page `first_page + i`). seL4: map derived frame caps into
    /// the client's VSpace. Host: record the grant (the resident-memory audit bounds the client
    /// by it).
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error>;
    /// Those pages go back to the pool (the same frames given again): seL4 unmaps, revokes and
    /// zeroes; the host punches a hole (memory back to the OS).
    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error>;
    /// Copy object memory out (never a reference into client-writable memory).
    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Copy into object memory.
    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error>;
    /// Fill object memory with one byte.
    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error>;
    /// A pool frame used by the server itself (metadata, never mapped into any client): its
    /// bytes. The engine initialises a frame it takes for itself, so the contents found the
    /// first time may be anything.
    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error>;
    /// A private frame goes back to the pool: its memory may go back to the OS (host:
    /// `madvise(MADV_DONTNEED)`; seL4: zero it, or unmap it from the server).
    fn private_release(&mut self, frame: u32) -> Result<(), Error>;
}

/// Which platform hook failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Map,
    Release,
    Read,
    Write,
    Fill,
    PrivateFrame,
    PrivateRelease,
}

/// A failure of the server itself (a platform hook failed), recorded for the runner's log:
/// which hook, for which client (0 for private frames), and the platform's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub hook: Hook,
    pub client: ClientId,
    pub error: Error,
}

/// Platform failures so far and the latest (`Cell`s: reads fail in `&self` paths).
#[derive(Default)]
pub(crate) struct FaultLog {
    pub(crate) count: Cell<u64>,
    pub(crate) last: Cell<Option<Fault>>,
}

impl FaultLog {
    /// Record that a platform hook failed; returns the error the operation reports.
    pub(crate) fn record(&self, hook: Hook, client: ClientId, error: Error) -> Error {
        self.count.set(self.count.get().saturating_add(1));
        self.last.set(Some(Fault { hook, client, error }));
        Error::Internal
    }
}

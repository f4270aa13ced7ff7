//! Holding a Linux client to its grant: the audit of its window memfd.
//!
//! A client maps its whole window read-write, so nothing stops it from touching pages the
//! engine never gave it; every page it touches is committed in the memfd. The runner therefore
//! audits each window after every 16th batch of requests from that client and, on a timer, every
//! window: it reads the memfd's allocated blocks (`fstat` `st_blocks`, one syscall), and while
//! `resident <= granted + slack` that is all. Above it, it walks the memfd's data extents
//! (`lseek(SEEK_DATA)` / `lseek(SEEK_HOLE)`), punches every page of them that is not granted
//! (`fallocate(PUNCH_HOLE)`: the memory goes back to the OS and the page reads as zero again,
//! in the client too), and counts a violation. Pages a client committed with `fallocate` on
//! the memfd without writing them are counted by `st_blocks` but are holes to `SEEK_DATA`; if
//! the walk leaves more than the grant resident, every ungranted run of the window is punched. A client with `violations_max` violations
//! within `violation_window` is disconnected and reclaimed.
//!
//! So a client can keep resident at most what it was granted plus `slack` pages (one slab of
//! the engine's largest order by default), and can hold more only transiently: for at most 16
//! more request batches or until the next timer pass. The control region needs no audit: it is a few pages, sealed
//! against growing, and the client may legitimately write all of it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use protocol::PAGE_SIZE;
use rustix::fs::SeekFrom;
use rustix::io::Errno;

use crate::grants::Grants;
use crate::memory::{MemoryError, SharedRegion};

/// When a client counts as breaking its grant, and what follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditPolicy {
    /// Pages a client may keep resident beyond its grant without a violation.
    pub slack_pages: u64,
    /// Violations within `violation_window` that get a client disconnected (at least 1).
    pub violations_max: u32,
    /// The window of time violations are counted in.
    pub violation_window: Duration,
}

impl AuditPolicy {
    /// The policy of `system.toml`'s `[server.audit]`.
    pub fn of(system: &memserver_system::System) -> AuditPolicy {
        let a = &system.server.audit;
        AuditPolicy {
            slack_pages: a.slack_pages.into(),
            violations_max: a.violations_max.max(1),
            violation_window: Duration::from_millis(a.violation_window_ms.into()),
        }
    }
}

/// What the audits of one client found so far.
#[derive(Clone, Debug, Default)]
pub struct AuditRecord {
    /// Violations since admission.
    pub violations: u32,
    /// Pages punched out of the window because they were not granted, since admission.
    pub punched_pages: u64,
    /// When the violations inside the current window of time happened.
    recent: VecDeque<Instant>,
}

/// The outcome of one audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Resident memory within the grant plus slack: nothing done.
    Held,
    /// Over it: the ungranted pages were punched out and a violation counted.
    Punched(Violation),
    /// Over it once too often: punched as well, and the client is to be disconnected.
    Reclaim(Violation),
}

/// The figures of one violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Pages granted at the audit.
    pub granted: u64,
    /// Pages resident when the audit looked.
    pub resident: u64,
    /// Pages punched out.
    pub punched: u64,
    /// Violations within the policy's window of time, this one included.
    pub recent: u32,
}

/// Audits one window against its grant (see the module documentation). `now` is asked only
/// when there is a violation to date (a window within its grant costs one `fstat`).
#[inline]
pub fn audit(
    window: &SharedRegion,
    grants: &Grants,
    record: &mut AuditRecord,
    policy: &AuditPolicy,
    now: impl FnOnce() -> Instant,
) -> Result<Verdict, MemoryError> {
    let resident = window.resident_pages()?;
    if resident <= grants.granted().saturating_add(policy.slack_pages) {
        return Ok(Verdict::Held);
    }
    violation(window, grants, record, policy, resident, now())
}

/// The window holds more than its grant plus slack: punch, count, judge.
#[cold]
fn violation(
    window: &SharedRegion,
    grants: &Grants,
    record: &mut AuditRecord,
    policy: &AuditPolicy,
    resident: u64,
    now: Instant,
) -> Result<Verdict, MemoryError> {
    let granted = grants.granted();
    punch_ungranted(window, grants)?;
    if window.resident_pages()? > granted {
        // Pages the walk cannot see: `fallocate`d through the memfd but never written, which
        // `SEEK_DATA` reports as holes and `st_blocks` counts. Punch every ungranted run.
        for (first, count) in grants.ungranted_runs(0, grants.window_pages()) {
            window.release(first, count)?;
        }
    }
    let punched = resident.saturating_sub(window.resident_pages()?);
    record.violations = record.violations.saturating_add(1);
    record.punched_pages = record.punched_pages.saturating_add(punched);
    while record.recent.front().is_some_and(|t| now.saturating_duration_since(*t) > policy.violation_window) {
        record.recent.pop_front();
    }
    record.recent.push_back(now);
    let recent = u32::try_from(record.recent.len()).unwrap_or(u32::MAX);
    let violation = Violation { granted, resident, punched, recent };
    Ok(if recent >= policy.violations_max { Verdict::Reclaim(violation) } else { Verdict::Punched(violation) })
}

/// Punches every ungranted page inside the memfd's data extents (the pages a client wrote);
/// returns how many.
pub fn punch_ungranted(window: &SharedRegion, grants: &Grants) -> Result<u64, MemoryError> {
    let page = PAGE_SIZE as u64;
    let len = window.len() as u64;
    let mut offset = 0u64;
    let mut punched = 0u64;
    while offset < len {
        let data = match rustix::fs::seek(window.fd(), SeekFrom::Data(offset)) {
            Ok(data) => data,
            Err(Errno::NXIO) => break, // only a hole from `offset` to the end
            Err(e) => return Err(e.into()),
        };
        let hole = rustix::fs::seek(window.fd(), SeekFrom::Hole(data))?.min(len);
        for (first, count) in grants.ungranted_runs(data / page, hole.div_ceil(page)) {
            window.release(first, count)?;
            punched = punched.saturating_add(count);
        }
        if hole <= offset {
            break; // never expected; guards the loop against a kernel that does not advance
        }
        offset = hole;
    }
    Ok(punched)
}

#[cfg(test)]
mod tests;

//! The CPU the calling thread runs on, for the control region's CPU hints.
#![allow(unsafe_code)]

use protocol::control::cpu_hint;

/// [`cpu_hint`] of the CPU this thread runs on (0 if the C library cannot say). glibc reads it
/// from rseq or the vDSO, a few nanoseconds.
pub(crate) fn current_cpu_hint() -> u32 {
    // SAFETY: `sched_getcpu` takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).map_or(0, cpu_hint)
}

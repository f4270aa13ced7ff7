//! What a client task says to the root task (on [`SLOT_ENDPOINT`](crate::start::SLOT_ENDPOINT))
//! and how the root task tells its callers apart.
//!
//! Each message is a label and a few raw words. A task's report capability carries its task
//! number as the badge; its fault capability (the kernel sends its faults there) carries the
//! task number with [`FAULT_BADGE`] set, so a fault message cannot be confused with, or
//! forged as, another task's report.

/// `Send`, message register 0: the number of failed checks. The task then stops itself.
pub const LABEL_REPORT: u64 = 1 << 32;
/// `Call`: a load task has grown its caches; the root task answers when every load task is
/// ready (and starts the tasks that need a quiet pool).
pub const LABEL_READY: u64 = (1 << 32) + 1;
/// `Call`: a load task is done measuring and would free its memory; the root task answers
/// once the frame census with its memory held has been taken.
pub const LABEL_PAUSE: u64 = (1 << 32) + 2;
/// `Call`: the task is about to touch, on purpose, a page of its window it no longer has.
/// Message register 0: the window offset it will touch; 1: the frames it holds (what must
/// come back to the pool when it is reclaimed). The root task answers, then waits for the
/// fault.
pub const LABEL_EXPECT_FAULT: u64 = (1 << 32) + 3;

/// Badge bit of a task's fault capability.
pub const FAULT_BADGE: u64 = 1 << 20;
/// Task numbers (badges of report capabilities) are `1..TASK_BADGE_LIMIT`.
pub const TASK_BADGE_LIMIT: u64 = 1 << 16;

/// Who sent a message to the root task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Task `n` (0-based, in start order) on its report capability.
    Task(usize),
    /// The kernel, for a fault of task `n`.
    Fault(usize),
}

/// The report capability's badge of task `n` (0-based).
pub const fn report_badge(task: usize) -> u64 {
    task as u64 + 1
}

/// The fault capability's badge of task `n` (0-based).
pub const fn fault_badge(task: usize) -> u64 {
    FAULT_BADGE | (task as u64 + 1)
}

/// The sender of a message with `badge`; `None` for a badge the root task never minted.
pub fn sender(badge: u64) -> Option<Sender> {
    let task = badge & !FAULT_BADGE;
    if task == 0 || task >= TASK_BADGE_LIMIT {
        return None;
    }
    let index = usize::try_from(task - 1).ok()?;
    Some(if badge & FAULT_BADGE != 0 { Sender::Fault(index) } else { Sender::Task(index) })
}

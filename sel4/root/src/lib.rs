//! memserver-sel4-root: the seL4 root task's logic, tested on the host.
//!
//! # Design
//! The root task holds every capability at boot and builds the system `system.toml`
//! describes. What it builds is decided here, as data: the [`plan`] turns the description
//! (the server settings and every client with an seL4 `image`) into the memserver's CNode
//! layout, the pool frames and the paging reserve (together exactly `server.pool_pages`),
//! each client task's reserved window, its instance among the tasks of its image and the
//! peers whose agents it may call. How the run then unfolds is the [`supervisor`]'s state
//! machine: background tasks grow their caches and say they are ready, the other images run
//! one after another on a quiet pool, a client that faults is reported ([`fault`]), stopped
//! and reclaimed through the memserver's supervisor badge, the frame census is taken with the
//! background tasks' memory held and again at the end, and the verdict (`TEST_PASS` /
//! `TEST_FAIL`) follows from it all. The root task's glue (`qemu/root-task`) performs the
//! plan with kernel calls and feeds the supervisor the messages it receives.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

pub mod fault;
pub mod plan;
pub mod supervisor;

pub use plan::{BootPlan, ClientTask, Description, HeapClient, PlanError, TaskPlan};
pub use supervisor::{Action, Event, Stage, Supervisor, TaskInfo};

#[cfg(test)]
mod tests;

//! memserver-sel4-server: the memserver seL4 task's logic, tested on the host.
//!
//! # Design
//! The memserver task really owns the pool: the root task retyped `pool_pages` worth of
//! memory into frame capabilities in the memserver's CNode (less a paging reserve, handed over
//! as untyped memory). At start-up the task maps every pool frame into its own VSpace (the
//! *direct map*, [`FrameTable::map_direct`]), so it can copy object memory, zero frames and
//! keep private metadata without touching a client's mapping. Client windows start as
//! reserved, unmapped ranges. When the engine gives a client pages ([`Platform::map`]) the
//! [`FrameTable`] maps a derived capability of each frame into that client's VSpace, with
//! translation tables made on demand from the paging reserve ([`space`]); when pages go back
//! ([`Platform::release`]) it unmaps them, deletes and revokes the derived capabilities and
//! zeroes the frames before anyone else can have them. The frame census is computed from
//! this table and the kernel's capabilities, beside the engine's own count.
//!
//! Every kernel call goes through the [`Kernel`] trait and every dereference through
//! [`Memory`], so the logic runs on the host against a fake kernel (the tests); the task in
//! `qemu/memserver-task` is their rust-sel4 implementation plus the receive loop around
//! [`MemserverTask::handle`].
//!
//! [`Platform::map`]: memserver_engine::Platform::map
//! [`Platform::release`]: memserver_engine::Platform::release
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

extern crate alloc;

pub mod frames;
pub mod kernel;
pub mod platform;
pub mod sizing;
pub mod space;
pub mod task;

pub use frames::{EngineCount, FrameError, FrameState, FrameTable};
pub use kernel::{Kernel, KernelError, Memory};
pub use platform::Sel4Platform;
pub use task::{MemserverTask, StartError, start};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

//! memserver-sel4-abi: the contract between the seL4 root task and the tasks it starts.
//!
//! # Design
//! A task is loaded from its own ELF image into its own VSpace with a CSpace of its own.
//! Instead of baking addresses and slot numbers into each task, the root task passes them in
//! the first argument registers ([`start`]), so a task's entry point reads them like function
//! arguments, and writes what the system description says about the task into boot-info
//! pages mapped read-only into it: a postcard encoding of [`ServerBoot`] (the memserver task)
//! or [`ClientBoot`] (a client task). Beside the boot info live the messages the tasks
//! exchange besides the memserver protocol itself: a client task's calls to the root task
//! ([`root`]: report, ready, pause, expect a fault), the supervisor's calls to the memserver
//! on a badge no client holds ([`supervisor`]: reclaim a dead client, the frame census), and
//! the agent protocol by which one client task acts for another over an endpoint ([`agent`]).
//! Where things sit in a task's address space is [`layout`]. Only types, constants and pure
//! functions on `protocol`: a client task never depends on the engine.
#![no_std]
#![forbid(unsafe_code)]

pub mod agent;
pub mod boot;
pub mod layout;
pub mod message;
pub mod root;
pub mod start;
pub mod supervisor;

pub use boot::{ClientBoot, ClientSession, Peer, Region, ServerBoot, ServerClient, ServerSlots};
pub use supervisor::{Census, SUPERVISOR_BADGE, SupervisorReply, SupervisorRequest};

#[cfg(test)]
mod tests;

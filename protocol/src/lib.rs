//! memserver wire protocol: the types a client and the server share, and nothing else.
//!
//! # Design
//! This crate holds only types and pure functions: identifiers ([`ClientId`], [`CacheId`],
//! [`Handle`]), the `kmem_cache` flag bits ([`flags`]), the one error enum ([`Error`] with its
//! `#[repr(u16)]` [`ErrorCode`]). It performs no I/O and never allocates, so the same crate
//! builds for the Linux host runner and for seL4 tasks.
#![no_std]
#![forbid(unsafe_code)]

pub mod error;
pub mod flags;
pub mod ids;
pub mod slabinfo;

pub use error::{Corruption, Error, ErrorCode};
pub use ids::{CacheId, ClientId, Handle};
pub use slabinfo::SlabInfoRow;

/// The protocol version a client must present in `Hello`. Bump it whenever the wire format
/// changes (the golden-vector test enforces this).
pub const PROTOCOL_VERSION: u16 = 1;

/// Page size of the frame pool and of client windows, in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Longest cache name, in bytes (Linux keeps names short too; slabinfo prints them).
pub const CACHE_NAME_MAX: usize = 31;

/// Largest object size a `CacheCreate` may ask for, in bytes.
pub const OBJECT_SIZE_MAX: u32 = 64 * 1024;

/// Largest explicit alignment a `CacheCreate` may ask for, in bytes.
pub const ALIGN_MAX: u32 = 4096;

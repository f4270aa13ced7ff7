//! memserver wire protocol: the types a client and the server share, and nothing else.
//!
//! # Design
//! This crate holds only types, traits and pure functions: identifiers ([`ClientId`],
//! [`CacheId`], [`Handle`]), the `kmem_cache` flag bits ([`flags`]), the one error enum
//! ([`Error`] with its `#[repr(u16)]` [`ErrorCode`]), the messages ([`Request`], [`Reply`]) and
//! their postcard [`codec`] with compile-time worst-case sizes ([`WireSize`]), the seL4
//! message-register [`framing`], and the layout of the shared [`control`] region that carries
//! the magazines. Each request is defined once, in [`api`]: from that one definition come the
//! `Request` enum, the server-side [`api::Service`] trait and its router, the one typed
//! [`api::Client`] (over any [`Transport`]) and the per-request metadata. It performs no I/O
//! and never allocates, so the same crate builds for the Linux host runner and for seL4 tasks. The wire format is specified in `docs/protocol.md`; the golden vectors
//! in `tests/golden/` pin it to [`PROTOCOL_VERSION`].
#![no_std]
#![forbid(unsafe_code)]

pub mod api;
pub mod codec;
pub mod control;
pub mod error;
pub mod flags;
pub mod framing;
pub mod ids;
pub mod reply;
pub mod request;
pub mod slabinfo;
pub mod slub_debug;
pub mod transport;
pub mod wire_size;

pub use codec::{
    ERROR_TAG, MessageBuffer, ReplyTo, decode_reply, decode_reply_value, decode_request, encode_reply,
    encode_reply_value, encode_request,
};
pub use error::{Corruption, Error, ErrorCode};
pub use ids::{CacheId, ClientId, Handle};
pub use reply::{
    CLIENTS_PER_PAGE, CacheInfo, CacheLayout, ClientEntry, ClientList, ClientsPage, Created, DmaAddress, Exchanged,
    Finding, Object, Owner, Reply, ReplyValue, SHRINK_PLAN_SLABS, SLABINFO_ROWS_PER_PAGE, SessionInfo, ShrinkPlan,
    Shrunk, SlabInfoPage, SlabInfoRows, SlabList, Stats, Track, ValidationReport,
};
pub use request::{CLIENT_NAME_MAX, CacheName, ClientName, ExchangeOp, Request, cache_name, client_name};
pub use slabinfo::SlabInfoRow;
pub use transport::{Transport, TransportError};
pub use wire_size::WireSize;

/// The protocol version a client must present in `Hello`. Bump it whenever the wire format
/// changes (the golden-vector test enforces this).
pub const PROTOCOL_VERSION: u16 = 4;

/// Page size of the frame pool and of client windows, in bytes.
pub const PAGE_SIZE: usize = 4096;

/// Longest cache name, in bytes (Linux keeps names short too; slabinfo prints them).
pub const CACHE_NAME_MAX: usize = 31;

/// Largest object size a `CacheCreate` may ask for, in bytes.
pub const OBJECT_SIZE_MAX: u32 = 64 * 1024;

/// Largest `kmalloc`, in bytes (Linux's `KMALLOC_MAX_SIZE` with 4 KiB pages): 4 MiB.
pub const KMALLOC_MAX_SIZE: u32 = 4 << 20;

/// Alignment of a client window's base address, in bytes: a power-of-two `kmalloc` is aligned
/// to its size as a window offset, so with the base aligned to the largest one it is aligned
/// as an address too (Linux guarantees natural alignment of power-of-two kmallocs since 5.4).
pub const WINDOW_BASE_ALIGN: usize = KMALLOC_MAX_SIZE as usize;

/// Largest explicit alignment a `CacheCreate` may ask for, in bytes.
pub const ALIGN_MAX: u32 = 4096;

/// Message registers of one seL4 IPC message (`seL4_MsgMaxLength`).
pub const MAX_MESSAGE_WORDS: usize = 120;

/// Largest encoded message, in bytes: all message registers of 8 bytes each (the byte length
/// travels in the label, see [`framing`]). Every `Request` and `Reply` fits, checked at
/// compile time against [`WireSize::MAX_ENCODED`].
pub const MAX_MESSAGE_BYTES: usize = MAX_MESSAGE_WORDS * 8;

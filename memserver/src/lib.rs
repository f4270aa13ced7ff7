//! memserver: a `kmem_cache` slab engine for a microkernel memory server.
//!
//! # Design
//! The [`engine`] hands out objects in four steps: a global **frame pool** (an O(1) free stack
//! threaded through a frame descriptor table, one Linux `struct page`-like entry per frame)
//! backs pages of each client's **window** (a per-client page map plus occupancy bitmap; a
//! handle is a byte offset in it), a run of `2^order` window pages forms a **slab** of one
//! cache, and a slab is cut into **objects** at a fixed stride. All metadata (frame and slab
//! descriptors, object bitmaps, slab lists, STORE_USER records) lives in server-private
//! tables the runner provides ([`EngineStorage`]); nothing is ever read back from memory a
//! client can write except to check poison and red-zone bytes. Every path is O(1): a handle
//! resolves by index arithmetic (window page → frame → slab → `(offset - start) / stride`), an
//! allocation takes the first slab of the partial list and the lowest free object through a
//! two-level bitmap, and slabs move between empty/partial/full lists through intrusive index
//! links. Only a new slab searches the window bitmap for room. No heap, no panics: every
//! table access is checked and every failure is a [`protocol::Error`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod dispatch;
pub mod engine;
#[cfg(feature = "testing")]
pub mod testing;

// `::std` at the crate root for the `Arbitrary` derive of `testing::ops` (tests only).
#[cfg(feature = "testing")]
extern crate std;

pub use engine::{
    Allocated, CacheInfo, ClientStats, Engine, EngineConfig, EngineStorage, OwnerInfo, Platform, PoolStats,
    StorageSizes, Track,
};

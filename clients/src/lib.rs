//! memclient: the Linux `kmem_cache` API for memserver clients.
//!
//! # Design
//! A [`Memserver`] is one client's session: the protocol's one typed client
//! (`protocol::api::Client`, one method per request) over a [`Transport`] that carries a
//! postcard request and brings back the reply (a Unix socket on the host, `seL4_Call` on seL4),
//! the client's [`Window`] (objects live at `window base + handle`) and its [`Control`] region
//! (shared with the server: reached only through `peer_memory::PeerMemory` copies). A
//! [`Cache`] mirrors `struct kmem_cache`; caches without debug flags keep Bonwick's *loaded*
//! and *previous* magazines in their control-region slot (the shared layer, one lock per slot,
//! exchanged with the server's depot by one `MagazineExchange` IPC), and, with `std`, a small
//! magazine per thread in private memory (the per-CPU layer: `alloc` and `free` are a pop and
//! a push there, with no lock and no atomic instruction). Every magazine free is hardened
//! (`CONFIG_SLAB_FREELIST_HARDENED`): an object start of this cache, not free already.
//! Debug caches go to the server for every operation so its checks stay exact.
//!
//! The core is `no_std` so seL4 client tasks can use it; the `std` feature (on by default)
//! adds [`host`], the Linux transport: a Unix `SOCK_SEQPACKET` connection to the `memserver`
//! process and the client's window and control region mapped from the memfds the server
//! passes in its Hello reply. Raw-pointer code is confined to [`shm`] and [`host`] (and the
//! per-thread magazines' cells, `threads`), and to
//! the three layers that hand objects to ordinary Rust code: [`global`] (a `GlobalAlloc` over
//! kmalloc, for `#[global_allocator]`), [`allocator`] (the `allocator-api2` `Allocator` trait
//! on every cache) and [`boxed`] ([`KBox`], an owned typed object). This crate never depends
//! on the server crate.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[allow(unsafe_code)]
pub mod allocator;
#[allow(unsafe_code)]
pub mod boxed;
pub mod cache;
mod dtor;
pub mod error;
#[allow(unsafe_code)]
pub mod global;
mod hardened;
#[cfg(feature = "std")]
pub mod host;
pub mod kmalloc;
pub mod server;
#[allow(unsafe_code)]
pub mod shm;
#[cfg(feature = "std")]
#[allow(unsafe_code)]
mod threads;
pub mod transport;

pub use allocator_api2;
pub use boxed::{CtorCache, KBox};
pub use cache::{Cache, CacheGuard, Ctor, Dtor, KmemCache};
pub use error::Error;
pub use kmalloc::{__GFP_ZERO, GFP_KERNEL, Gfp, ZERO_SIZE_PTR, kmalloc_index, kmalloc_size_roundup};
pub use server::{CounterSnapshot, Memserver, hello_request};
pub use shm::{Control, PublishedCounters, Window};
pub use transport::{Transport, TransportError};

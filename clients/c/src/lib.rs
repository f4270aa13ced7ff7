//! memclient-c: the Linux slab API (`kmem_cache_*`, `kmalloc` & co.) for C components, as
//! `libmemclient.a` and the generated header `memclient.h`.
//!
//! # Design
//! Every function has the Linux name and shape and sits on the Rust client library: a
//! `struct kmem_cache *` is a boxed [`memclient::Cache`], `kmalloc`/`kfree` are the session's.
//! There is no setup call: the session is made on first use from `MEMSERVER_SOCKET` and
//! `MEMSERVER_CLIENT` (a [`memclient::host::LazySession`]), or earlier by
//! `memclient_connect()`. Failures return `NULL` (or nothing, for `void` calls) as Linux does,
//! and leave an errno value and a message for the calling thread
//! (`memclient_last_error()`, `memclient_last_error_message()`).
//!
//! The session is the one platform-specific part: [`session`] makes it (on Linux, feature
//! `std`, a `memclient::host::LazySession` over the Unix-socket transport) or takes it from
//! the platform (without `std`: `session::install`, the seL4 C task's runtime) and names its
//! transport type; the other modules use only that. Without `std` the crate is `no_std` +
//! `alloc` (its own `Box`es come from the platform's global allocator), the last error is per
//! process instead of per thread, and the library's reports go where the platform says
//! ([`console`]). [`counters`] counts what the C calls did, for a platform that checks a C
//! program freed everything it allocated.
//!
//! Where the Rust library has no C shape, this crate adapts it: C constructors (a
//! `void (*)(void *)`) are called through a fixed table of Rust trampolines ([`ctor`]);
//! `ksize`/`krealloc` need an object's size, which the server does not send, so the library
//! keeps it per window page ([`session`]); `ZERO_SIZE_PTR` and the kmalloc size classes are
//! handled here ([`kmalloc`]). The header is generated from this crate by cbindgen
//! (`clients/c/header`), with the Linux macros (`KMEM_CACHE`, `ZERO_SIZE_PTR`) appended from
//! `cbindgen.toml`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod cache;
pub mod console;
pub mod counters;
pub mod ctor;
pub mod error;
pub mod flags;
pub mod kmalloc;
pub mod session;

//! memclient-c-staticlib: `libmemclient.a`, the static library C programs on Linux link.
//!
//! # Design
//! Nothing of its own: the C functions (`kmem_cache_*`, `kmalloc` & co., `memclient_*`) are
//! `memclient-c`'s, with its `std` feature (the session from `MEMSERVER_SOCKET` and
//! `MEMSERVER_CLIENT`); a static library carries every object of the crates below it, so they
//! are all in the archive. The header is `memclient-c`'s (`clients/c/include/memclient.h`).
#![forbid(unsafe_code)]

pub use memclient_c;

//! memserver: a `kmem_cache` slab engine for a microkernel memory server.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

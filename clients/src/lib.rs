//! memclient: the Linux `kmem_cache` API for memserver clients.
#![no_std]

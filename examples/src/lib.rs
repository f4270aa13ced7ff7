//! memserver-examples: programs that use memclient the way components do.
//!
//! # Design
//! The workloads live in this library so that the example binaries (`src/bin/`) and the
//! integration tests' copies of them (`integration/src/bin/*_under_test.rs`) run the same
//! code; a binary is its `#[global_allocator]` line and a call. The C example of the
//! reference hash table is `c/hash_table.c` (`make c-example`).

pub mod global_alloc;

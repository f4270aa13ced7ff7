//! Test support for the dispatch (feature `testing`, uses std): [`ServerPlatform`], an
//! in-memory platform with control regions, [`InProcess`], the dispatch as a transport for
//! the typed client, the bodies of the fuzz targets over the one `Arbitrary` op enum
//! ([`ops`]), and a server ready for a test ([`setup`]). The engine's own test support is
//! re-exported.

#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod in_process;
mod server;

pub mod fuzz;
pub mod ops;
pub mod setup;

pub use in_process::InProcess;
pub use memserver_engine::testing::{OwnedStorage, VecPlatform, state_digest};
pub use server::ServerPlatform;

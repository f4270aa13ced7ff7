//! Model-based testing: a [`Harness`] that runs an [`Op`] (the one op enum, [`super::ops`],
//! which the dispatch's fuzz targets run too) against the engine and a simple reference model
//! that predicts every result exactly, checking the invariants and the object memory (a byte
//! pattern per allocation) after every step. Mismatches panic (proptest reports and shrinks
//! them).
//!
//! - [`state`]: the reference model's state (caches, objects per client) and its bookkeeping;
//! - [`apply`]: one op against the engine, its result predicted from the model;
//! - [`check`]: the whole-state checks after every step (invariants, counts, patterns).
#![allow(clippy::panic, clippy::indexing_slicing, clippy::unwrap_used)]

extern crate std;

use std::collections::BTreeSet;
use std::vec::Vec;

use protocol::ClientId;
use protocol::flags::{SLAB_RED_ZONE, SLAB_STORE_USER};

pub use super::ops::{MODEL_FLAGS, Op};
use super::{OwnedStorage, VecPlatform};
use crate::{Engine, EngineConfig};

mod apply;
mod check;
mod state;

use state::MClient;

/// The engine under test plus the reference model.
pub struct Harness<'a> {
    pub engine: Engine<'a, VecPlatform>,
    clients: Vec<MClient>,
    quotas: Vec<u32>,
    window: u32,
    counter: u8,
    /// Error codes the run has met (to prove the failure paths are reached).
    pub seen: BTreeSet<u16>,
}

/// The configuration the model runs with: a small pool, 3 clients, small windows.
pub fn model_config() -> (EngineConfig, [u32; 3]) {
    (EngineConfig::new(48, 3, 64), [12, 16, 24])
}

impl<'a> Harness<'a> {
    /// Attach the clients of [`model_config`] to an engine over `storage` (the last one with
    /// red-zoned kmalloc caches, `slub_debug = "ZU,kmalloc-*"`, so its kmalloc slack is red zone).
    pub fn new(storage: &'a mut OwnedStorage) -> Self {
        let (config, quotas) = model_config();
        let mut engine = storage.engine(config);
        let mut clients = Vec::new();
        for (c, &q) in quotas.iter().enumerate() {
            let kmalloc_flags = if c + 1 == quotas.len() { [SLAB_RED_ZONE | SLAB_STORE_USER; 13] } else { [0; 13] };
            engine.client_attach_with(c as ClientId, config.max_window_pages, q, kmalloc_flags).unwrap();
            clients.push(MClient::default());
        }
        let mut h = Harness {
            engine,
            clients,
            quotas: quotas.to_vec(),
            window: config.max_window_pages,
            counter: 0,
            seen: Default::default(),
        };
        for c in 0..quotas.len() {
            h.refresh_kmalloc(c);
        }
        h
    }
}

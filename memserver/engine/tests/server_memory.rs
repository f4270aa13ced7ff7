//! The server's own memory per pool frame, from `EngineStorage::required` and the table entry
//! sizes (issue 14's `server_bytes_per_pool_frame`). Run with `--nocapture` to see the figures
//! for a 64-client system.

use memserver_engine::{EngineConfig, EngineStorage, FrameDesc, SlabDesc};
use std::mem::size_of;

/// A 64-client system as the shipped `system.toml` sizes one: 8,192-page windows, 32 caches
/// per client, one session slot more than clients (id 0 is never a client).
fn bytes(pool: u32) -> usize {
    let mut config = EngineConfig::new(pool, 65, 8192);
    config.max_caches_per_client = 32;
    EngineStorage::required(&config).unwrap().bytes()
}

#[test]
fn per_frame_tables_are_the_frame_and_slab_descriptors_and_a_bitmap_only() {
    // What each further pool frame costs: no table grows with the pool for what only some
    // caches use (STORE_USER records live in frames charged to their client).
    let per_frame = (bytes(2 * 16_384) - bytes(16_384)) / 16_384;
    assert_eq!(per_frame, size_of::<FrameDesc>() + size_of::<SlabDesc>() + memserver_engine::storage::BITMAP_WORDS * 8);
    for pool in [16_384u32, 262_144] {
        let b = bytes(pool);
        println!(
            "pool {pool} pages, 64 clients: {b} B of engine tables = {:.1} B per pool frame ({per_frame} B per further frame)",
            b as f64 / f64::from(pool)
        );
    }
}

//! How big the memserver task's tables are: the engine configuration it runs with and the
//! heap the root task must map for it (both computed from the same boot info, so the two
//! tasks agree).

use core::mem::size_of;

use memserver_dispatch::{MagazineSizes, ServerConfig, Session};
use memserver_engine::{EngineConfig, EngineStorage};
use memserver_sel4_abi::ServerBoot;

use crate::frames::FrameState;

/// The dispatch settings of `boot`.
pub fn server_config(boot: &ServerBoot) -> ServerConfig {
    let [small, medium, large, huge] = boot.magazines;
    ServerConfig { magazine_slots: boot.magazine_slots, magazine_sizes: MagazineSizes { small, medium, large, huge } }
}

/// The engine configuration of the memserver task (as the host runner builds it from
/// `system.toml`), over the pool frames the engine hands out.
pub fn engine_config(boot: &ServerBoot) -> EngineConfig {
    let max_clients = u16::try_from(boot.session_count()).unwrap_or(u16::MAX);
    let max_window = boot.clients.iter().map(|c| c.window_pages).max().unwrap_or(1);
    let mut config = EngineConfig::new(boot.pool_frames, max_clients, max_window);
    config.max_caches_per_client = boot.max_caches_per_client.max(14);
    config
}

/// Bytes of the control region of a client with a window of `window_pages` pages: its magazine
/// slots, its cache table (one entry per cache slot, the kmalloc caches included) and the
/// page-owner table of its window, in whole pages, as the dispatch lays it out
/// (`Server::control_size`; the root task maps that much for each client).
pub fn control_bytes(boot: &ServerBoot, window_pages: u32) -> usize {
    protocol::control::control_region_size(boot.magazine_slots, engine_config(boot).max_caches_per_client, window_pages)
}

/// Bytes of heap the memserver task needs: the engine's tables and sessions, the frame
/// table (a state per pool frame, a frame index per window page, table presence bits), with
/// room for the allocator's own bookkeeping; `None` on overflow. (The engine's STORE_USER
/// records live in private pool frames, charged to their clients, not here.)
pub fn heap_bytes(boot: &ServerBoot) -> Option<usize> {
    let engine = EngineStorage::required(&engine_config(boot))?.bytes();
    let window_pages =
        boot.clients.iter().try_fold(0usize, |a, c| a.checked_add(usize::try_from(c.window_pages).ok()?))?;
    let pool_frames = usize::try_from(boot.pool_frames).ok()?;
    let parts = [
        engine,
        size_of::<Session>().checked_mul(boot.session_count())?,
        size_of::<FrameState>().checked_mul(pool_frames)?,
        4usize.checked_mul(window_pages)?,
        // Presence bits: at most one bit per page at the last level, far fewer above.
        window_pages.checked_add(pool_frames)? / 8 + 1024 * (boot.clients.len() + 1),
    ];
    let total = parts.iter().try_fold(0usize, |a, &b| a.checked_add(b))?;
    // Allocator headers and alignment, plus the task's own small allocations.
    total.checked_add(total / 16)?.checked_add(256 * 1024)
}

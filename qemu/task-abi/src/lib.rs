//! The contract between the seL4 root task and the tasks it starts.
//!
//! Design: a task is loaded from its own ELF image into its own VSpace with a
//! small CSpace of its own. Instead of baking addresses and slot numbers into
//! each task, the root task passes them in the first argument registers, so a
//! task's entry point reads them like function arguments (AAPCS64 x0..x4), and
//! writes what the system description says about the task into *boot-info*
//! pages mapped read-only into it: a postcard encoding of [`ServerBoot`] (the
//! memserver task) or [`ClientBoot`] (a client task). The engine sizing that the
//! root task and the memserver task must agree on ([`engine_config`],
//! [`server_heap_bytes`]) lives here too. Only types, constants and pure
//! functions; no seL4 crate is needed to use them.

#![no_std]
#![forbid(unsafe_code)]

use memserver_dispatch::{MagazineSizes, ServerConfig, Session};
use memserver_engine::{CacheDesc, ClientDesc, FrameDesc, SlabDesc, TrackPair};
use memserver_engine::{EngineConfig, EngineStorage};
use protocol::ClientId;
use protocol::request::ClientName;
use serde::{Deserialize, Serialize};

/// Start register x0: virtual address of the task's IPC buffer (one page).
pub const START_REG_IPC_BUFFER: usize = 0;
/// Start register x1: slot of the task's own TCB capability (to suspend itself).
pub const START_REG_OWN_TCB: usize = 1;
/// Start register x2: slot of the task's first endpoint capability: the
/// memserver task receives on it; a client task reports its result on it.
pub const START_REG_ENDPOINT: usize = 2;
/// Start register x3: virtual address of the boot-info pages.
pub const START_REG_BOOT_INFO: usize = 3;
/// Start register x4: length in bytes of the postcard message there.
pub const START_REG_BOOT_INFO_LEN: usize = 4;

/// log2 of the number of slots in a task's CSpace root CNode.
pub const TASK_CNODE_SIZE_BITS: usize = 6;
/// Slot of the task's own TCB capability.
pub const SLOT_OWN_TCB: u64 = 1;
/// Memserver task: the endpoint it receives requests on (unbadged: receive
/// only). Client task: the endpoint it reports its test result on.
pub const SLOT_ENDPOINT: u64 = 2;
/// Client task: slot of the badged endpoint capability of its first session;
/// session `i` uses `SLOT_SESSION_BASE + i` (see [`ClientSession::endpoint_slot`]).
pub const SLOT_SESSION_BASE: u64 = 3;

/// Pages of boot info mapped into every task.
pub const BOOT_INFO_PAGES: usize = 4;
/// Bytes of boot info.
pub const BOOT_INFO_BYTES: usize = BOOT_INFO_PAGES * protocol::PAGE_SIZE;
/// Most client sessions one memserver boot info describes.
pub const MAX_SEL4_CLIENTS: usize = 64;
/// Most sessions (client ids) one client task holds.
pub const MAX_TASK_SESSIONS: usize = 8;

/// Label of the test-harness message a client task sends to the root task on
/// its report endpoint when it is done. Message register 0 holds the number of
/// failed checks.
pub const TEST_REPORT_LABEL: u64 = 1 << 32;
/// Label of the call a load task makes on its report endpoint once its caches
/// are grown: the root task starts the conformance tasks, then answers.
pub const TEST_READY_LABEL: u64 = (1 << 32) + 1;
/// Label of the call a load task makes when its measured run is over and it
/// would free its memory: the root task answers once every conformance task
/// has reported (so their pool accounting never sees this task's frames move).
pub const TEST_PAUSE_LABEL: u64 = (1 << 32) + 2;

/// A range of a task's virtual address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// First byte (page aligned).
    pub addr: u64,
    /// Length in bytes (a whole number of pages).
    pub len: u64,
}

/// One client task of `system.toml` as the memserver task sees it: its
/// `[[client]]` entry plus where its memory is mapped in the memserver's VSpace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerClient {
    /// Its id (position in `system.toml`), the badge of its endpoint capability.
    pub id: ClientId,
    /// Its name, what `Hello` must say.
    pub name: ClientName,
    /// `quota_pages`.
    pub quota_pages: u32,
    /// `window_pages`.
    pub window_pages: u32,
    /// `introspect`.
    pub introspect: bool,
    /// `slub_debug` (empty: none), checked by `memserver-system` when the image was built.
    pub slub_debug: heapless::String<{ protocol::slub_debug::SLUB_DEBUG_MAX }>,
    /// Its window, mapped read-write.
    pub window: Region,
    /// Its control region, mapped read-write.
    pub control: Region,
}

/// What the memserver task is told at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBoot {
    /// `server.pool_pages`.
    pub pool_pages: u32,
    /// `server.max_caches_per_client`.
    pub max_caches_per_client: u16,
    /// `server.magazine_slots`.
    pub magazine_slots: u16,
    /// `server.magazines`: small, medium, large, huge.
    pub magazines: [u16; 4],
    /// Private memory for the engine's tables (the task's heap).
    pub heap: Region,
    /// The client tasks that run on seL4, in id order.
    pub clients: heapless::Vec<ServerClient, MAX_SEL4_CLIENTS>,
}

/// One session of a client task: a client id of `system.toml` it speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    /// The client id (badge).
    pub id: ClientId,
    /// Its name in `system.toml`.
    pub name: ClientName,
    /// Slot of the badged endpoint capability to the memserver.
    pub endpoint_slot: u64,
    /// The window, mapped read-write.
    pub window: Region,
    /// The control region, mapped read-write.
    pub control: Region,
}

/// What a client task is told at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBoot {
    /// The image it runs (`image` of its `[[client]]` entries).
    pub image: ClientName,
    /// Its sessions, in id order.
    pub sessions: heapless::Vec<ClientSession, MAX_TASK_SESSIONS>,
}

impl ServerBoot {
    /// The dispatch settings.
    pub fn server_config(&self) -> ServerConfig {
        let [small, medium, large, huge] = self.magazines;
        ServerConfig { magazine_slots: self.magazine_slots, magazine_sizes: MagazineSizes { small, medium, large, huge } }
    }

    /// Sessions the dispatch needs: one per client id up to the largest.
    pub fn session_count(&self) -> usize {
        self.clients.iter().map(|c| usize::from(c.id)).max().unwrap_or(0) + 1
    }
}

/// The engine configuration of the memserver task (as the host runner builds
/// it from `system.toml`).
pub fn engine_config(boot: &ServerBoot) -> EngineConfig {
    let max_clients = u16::try_from(boot.session_count()).unwrap_or(u16::MAX);
    let max_window = boot.clients.iter().map(|c| c.window_pages).max().unwrap_or(1);
    let mut config = EngineConfig::new(boot.pool_pages, max_clients, max_window);
    config.max_caches_per_client = boot.max_caches_per_client.max(14);
    config
}

/// Bytes of heap the memserver task needs for its engine tables and sessions,
/// with room for the allocator's own bookkeeping; `None` on overflow.
pub fn server_heap_bytes(boot: &ServerBoot) -> Option<usize> {
    use core::mem::size_of;
    let s = EngineStorage::required(&engine_config(boot))?;
    let parts = [
        size_of::<FrameDesc>().checked_mul(s.frames)?,
        size_of::<SlabDesc>().checked_mul(s.slabs)?,
        8usize.checked_mul(s.bitmaps)?,
        size_of::<ClientDesc>().checked_mul(s.clients)?,
        size_of::<CacheDesc>().checked_mul(s.caches)?,
        4usize.checked_mul(s.page_map)?,
        8usize.checked_mul(s.window_bits)?,
        size_of::<TrackPair>().checked_mul(s.tracks)?,
        8usize.checked_mul(s.track_used)?,
        size_of::<Session>().checked_mul(boot.session_count())?,
    ];
    let total = parts.iter().try_fold(0usize, |a, &b| a.checked_add(b))?;
    // Allocator headers and alignment, plus the task's own small allocations.
    total.checked_add(total / 16)?.checked_add(256 * 1024)
}

//! The boot info the root task writes into a task before starting it.

use protocol::ClientId;
use protocol::request::ClientName;
use serde::{Deserialize, Serialize};

use crate::layout::Paging;
use crate::start::MAX_PEERS;

/// Most seL4 client tasks one memserver boot info describes.
pub const MAX_SEL4_CLIENTS: usize = 64;
/// Most paging-reserve untyped objects (one per set bit of the reserve's size in pages).
pub const MAX_PAGING_UNTYPED: usize = 32;

/// A range of a task's virtual address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// First byte (page aligned).
    pub addr: u64,
    /// Length in bytes (a whole number of pages).
    pub len: u64,
}

impl Region {
    /// The address of `len` bytes at `offset` in the region, if they lie inside it.
    pub fn place(&self, offset: u64, len: usize) -> Option<u64> {
        let end = offset.checked_add(u64::try_from(len).ok()?)?;
        (end <= self.len).then(|| self.addr.checked_add(offset)).flatten()
    }

    /// The offset of `addr` in the region, if it lies inside it.
    pub fn offset_of(&self, addr: u64) -> Option<u64> {
        let offset = addr.checked_sub(self.addr)?;
        (offset < self.len).then_some(offset)
    }
}

/// Where the memserver's capabilities are in its CSpace (one CNode of
/// [`ServerBoot::cnode_size_bits`] slots; the root task chose the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSlots {
    /// Its own CNode (to copy, delete and revoke capabilities in it).
    pub own_cnode: u64,
    /// Its own VSpace (to map the pool there).
    pub own_vspace: u64,
    /// The first paging-reserve untyped object ([`ServerBoot::paging_untyped_bits`] of them).
    pub paging_untyped: u64,
    /// VSpace of the first seL4 client task; client `i` of [`ServerBoot::clients`] is at
    /// `client_vspaces + i`.
    pub client_vspaces: u64,
    /// Pool frame 0; frame `f` is at `pool + f` (the original capabilities, mapped in the
    /// memserver's direct map).
    pub pool: u64,
    /// The derived capability of frame `f` (while it is mapped into a client) is at
    /// `derived + f`.
    pub derived: u64,
    /// Translation table `t` (the `t`-th made from the paging reserve) is at `tables + t`.
    pub tables: u64,
}

/// One seL4 client as the memserver sees it (a task's own client, or a task's heap client):
/// its `[[client]]` entry plus where its memory is.
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
    /// `slub_debug` (Linux's boot-parameter syntax; empty: no debugging), checked by the
    /// system crate when the root task was built.
    pub slub_debug: heapless::String<{ protocol::slub_debug::SLUB_DEBUG_MAX }>,
    /// Where its window starts in its own VSpace (reserved, unmapped at start).
    pub window_base: u64,
    /// Its control region, mapped read-write in the memserver (and in the client).
    pub control: Region,
}

/// What the memserver task is told at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBoot {
    /// `server.pool_pages`: what the pool frames and the paging reserve together never exceed.
    pub pool_pages: u32,
    /// Frames of the pool the engine hands out (`pool_pages` minus the paging reserve).
    pub pool_frames: u32,
    /// Size bits of each paging-reserve untyped object, in slot order; their pages add up to
    /// the paging reserve.
    pub paging_untyped_bits: heapless::Vec<u8, MAX_PAGING_UNTYPED>,
    /// The translation-table geometry the root task planned with.
    pub paging: Paging,
    /// log2 of the slots of the memserver's CNode.
    pub cnode_size_bits: u8,
    /// Where its capabilities are.
    pub slots: ServerSlots,
    /// `server.max_caches_per_client`.
    pub max_caches_per_client: u16,
    /// `server.magazine_slots`.
    pub magazine_slots: u16,
    /// `server.magazines`: small, medium, large, huge.
    pub magazines: [u16; 4],
    /// Private memory for the engine's and the frame table's tables (the task's heap).
    pub heap: Region,
    /// The direct map of the pool in its own VSpace: frame `f` at `direct_map + f * 4096`.
    pub direct_map: u64,
    /// The client tasks that run on seL4, in id order.
    pub clients: heapless::Vec<ServerClient, MAX_SEL4_CLIENTS>,
}

impl ServerBoot {
    /// Pages of the paging reserve (the sum of the untyped objects).
    pub fn paging_reserve_pages(&self) -> u64 {
        self.paging_untyped_bits.iter().map(|&bits| 1u64 << bits.saturating_sub(12).min(63)).sum()
    }

    /// Sessions the dispatch needs: one per client id up to the largest.
    pub fn session_count(&self) -> usize {
        self.clients.iter().map(|c| usize::from(c.id)).max().unwrap_or(0) + 1
    }
}

/// The session of a client task: the client id of `system.toml` it speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    /// The client id (badge).
    pub id: ClientId,
    /// Its name in `system.toml`.
    pub name: ClientName,
    /// The window: reserved in the task's VSpace; the memserver maps frames into it.
    pub window: Region,
    /// The control region, mapped read-write.
    pub control: Region,
}

/// Another task of the same image, whose agent this task may call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The client it speaks for.
    pub name: ClientName,
    /// Slot of the endpoint capability to its agent.
    pub endpoint_slot: u64,
}

/// What a client task is told at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBoot {
    /// The image it runs (`image` of its `[[client]]` entry).
    pub image: ClientName,
    /// Its position among the tasks of that image, in client-id order (0 first): tells the
    /// tasks of one image apart (the first runs the conformance suite, the others serve as
    /// its agents; the first load generator runs `churn`, the second `mixed`).
    pub instance: u16,
    /// Its session with the memserver.
    pub session: ClientSession,
    /// Slot of the endpoint it serves agent requests on, when its image has other tasks.
    pub agent_slot: Option<u64>,
    /// The other tasks of its image.
    pub peers: heapless::Vec<Peer, MAX_PEERS>,
    /// The session of its heap client (`heap` in `system.toml`), whose window is reserved in
    /// this task's VSpace too and whose endpoint capability is at
    /// [`SLOT_HEAP_MEMSERVER`](crate::start::SLOT_HEAP_MEMSERVER): the task's own `Box`, `Vec`
    /// and `String` come from it. `None`: the task's runtime heap only.
    pub heap: Option<ClientSession>,
}

//! The boot plan: what the root task builds for the system description, as data.
//!
//! **The pool is exactly `server.pool_pages`.** The memserver's translation tables for client
//! windows and for its own direct map of the pool come out of the same budget: the paging
//! reserve is the number of tables that would map every window page and every pool frame
//! (at most one table per table span each range touches, so the reserve is small: about
//! 1/512 of the windows), handed over as untyped memory, and the engine hands out
//! `pool_pages - reserve` frames. Tables are made from the reserve only when a page under
//! them is first mapped; the census counts them. Windows may add up to many times the pool
//! (virtual overcommit): a window costs nothing until frames are mapped into it, and then
//! only its frames and its share of tables.
//!
//! **Heap clients.** A task whose `[[client]]` names a `heap` gets a second session: the heap
//! client's window is reserved in the task's VSpace at [`HEAP_WINDOW_BASE`] (a top-level
//! region of its own, so the memserver's table bookkeeping of the two windows never meets),
//! its control region is mapped like the task's own, and its badged endpoint capability sits
//! in [`SLOT_HEAP_MEMSERVER`](memserver_sel4_abi::start::SLOT_HEAP_MEMSERVER). To the
//! memserver it is one more client (its own quota and caches), whose VSpace happens to be the
//! task's.
//!
//! **The memserver's CNode** (one CNode, `cnode_size_bits` slots): its TCB, endpoint, own
//! VSpace and CNode, the reserve's untyped objects, each client task's VSpace, then the pool
//! frames' original capabilities, a slot per frame for its derived capability while mapped,
//! and a slot per table of the reserve.

use alloc::vec::Vec;

use memserver_sel4_abi::boot::{MAX_PAGING_UNTYPED, MAX_SEL4_CLIENTS};
use memserver_sel4_abi::layout::{DIRECT_MAP_BASE, HEAP_WINDOW_BASE, Paging, REGION_MAX_BYTES, WINDOW_BASE};
use memserver_sel4_abi::start::{MAX_PEERS, SLOT_PEER_BASE};
use memserver_sel4_abi::{ClientBoot, ClientSession, Peer, Region, ServerBoot, ServerClient, ServerSlots};
use protocol::{ClientId, PAGE_SIZE};

/// Images whose tasks run in the background: they grow their caches, say they are ready,
/// run beside the others and pause before they free their memory. Every other image runs
/// alone on a quiet pool, one image after the other.
pub const BACKGROUND_IMAGES: &[&str] = &["loadgen"];

/// Memserver CNode: its own VSpace.
pub const SERVER_SLOT_VSPACE: u64 = 3;
/// Memserver CNode: its own CNode.
pub const SERVER_SLOT_CNODE: u64 = 4;
/// Memserver CNode: the first paging-reserve untyped object.
pub const SERVER_SLOT_UNTYPED: u64 = 5;
/// Memserver CNode: the first client VSpace.
pub const SERVER_SLOT_CLIENT_VSPACES: u64 = SERVER_SLOT_UNTYPED + MAX_PAGING_UNTYPED as u64;
/// Memserver CNode: pool frame 0.
pub const SERVER_SLOT_POOL: u64 = SERVER_SLOT_CLIENT_VSPACES + MAX_SEL4_CLIENTS as u64;
/// Largest memserver CNode the plan makes (2^20 slots of 32 bytes: 32 MiB).
pub const SERVER_CNODE_BITS_MAX: u8 = 20;

/// One `[[client]]` of `system.toml` with an seL4 `image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientTask<'a> {
    /// Its id (position in `system.toml`).
    pub id: ClientId,
    /// Its name.
    pub name: &'a str,
    /// `quota_pages`.
    pub quota_pages: u32,
    /// `window_pages`.
    pub window_pages: u32,
    /// `introspect`.
    pub introspect: bool,
    /// `slub_debug` (empty when not set).
    pub slub_debug: &'a str,
    /// `image`.
    pub image: &'a str,
    /// `heap`: the client whose session serves the task's own heap.
    pub heap: Option<HeapClient<'a>>,
}

/// The `[[client]]` a task's `heap` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapClient<'a> {
    /// Its id (position in `system.toml`).
    pub id: ClientId,
    /// Its name.
    pub name: &'a str,
    /// `quota_pages`.
    pub quota_pages: u32,
    /// `window_pages`.
    pub window_pages: u32,
    /// `slub_debug` (empty when not set).
    pub slub_debug: &'a str,
}

/// What the plan is made from: `[server]` and the seL4 clients of `system.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Description<'a> {
    /// `server.pool_pages`.
    pub pool_pages: u32,
    /// `server.max_caches_per_client`.
    pub max_caches_per_client: u16,
    /// `server.magazine_slots`.
    pub magazine_slots: u16,
    /// `server.magazines`: small, medium, large, huge.
    pub magazines: [u16; 4],
    /// The clients with an `image`, in id order.
    pub clients: &'a [ClientTask<'a>],
}

/// Why the description cannot be booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No client has an `image`: nothing to run.
    NoClients,
    /// More seL4 clients than a boot info describes.
    TooManyClients,
    /// More tasks of one image than a task has peer slots.
    TooManyPeers,
    /// A name does not fit.
    Name,
    /// A `slub_debug` string is longer than `protocol::slub_debug::SLUB_DEBUG_MAX`.
    SlubDebug,
    /// A window (or the pool's direct map) is larger than one top-level region.
    RegionTooLarge,
    /// The pool cannot hold its own paging structures.
    PoolTooSmall,
    /// The memserver's CNode would exceed [`SERVER_CNODE_BITS_MAX`].
    CNodeTooLarge,
    /// Two clients (tasks or heaps) have the same id.
    DuplicateClient,
}

/// One client task: which client it is, and what it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskPlan {
    /// Index of its client in the description (and in the memserver's boot info).
    pub client: usize,
    /// Its image.
    pub image: protocol::ClientName,
    /// Its position among the tasks of its image.
    pub instance: u16,
    /// The other tasks of its image (task indices), in order.
    pub peers: Vec<usize>,
    /// Whether it serves agent requests (its image has other tasks).
    pub has_agent: bool,
    /// Its window in its own VSpace: reserved, unmapped.
    pub window: Region,
    /// Whether its image runs in the background.
    pub background: bool,
    /// Index of its heap client in the memserver's boot info, if it has one.
    pub heap: Option<usize>,
    /// Its heap client's window in its own VSpace: reserved, unmapped.
    pub heap_window: Option<Region>,
}

/// What the root task builds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootPlan {
    /// The memserver's boot info; the glue fills in `heap` and each client's `control`
    /// once it has mapped them.
    pub server: ServerBoot,
    /// The client tasks, in start order (= client id order).
    pub tasks: Vec<TaskPlan>,
    /// Slots of the memserver's CNode in use (the rest are free).
    pub server_slots_used: u64,
}

fn name(text: &str) -> Result<protocol::ClientName, PlanError> {
    protocol::ClientName::try_from(text).map_err(|_| PlanError::Name)
}

/// Tables that map every page of a window of `pages` pages at `base`.
fn window_tables(paging: &Paging, base: u64, pages: u32) -> Result<u64, PlanError> {
    let bytes = u64::from(pages) * PAGE_SIZE as u64;
    if bytes > REGION_MAX_BYTES {
        return Err(PlanError::RegionTooLarge);
    }
    paging.tables_for(base, bytes).ok_or(PlanError::RegionTooLarge)
}

/// A client of the memserver's boot info, without introspection rights (its control region
/// is filled in by the glue).
fn server_client(
    id: ClientId,
    client_name: &str,
    quota_pages: u32,
    window_pages: u32,
    slub_debug: &str,
    window_base: u64,
) -> Result<ServerClient, PlanError> {
    Ok(ServerClient {
        id,
        name: name(client_name)?,
        quota_pages,
        window_pages,
        introspect: false,
        slub_debug: heapless::String::try_from(slub_debug).map_err(|_| PlanError::SlubDebug)?,
        window_base,
        control: Region { addr: 0, len: 0 },
    })
}

/// Size bits of the untyped objects that make up `pages` pages: one per set bit, largest first.
fn untyped_bits(pages: u32) -> heapless::Vec<u8, MAX_PAGING_UNTYPED> {
    let mut bits = heapless::Vec::new();
    for bit in (0..32u8).rev() {
        if pages & (1 << bit) != 0 {
            // At most 32 set bits in a u32: always fits.
            let _ = bits.push(bit + 12);
        }
    }
    bits
}

impl BootPlan {
    /// The plan for `description` on a kernel whose tables have the shape `paging`.
    pub fn new(description: &Description<'_>, paging: Paging) -> Result<BootPlan, PlanError> {
        let clients = description.clients;
        if clients.is_empty() {
            return Err(PlanError::NoClients);
        }
        if clients.len() > MAX_SEL4_CLIENTS {
            return Err(PlanError::TooManyClients);
        }
        let page = PAGE_SIZE as u64;
        // The reserve: tables for every window page and for a direct map of the whole pool.
        let mut reserve = paging
            .tables_for(DIRECT_MAP_BASE, u64::from(description.pool_pages) * page)
            .ok_or(PlanError::RegionTooLarge)?;
        if u64::from(description.pool_pages) * page > REGION_MAX_BYTES {
            return Err(PlanError::RegionTooLarge);
        }
        for c in clients {
            reserve += window_tables(&paging, WINDOW_BASE, c.window_pages)?;
            if let Some(h) = c.heap {
                reserve += window_tables(&paging, HEAP_WINDOW_BASE, h.window_pages)?;
            }
        }
        let reserve = u32::try_from(reserve).map_err(|_| PlanError::PoolTooSmall)?;
        let pool_frames =
            description.pool_pages.checked_sub(reserve).filter(|&f| f > 0).ok_or(PlanError::PoolTooSmall)?;

        let pool = SERVER_SLOT_POOL;
        let derived = pool + u64::from(pool_frames);
        let tables = derived + u64::from(pool_frames);
        let used = tables + u64::from(reserve);
        let cnode_size_bits = (64 - (used - 1).leading_zeros()) as u8;
        if cnode_size_bits > SERVER_CNODE_BITS_MAX {
            return Err(PlanError::CNodeTooLarge);
        }

        // Every client the memserver serves, in id order: the tasks' own and their heaps.
        let mut all = Vec::new();
        for c in clients {
            let own = server_client(c.id, c.name, c.quota_pages, c.window_pages, c.slub_debug, WINDOW_BASE)?;
            all.push(ServerClient { introspect: c.introspect, ..own });
            if let Some(h) = c.heap {
                all.push(server_client(h.id, h.name, h.quota_pages, h.window_pages, h.slub_debug, HEAP_WINDOW_BASE)?);
            }
        }
        all.sort_by_key(|c| c.id);
        if all.windows(2).any(|pair| pair.first().map(|c| c.id) == pair.get(1).map(|c| c.id)) {
            return Err(PlanError::DuplicateClient);
        }
        let index_of = |id: ClientId| all.iter().position(|c| c.id == id);
        let mut tasks = Vec::with_capacity(clients.len());
        for (i, c) in clients.iter().enumerate() {
            let same_image: Vec<usize> =
                (0..clients.len()).filter(|&j| clients.get(j).is_some_and(|o| o.image == c.image)).collect();
            let instance = same_image.iter().position(|&j| j == i).unwrap_or(0);
            let peers: Vec<usize> = same_image.iter().copied().filter(|&j| j != i).collect();
            if peers.len() > MAX_PEERS {
                return Err(PlanError::TooManyPeers);
            }
            tasks.push(TaskPlan {
                client: index_of(c.id).ok_or(PlanError::DuplicateClient)?,
                image: name(c.image)?,
                instance: u16::try_from(instance).map_err(|_| PlanError::TooManyPeers)?,
                has_agent: !peers.is_empty(),
                peers,
                window: Region { addr: WINDOW_BASE, len: u64::from(c.window_pages) * page },
                background: BACKGROUND_IMAGES.contains(&c.image),
                heap: c.heap.and_then(|h| index_of(h.id)),
                heap_window: c.heap.map(|h| Region { addr: HEAP_WINDOW_BASE, len: u64::from(h.window_pages) * page }),
            });
        }
        let mut server_clients = heapless::Vec::new();
        for c in all {
            server_clients.push(c).map_err(|_| PlanError::TooManyClients)?;
        }
        let server = ServerBoot {
            pool_pages: description.pool_pages,
            pool_frames,
            paging_untyped_bits: untyped_bits(reserve),
            paging,
            cnode_size_bits,
            slots: ServerSlots {
                own_cnode: SERVER_SLOT_CNODE,
                own_vspace: SERVER_SLOT_VSPACE,
                paging_untyped: SERVER_SLOT_UNTYPED,
                client_vspaces: SERVER_SLOT_CLIENT_VSPACES,
                pool,
                derived,
                tables,
            },
            max_caches_per_client: description.max_caches_per_client,
            magazine_slots: description.magazine_slots,
            magazines: description.magazines,
            heap: Region { addr: 0, len: 0 },
            direct_map: DIRECT_MAP_BASE,
            clients: server_clients,
        };

        Ok(BootPlan { server, tasks, server_slots_used: used })
    }

    /// Bytes of the control region of the plan's client `client` (index in the description):
    /// magazine slots, the cache table and the page-owner table of its window, whole pages,
    /// as the memserver's dispatch lays it out (`Server::control_size`).
    pub fn control_bytes(&self, client: usize) -> Option<usize> {
        Some(memserver_sel4_server::sizing::control_bytes(&self.server, self.server.clients.get(client)?.window_pages))
    }

    /// Pages of the paging reserve.
    pub fn paging_reserve_pages(&self) -> u32 {
        self.server.pool_pages - self.server.pool_frames
    }

    /// The windows of all seL4 clients together, in pages (may exceed the pool many times).
    pub fn windows_pages(&self) -> u64 {
        self.server.clients.iter().map(|c| u64::from(c.window_pages)).sum()
    }

    /// Bytes of heap the memserver needs (its engine and frame tables).
    pub fn server_heap_bytes(&self) -> Option<usize> {
        memserver_sel4_server::sizing::heap_bytes(&self.server)
    }

    /// The client tasks as the supervisor sees them.
    pub fn task_infos(&self) -> Vec<crate::TaskInfo> {
        self.tasks
            .iter()
            .filter_map(|t| {
                let c = self.server.clients.get(t.client)?;
                Some(crate::TaskInfo {
                    image: t.image.as_str().into(),
                    name: c.name.as_str().into(),
                    client: c.id,
                    window: t.window,
                    background: t.background,
                    heap: t.heap.and_then(|h| self.server.clients.get(h)).map(|h| h.id),
                })
            })
            .collect()
    }

    /// The slot, in task `task`'s CSpace, of the endpoint to the agent of its `k`-th peer.
    pub fn peer_slot(k: usize) -> u64 {
        SLOT_PEER_BASE + k as u64
    }

    /// The boot info of client task `task`, whose control region the glue mapped at `control`
    /// and its heap client's at `heap_control` (`None` for a task with a heap: no boot info).
    pub fn client_boot(&self, task: usize, control: Region, heap_control: Option<Region>) -> Option<ClientBoot> {
        let t = self.tasks.get(task)?;
        let c = self.server.clients.get(t.client)?;
        let heap = match (t.heap, t.heap_window) {
            (Some(h), Some(window)) => {
                let h = self.server.clients.get(h)?;
                Some(ClientSession { id: h.id, name: h.name.clone(), window, control: heap_control? })
            }
            _ => None,
        };
        let mut peers = heapless::Vec::new();
        for (k, &p) in t.peers.iter().enumerate() {
            let peer = self.server.clients.get(self.tasks.get(p)?.client)?;
            peers.push(Peer { name: peer.name.clone(), endpoint_slot: Self::peer_slot(k) }).ok()?;
        }
        Some(ClientBoot {
            image: t.image.clone(),
            instance: t.instance,
            session: ClientSession { id: c.id, name: c.name.clone(), window: t.window, control },
            agent_slot: t.has_agent.then_some(memserver_sel4_abi::start::SLOT_AGENT),
            peers,
            heap,
        })
    }
}

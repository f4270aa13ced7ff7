//! The frame table and the memserver task against the fake kernel: the order of every step
//! of a mapping and a release, tables on demand and their accounting, the census, and the
//! serve step with its supervisor badge.

extern crate std;

use std::cell::RefCell;
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

use memserver_sel4_abi::layout::{DIRECT_MAP_BASE, Paging, WINDOW_BASE};
use memserver_sel4_abi::message::{from_words, to_words};
use memserver_sel4_abi::{
    Region, SUPERVISOR_BADGE, ServerBoot, ServerClient, ServerSlots, SupervisorReply, SupervisorRequest,
};
use protocol::api::{CallError, Client};
use protocol::framing::{self, MessageWords};
use protocol::{
    ClientId, DmaAddress, Error, MAX_MESSAGE_BYTES, MAX_MESSAGE_WORDS, MessageBuffer, Reply, Transport, TransportError,
};

use crate::fake::{Fail, FakeKernel, FakeMemory, Log, Op};
use crate::frames::{EngineCount, FrameError, FrameTable};
use crate::kernel::Memory;

const POOL: u32 = 64;
const SLOTS: ServerSlots = ServerSlots {
    own_cnode: 4,
    own_vspace: 3,
    paging_untyped: 16,
    client_vspaces: 48,
    pool: 1024,
    derived: 2048,
    tables: 3072,
};
const CONTROL_BASE: u64 = 0x1_0000_0000;

fn client(index: usize, id: ClientId, name: &str, quota_pages: u32, window_pages: u32) -> ServerClient {
    ServerClient {
        id,
        name: protocol::client_name(name).unwrap(),
        quota_pages,
        window_pages,
        introspect: false,
        slub_debug: heapless::String::new(),
        window_base: WINDOW_BASE,
        // Magazine slots, cache table and page-owner table (8 bytes per window page).
        control: Region {
            addr: CONTROL_BASE + index as u64 * 0x1000_0000,
            len: protocol::control::control_region_size(16, 32, window_pages) as u64,
        },
    }
}

/// A memserver boot with a pool of `POOL` frames, a reserve of `reserve_bits` (log2 pages)
/// and two clients: 3 ("alpha", 1 GiB + 4 MiB window) and 5 ("beta", 16 pages).
fn boot(reserve_bits: u8) -> ServerBoot {
    let mut clients = heapless::Vec::new();
    clients.push(client(0, 3, "alpha", 48, (1 << 18) + 1024)).unwrap();
    clients.push(client(1, 5, "beta", 16, 16)).unwrap();
    ServerBoot {
        pool_pages: POOL + (1 << reserve_bits),
        pool_frames: POOL,
        paging_untyped_bits: heapless::Vec::from_slice(&[12 + reserve_bits]).unwrap(),
        paging: Paging::AARCH64,
        cnode_size_bits: 12,
        slots: SLOTS,
        max_caches_per_client: 32,
        magazine_slots: 16,
        magazines: [64, 32, 16, 8],
        heap: Region { addr: 0x2_0000_0000, len: 1 << 20 },
        direct_map: DIRECT_MAP_BASE,
        clients,
    }
}

fn memory_regions(boot: &ServerBoot) -> Vec<Region> {
    let mut regions = vec![Region { addr: boot.direct_map, len: u64::from(boot.pool_frames) * 4096 }];
    regions.extend(boot.clients.iter().map(|c| c.control));
    regions
}

struct Rig {
    log: Log,
    kernel: FakeKernel,
    memory: FakeMemory,
    table: FrameTable,
}

fn rig(reserve_bits: u8) -> Rig {
    let boot = boot(reserve_bits);
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut kernel = FakeKernel::for_boot(&boot, log.clone());
    let memory = FakeMemory::new(memory_regions(&boot), log.clone());
    let mut table = FrameTable::new(&boot).unwrap();
    table.map_direct(&mut kernel).unwrap();
    log.borrow_mut().clear();
    Rig { log, kernel, memory, table }
}

/// The engine's figures for a census: frames mapped, free, and the bound.
fn count(mapped: u32, free: u32, pool_pages: u32) -> EngineCount {
    EngineCount { mapped, free, pool_pages, ..EngineCount::default() }
}

fn direct(frame: u32) -> u64 {
    DIRECT_MAP_BASE + u64::from(frame) * 4096
}

fn alpha_vspace() -> u64 {
    SLOTS.client_vspaces
}

fn page(n: u64) -> u64 {
    WINDOW_BASE + n * 4096
}

#[test]
fn direct_map_maps_every_pool_frame_with_its_original_capability() {
    let boot = boot(6);
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut kernel = FakeKernel::for_boot(&boot, log);
    let mut table = FrameTable::new(&boot).unwrap();
    table.map_direct(&mut kernel).unwrap();
    for f in 0..POOL {
        assert_eq!(kernel.mapped_at(SLOTS.own_vspace, direct(f)), Some((SLOTS.pool + u64::from(f), f)));
    }
    // 64 frames in one 2 MiB span: one table per level.
    assert_eq!(table.tables_made(), (0, 3));
}

#[test]
fn map_derives_a_capability_per_frame_and_maps_it_into_the_client() {
    let mut r = rig(6);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 10, &[7, 2]).unwrap();
    let ops = r.log.borrow().clone();
    // First page: three tables (512 GiB, 1 GiB, 2 MiB spans), then copy, then map.
    let expected_tail = [
        Op::Copy { source: SLOTS.pool + 7, destination: SLOTS.derived + 7 },
        Op::MapFrame { frame: SLOTS.derived + 7, vspace: alpha_vspace(), vaddr: page(10) },
        Op::Copy { source: SLOTS.pool + 2, destination: SLOTS.derived + 2 },
        Op::MapFrame { frame: SLOTS.derived + 2, vspace: alpha_vspace(), vaddr: page(11) },
    ];
    assert_eq!(ops.iter().filter(|o| matches!(o, Op::Retype { .. })).count(), 3);
    assert_eq!(&ops[ops.len() - 4..], &expected_tail);
    assert_eq!(r.kernel.mapped_at(alpha_vspace(), page(10)), Some((SLOTS.derived + 7, 7)));
    assert_eq!(r.kernel.mapped_at(alpha_vspace(), page(11)), Some((SLOTS.derived + 2, 2)));
    assert_eq!(r.table.mapped_of(3), 2);
    r.table.check_invariants().unwrap();
}

#[test]
fn release_unmaps_then_deletes_then_revokes_then_zeroes() {
    let mut r = rig(6);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[5]).unwrap();
    assert!(r.memory.write(direct(5), &[0xaa; 64]));
    r.log.borrow_mut().clear();
    r.table.release(&mut r.kernel, &mut r.memory, 3, 0, 1, Some(&[5])).unwrap();
    assert_eq!(
        *r.log.borrow(),
        [
            Op::Unmap { frame: SLOTS.derived + 5 },
            Op::Delete { slot: SLOTS.derived + 5 },
            Op::Revoke { slot: SLOTS.pool + 5 },
            Op::Fill { addr: direct(5), len: 4096, byte: 0 },
        ]
    );
    assert_eq!(r.kernel.mapped_at(alpha_vspace(), page(0)), None);
    assert!(!r.kernel.has_cap(SLOTS.derived + 5));
    assert!(r.kernel.has_cap(SLOTS.pool + 5), "the original stays (and stays in the direct map)");
    assert!(r.memory.page_is_zero(direct(5)));
    // The frame can go to another client now.
    r.table.map(&mut r.kernel, &mut r.memory, 5, 0, &[5]).unwrap();
    r.table.check_invariants().unwrap();
}

#[test]
fn a_frame_is_never_in_two_windows() {
    let mut r = rig(6);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[9]).unwrap();
    assert_eq!(r.table.map(&mut r.kernel, &mut r.memory, 5, 0, &[9]), Err(FrameError::FrameInUse(9)));
    assert_eq!(r.kernel.mappings_in(SLOTS.client_vspaces + 1), 0);
    // Nor a window page twice.
    assert_eq!(r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[10]), Err(FrameError::PageInUse(0)));
    r.table.check_invariants().unwrap();
}

#[test]
fn tables_are_made_once_per_span_and_counted() {
    let mut r = rig(6);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[1, 2, 3]).unwrap();
    assert_eq!(r.table.tables_made().0, 3);
    // Same 2 MiB span: nothing new. Next 2 MiB span: one last-level table.
    r.table.map(&mut r.kernel, &mut r.memory, 3, 511, &[4]).unwrap();
    assert_eq!(r.table.tables_made().0, 3);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 512, &[5]).unwrap();
    assert_eq!(r.table.tables_made().0, 4);
    // Past 1 GiB: a 1 GiB-level table and a last-level one.
    r.table.map(&mut r.kernel, &mut r.memory, 3, 1 << 18, &[6]).unwrap();
    assert_eq!(r.table.tables_made().0, 6);
    // Released pages keep their tables (a client that comes back finds them).
    r.table.release(&mut r.kernel, &mut r.memory, 3, 0, 3, None).unwrap();
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[1]).unwrap();
    assert_eq!(r.table.tables_made().0, 6);
    let census = r.table.census(&mut r.kernel, count(4, POOL - 4, POOL + 64));
    assert_eq!(census.tables, 6 + 3, "client tables plus the direct map's");
    assert!(census.agrees(), "{census}");
}

#[test]
fn an_exhausted_paging_reserve_is_out_of_memory_and_maps_nothing() {
    // 4 tables: 3 for the direct map, 1 left: not enough for a client's first page.
    let mut r = rig(2);
    let before = r.kernel.mappings_in(alpha_vspace());
    let e = r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[1]).unwrap_err();
    assert_eq!(protocol::Error::from(e), Error::OutOfMemory);
    assert_eq!(r.kernel.mappings_in(alpha_vspace()), before);
    assert!(!r.kernel.has_cap(SLOTS.derived + 1));
    r.table.check_invariants().unwrap();
}

#[test]
fn a_failed_map_releases_and_zeroes_what_the_same_call_mapped() {
    let mut r = rig(6);
    r.kernel.fail = Some(Fail::MapFrame { after: POOL + 2 });
    let e = r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[1, 2, 3, 4]);
    assert!(matches!(e, Err(FrameError::Kernel(_))), "{e:?}");
    assert_eq!(r.kernel.mappings_in(alpha_vspace()), 0);
    for f in 1..=4 {
        assert!(!r.kernel.has_cap(SLOTS.derived + f), "frame {f}'s derived capability is gone");
    }
    let zeroed: Vec<u64> =
        r.log.borrow().iter().filter_map(|o| if let Op::Fill { addr, .. } = o { Some(*addr) } else { None }).collect();
    assert_eq!(zeroed, [direct(1), direct(2)]);
    let census = r.table.census(&mut r.kernel, count(0, POOL, POOL + 64));
    assert!(census.agrees(), "{census}");
    r.table.check_invariants().unwrap();
}

#[test]
fn a_release_the_kernel_refuses_loses_the_frame_and_the_census_says_so() {
    let mut r = rig(6);
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[8]).unwrap();
    r.kernel.fail = Some(Fail::Unmap);
    assert!(r.table.release(&mut r.kernel, &mut r.memory, 3, 0, 1, None).is_err());
    let census = r.table.census(&mut r.kernel, count(0, POOL - 1, POOL + 64));
    assert_eq!((census.mapped, census.free), (0, POOL - 1));
    assert!(!census.agrees(), "a lost frame is in no state: {census}");
    // And it is never handed out again.
    assert_eq!(r.table.map(&mut r.kernel, &mut r.memory, 5, 0, &[8]), Err(FrameError::FrameInUse(8)));
}

#[test]
fn object_memory_is_copied_through_the_frames_behind_each_page() {
    let mut r = rig(6);
    // Window pages 4 and 5 backed by frames 30 and 12 (not contiguous).
    r.table.map(&mut r.kernel, &mut r.memory, 3, 4, &[30, 12]).unwrap();
    let data: Vec<u8> = (0..200u8).collect();
    let offset = 5 * 4096 - 100;
    r.table.write(&mut r.memory, 3, offset, &data).unwrap();
    let mut first = [0u8; 100];
    assert!(r.memory.read(direct(30) + 3996, &mut first));
    assert_eq!(&first[..], &data[..100]);
    let mut second = [0u8; 100];
    assert!(r.memory.read(direct(12), &mut second));
    assert_eq!(&second[..], &data[100..]);
    let mut back = vec![0u8; 200];
    r.table.read(&r.memory, 3, offset, &mut back).unwrap();
    assert_eq!(back, data);
    r.table.fill(&mut r.memory, 3, offset, 200, 0x6b).unwrap();
    r.table.read(&r.memory, 3, offset, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0x6b));
    // A page without a frame, or another client's window, is refused.
    assert_eq!(r.table.read(&r.memory, 3, 6 * 4096 - 1, &mut [0u8; 2]), Err(FrameError::NotMapped(6)));
    assert_eq!(r.table.read(&r.memory, 5, 0, &mut [0u8; 1]), Err(FrameError::NotMapped(0)));
    assert_eq!(r.table.read(&r.memory, 4, 0, &mut [0u8; 1]), Err(FrameError::NoSuchClient));
}

#[test]
fn private_frames_are_never_mapped_and_counted_apart() {
    let mut r = rig(6);
    r.table.private_frame(&mut r.memory, 20).unwrap()[0] = 1;
    assert_eq!(r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[20]), Err(FrameError::FrameInUse(20)));
    r.table.map(&mut r.kernel, &mut r.memory, 3, 0, &[21]).unwrap();
    assert!(matches!(r.table.private_frame(&mut r.memory, 21), Err(FrameError::FrameInUse(21))));
    let census = r.table.census(&mut r.kernel, EngineCount { private: 1, ..count(1, POOL - 2, POOL + 64) });
    assert_eq!((census.private, census.mapped, census.free), (1, 1, POOL - 2));
    assert!(census.agrees(), "{census}");
    // Given back: zeroed, free, mappable again.
    r.log.borrow_mut().clear();
    r.table.private_release(&mut r.memory, 20).unwrap();
    assert_eq!(*r.log.borrow(), [Op::Fill { addr: direct(20), len: 4096, byte: 0 }]);
    assert!(r.memory.page_is_zero(direct(20)));
    assert_eq!(r.table.private_release(&mut r.memory, 20), Err(FrameError::FrameInUse(20)));
    r.table.map(&mut r.kernel, &mut r.memory, 3, 1, &[20]).unwrap();
    r.table.check_invariants().unwrap();
}

#[test]
fn bus_addresses_come_from_the_frames_behind_the_pages() {
    let mut r = rig(6);
    let phys = |frame: u64| 0x4000_0000 + frame * 4096;
    r.table.map(&mut r.kernel, &mut r.memory, 3, 2, &[17, 18, 30]).unwrap();
    // Within one page.
    let a = r.table.bus_address(&mut r.kernel, 3, 2 * 4096 + 0x40, 64).unwrap();
    assert_eq!(a, DmaAddress { addr: phys(17) + 0x40, contiguous: 64 });
    // Across pages 2 and 3 (frames 17, 18: physically next to each other): all contiguous.
    let b = r.table.bus_address(&mut r.kernel, 3, 3 * 4096 - 100, 200).unwrap();
    assert_eq!(b, DmaAddress { addr: phys(17) + 4096 - 100, contiguous: 200 });
    // Across pages 3 and 4 (frames 18, 30): the run stops at the page boundary.
    let c = r.table.bus_address(&mut r.kernel, 3, 4 * 4096 - 100, 200).unwrap();
    assert_eq!(c, DmaAddress { addr: phys(18) + 4096 - 100, contiguous: 100 });
    assert_eq!(r.table.bus_address(&mut r.kernel, 3, 5 * 4096, 8), Err(FrameError::NotMapped(5)));
}

// ---- the memserver task ----

struct Task {
    task: crate::MemserverTask<FakeKernel, FakeMemory>,
    log: String,
}

fn task() -> Task {
    let boot = boot(6);
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let kernel = FakeKernel::for_boot(&boot, log.clone());
    let memory = FakeMemory::new(memory_regions(&boot), log);
    Task { task: crate::start(&boot, kernel, memory).unwrap(), log: String::new() }
}

/// A client's messages to the task, on the endpoint capability with `badge`, through the
/// message-register framing.
struct Badged<'a> {
    task: &'a mut Task,
    badge: u64,
}

impl Transport for Badged<'_> {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, len) = framing::pack(request, &mut words).map_err(|_| TransportError::Truncated)?;
        let (label, answer, len) = self.task.raw(self.badge, label, &words[..len]);
        let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let bytes = framing::unpack(label, &answer[..len], &mut buf).map_err(|_| TransportError::Truncated)?;
        reply.get_mut(..bytes.len()).ok_or(TransportError::Truncated)?.copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

impl Task {
    fn raw(&mut self, badge: u64, label: u64, words: &[u64]) -> (u64, MessageWords, usize) {
        let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, len) = self.task.handle(badge, label, words, &mut reply, &mut self.log);
        (label, reply, len)
    }

    /// The typed client of the badge `badge`.
    fn client(&mut self, badge: u64) -> Client<Badged<'_>> {
        Client::new(Badged { task: self, badge })
    }

    fn supervise(&mut self, request: SupervisorRequest) -> SupervisorReply {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, len) = to_words(&request, &mut words).unwrap();
        let (label, reply, len) = self.raw(SUPERVISOR_BADGE, label, &words[..len]);
        from_words(label, &reply[..len]).unwrap()
    }

    fn hello(&mut self, badge: u64, name: &str) -> Result<protocol::SessionInfo, CallError> {
        self.client(badge).hello(protocol::PROTOCOL_VERSION, protocol::client_name(name).unwrap())
    }

    fn platform(&self) -> &crate::Sel4Platform<FakeKernel, FakeMemory> {
        self.task.server().engine().platform()
    }
}

fn refused(result: Result<impl core::fmt::Debug, CallError>) -> Error {
    match result {
        Err(CallError::Server(e)) => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn a_client_badge_is_admitted_on_hello_and_gets_frames_mapped_on_grant() {
    let mut t = task();
    assert_eq!(t.hello(3, "alpha").unwrap().client, 3);
    let mut c = t.client(3);
    let cache = c.cache_create(protocol::cache_name("obj").unwrap(), 256, 0, 0, false, false).unwrap().cache;
    let handle = c.alloc(cache).unwrap().handle;
    let mapped = t.platform().frames.mapped_of(3);
    assert!(mapped >= 1);
    let vaddr = WINDOW_BASE + (handle.0 & !4095);
    assert!(t.platform().kernel.mapped_at(alpha_vspace(), vaddr).is_some(), "the object's page is mapped into alpha");
    // Free + shrink: the page goes back, unmapped.
    let mut c = t.client(3);
    c.free(cache, handle).unwrap();
    assert!(c.shrink(cache).unwrap().pages >= 1);
    assert_eq!(t.platform().frames.mapped_of(3), 0);
    assert_eq!(t.platform().kernel.mapped_at(alpha_vspace(), vaddr), None);
    let census = t.task.census();
    assert!(census.agrees(), "{census}");
    assert_eq!(census.mapped, 0);
}

#[test]
fn the_supervisor_reclaims_a_dead_client_and_takes_the_census() {
    let mut t = task();
    t.hello(5, "beta").unwrap();
    t.client(5).kmalloc(3 * 4096).unwrap();
    let census = t.task.census();
    assert_eq!((census.mapped, census.accounted), (3, 3));
    assert!(census.agrees(), "{census}");
    let SupervisorReply::Census(printed) = t.supervise(SupervisorRequest::Census) else { panic!("census") };
    assert_eq!(printed, census);
    assert!(t.log.contains("memserver: frames: mapped 3, accounted 3, free 61, pool 64"), "{}", t.log);
    assert!(t.log.contains("client beta (5): 3 frames, 3 mapped"), "{}", t.log);
    assert!(t.log.contains("# name"), "slabinfo header: {}", t.log);
    assert_eq!(
        t.supervise(SupervisorRequest::Reclaim { client: 5 }),
        SupervisorReply::Reclaimed { frames: 3, free: POOL }
    );
    assert_eq!(t.platform().kernel.mappings_in(SLOTS.client_vspaces + 1), 0);
    assert!(t.task.census().agrees());
    // The client is gone: a request is refused until it says Hello again.
    assert_eq!(refused(t.client(5).stats()), Error::PermissionDenied);
    assert_eq!(t.supervise(SupervisorRequest::Reclaim { client: 4 }), SupervisorReply::Refused(Error::InvalidArgument));
}

#[test]
fn a_client_cannot_send_supervisor_requests() {
    let mut t = task();
    t.hello(5, "beta").unwrap();
    let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
    let (label, len) = to_words(&SupervisorRequest::Reclaim { client: 3 }, &mut words).unwrap();
    let (label, reply, len) = t.raw(5, label, &words[..len]);
    let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let reply = protocol::decode_reply(framing::unpack(label, &reply[..len], &mut buf).unwrap()).unwrap();
    assert_eq!(reply, Reply::Error(Error::Malformed));
    // A badge the root task never minted is no client.
    assert_eq!(refused(t.client(4).stats()), Error::PermissionDenied);
    assert_eq!(refused(t.client(SUPERVISOR_BADGE + 1).stats()), Error::PermissionDenied);
}

#[test]
fn store_user_record_frames_are_private_and_the_census_agrees() {
    let mut t = task();
    t.hello(3, "alpha").unwrap();
    let mut c = t.client(3);
    let name = protocol::cache_name("tracked").unwrap();
    let cache = c.cache_create(name, 64, 0, protocol::flags::SLAB_STORE_USER, false, false).unwrap().cache;
    c.alloc(cache).unwrap();
    let census = t.task.census();
    assert!(census.private >= 1 && census.engine_private == census.private, "{census}");
    assert!(census.agrees(), "{census}");
    t.client(3).goodbye().unwrap();
    let census = t.task.census();
    assert_eq!((census.private, census.mapped, census.free), (0, 0, POOL), "{census}");
    assert!(census.agrees(), "{census}");
}

#[test]
fn dma_addr_answers_the_physical_address_of_a_dma_object() {
    let mut t = task();
    t.hello(3, "alpha").unwrap();
    let mut c = t.client(3);
    let dma =
        c.cache_create(protocol::cache_name("dma").unwrap(), 256, 0, protocol::flags::SLAB_CACHE_DMA, false, false);
    let handle = c.alloc(dma.unwrap().cache).unwrap().handle;
    let answer = c.dma_addr(handle).unwrap();
    let vaddr = WINDOW_BASE + (handle.0 & !4095);
    let (_, frame) = t.platform().kernel.mapped_at(alpha_vspace(), vaddr).unwrap();
    assert_eq!(answer, DmaAddress { addr: 0x4000_0000 + u64::from(frame) * 4096 + handle.0 % 4096, contiguous: 256 });
    let mut c = t.client(3);
    let plain = c.cache_create(protocol::cache_name("plain").unwrap(), 256, 0, 0, false, false).unwrap().cache;
    let other = c.alloc(plain).unwrap().handle;
    assert_eq!(refused(c.dma_addr(other)), Error::InvalidArgument);
}

#[test]
fn goodbye_unmaps_everything_the_client_held() {
    let mut t = task();
    t.hello(3, "alpha").unwrap();
    t.client(3).kmalloc(5 * 4096).unwrap();
    assert_eq!(t.platform().kernel.mappings_in(alpha_vspace()), 5);
    t.client(3).goodbye().unwrap();
    assert_eq!(t.platform().kernel.mappings_in(alpha_vspace()), 0);
    let census = t.task.census();
    assert_eq!((census.mapped, census.free), (0, POOL));
    assert!(census.agrees(), "{census}");
    t.task.server().engine().platform().frames.check_invariants().unwrap();
}

#[test]
fn a_reserve_of_tables_for_every_range_maps_every_page_and_no_more() {
    let mut boot = boot(0);
    boot.clients[0].window_pages = 1100;
    let page = 4096u64;
    let tables = Paging::AARCH64.tables_for(WINDOW_BASE, 1100 * page).unwrap()
        + Paging::AARCH64.tables_for(WINDOW_BASE, 16 * page).unwrap()
        + Paging::AARCH64.tables_for(DIRECT_MAP_BASE, u64::from(POOL) * page).unwrap();
    assert_eq!(tables, 11);
    boot.paging_untyped_bits = heapless::Vec::from_slice(&[15, 13, 12]).unwrap();
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut kernel = FakeKernel::for_boot(&boot, log.clone());
    let mut memory = FakeMemory::new(memory_regions(&boot), log);
    let mut table = FrameTable::new(&boot).unwrap();
    table.map_direct(&mut kernel).unwrap();
    for (client, pages) in [(3, 1100), (5, 16)] {
        for p in 0..pages {
            table.map(&mut kernel, &mut memory, client, p, &[0]).unwrap();
            table.release(&mut kernel, &mut memory, client, p, 1, Some(&[0])).unwrap();
        }
    }
    let census = table.census(&mut kernel, count(0, POOL, POOL + 11));
    assert_eq!((census.tables, census.tables_reserved), (11, 11));
    assert!(census.agrees(), "{census}");
}

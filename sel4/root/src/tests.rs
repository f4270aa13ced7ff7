//! The boot plan against the repository's `system.toml` and hand-made descriptions; the
//! supervisor through whole runs, good and bad.

extern crate std;

use std::string::{String, ToString};
use std::vec::Vec;

use memserver_sel4_abi::layout::{HEAP_WINDOW_BASE, Paging, WINDOW_BASE};
use memserver_sel4_abi::start::BOOT_INFO_BYTES;
use memserver_sel4_abi::{Census, Region};

use crate::fault::{FaultKind, FaultReport};
use crate::plan::{BootPlan, ClientTask, Description, HeapClient, PlanError};
use crate::supervisor::{Action, Event, Stage, Supervisor, TaskInfo};

/// The seL4 clients of a parsed system description, as the root task's build script lists them.
fn sel4_clients(system: &memserver_system::System) -> Vec<ClientTask<'_>> {
    system
        .clients()
        .filter_map(|(id, c)| {
            Some(ClientTask {
                id,
                name: &c.name,
                quota_pages: c.quota_pages,
                window_pages: c.window_pages,
                introspect: c.introspect,
                slub_debug: c.slub_debug.as_deref().unwrap_or(""),
                image: c.image.as_deref()?,
                heap: c.heap.as_deref().and_then(|heap| {
                    let (id, h) = system.client_by_name(heap)?;
                    let slub_debug = h.slub_debug.as_deref().unwrap_or("");
                    Some(HeapClient {
                        id,
                        name: &h.name,
                        quota_pages: h.quota_pages,
                        window_pages: h.window_pages,
                        slub_debug,
                    })
                }),
            })
        })
        .collect()
}

fn description<'a>(system: &memserver_system::System, clients: &'a [ClientTask<'a>]) -> Description<'a> {
    let m = &system.server.magazines;
    Description {
        pool_pages: system.server.pool_pages,
        max_caches_per_client: system.server.max_caches_per_client,
        magazine_slots: system.server.magazine_slots,
        magazines: [m.small.into(), m.medium.into(), m.large.into(), m.huge.into()],
        clients,
    }
}

fn repository_plan() -> (memserver_system::System, BootPlan) {
    let system = memserver_system::System::parse(include_str!("../../../system.toml")).unwrap();
    let clients = sel4_clients(&system);
    let plan = BootPlan::new(&description(&system, &clients), Paging::AARCH64).unwrap();
    (system, plan)
}

#[test]
fn default_system_overcommits_the_pool_with_its_windows() {
    let (system, plan) = repository_plan();
    let windows = plan.windows_pages();
    assert!(u64::from(system.server.pool_pages) < windows, "pool {} vs windows {windows}", system.server.pool_pages);
    // And the host clients too: every window of the file together.
    let all: u64 = system.clients.iter().map(|c| u64::from(c.window_pages)).sum();
    assert!(all >= 4 * u64::from(system.server.pool_pages), "windows {all} are not many times the pool");
}

#[test]
fn pool_frames_and_paging_reserve_make_exactly_pool_pages() {
    let (system, plan) = repository_plan();
    let s = &plan.server;
    assert_eq!(s.pool_frames + plan.paging_reserve_pages(), system.server.pool_pages);
    assert_eq!(s.paging_reserve_pages(), u64::from(plan.paging_reserve_pages()));
    // The reserve: every window page and every pool frame mappable, and small beside the pool.
    let page = protocol::PAGE_SIZE as u64;
    let mut tables = Paging::AARCH64.tables_for(s.direct_map, u64::from(system.server.pool_pages) * page).unwrap();
    for c in &s.clients {
        tables += Paging::AARCH64.tables_for(c.window_base, u64::from(c.window_pages) * page).unwrap();
    }
    assert_eq!(u64::from(plan.paging_reserve_pages()), tables);
    // About one table per 2 MiB mapped, plus two above it per range.
    let bound = (plan.windows_pages() + u64::from(system.server.pool_pages)) / 512 + 3 * (s.clients.len() as u64 + 1);
    assert!(u64::from(plan.paging_reserve_pages()) <= bound, "reserve {} above {bound}", plan.paging_reserve_pages());
}

#[test]
fn memserver_slots_do_not_overlap_and_fit_its_cnode() {
    let (_, plan) = repository_plan();
    let s = plan.server.slots;
    let frames = u64::from(plan.server.pool_frames);
    let untyped_end = s.paging_untyped + plan.server.paging_untyped_bits.len() as u64;
    assert!(s.own_vspace < s.paging_untyped && s.own_cnode < s.paging_untyped);
    assert!(untyped_end <= s.client_vspaces);
    assert!(s.client_vspaces + plan.server.clients.len() as u64 <= s.pool);
    assert_eq!(s.derived, s.pool + frames);
    assert_eq!(s.tables, s.derived + frames);
    assert_eq!(plan.server_slots_used, s.tables + u64::from(plan.paging_reserve_pages()));
    assert!(plan.server_slots_used <= 1 << plan.server.cnode_size_bits);
    assert!(plan.server_slots_used > 1 << (plan.server.cnode_size_bits - 1), "the CNode is no larger than needed");
}

#[test]
fn every_sel4_client_is_its_own_task_and_images_know_their_peers() {
    let (system, plan) = repository_plan();
    assert_eq!(plan.tasks.len(), system.clients.iter().filter(|c| c.image.is_some()).count());
    let by_name = |n: &str| plan.tasks.iter().position(|t| plan.server.clients[t.client].name == n).unwrap();
    let (conformance, peer, debug) =
        (by_name("conformance"), by_name("conformance-peer"), by_name("conformance-debug"));
    let instances = [conformance, peer, debug].map(|t| plan.tasks[t].instance);
    assert_eq!(instances, [0, 1, 2]);
    assert_eq!(plan.tasks[conformance].peers, [peer, debug]);
    assert_eq!(plan.tasks[peer].peers, [conformance, debug]);
    assert!([conformance, peer, debug].iter().all(|&t| plan.tasks[t].has_agent));
    assert!(plan.tasks[by_name("loadgen-0")].background && !plan.tasks[conformance].background);
    let boot = plan
        .client_boot(conformance, Region { addr: 0x1_0000_0000, len: 0x5000 }, Some(Region { addr: 0, len: 0 }))
        .unwrap();
    assert_eq!(boot.peers[0].name, "conformance-peer");
    assert_eq!(
        boot.session.window,
        Region {
            addr: WINDOW_BASE,
            len: u64::from(system.client_by_name("conformance").unwrap().1.window_pages) * 4096
        }
    );
}

#[test]
fn boot_infos_fit_their_pages_and_the_heap_is_sized() {
    let (_, plan) = repository_plan();
    let mut buf = [0u8; BOOT_INFO_BYTES];
    assert!(postcard::to_slice(&plan.server, &mut buf).is_ok());
    for t in 0..plan.tasks.len() {
        let boot = plan.client_boot(t, Region { addr: 0, len: 0 }, Some(Region { addr: 0, len: 0x5000 })).unwrap();
        assert!(postcard::to_slice(&boot, &mut buf).is_ok());
    }
    let heap = plan.server_heap_bytes().unwrap();
    assert!(heap > plan.server.pool_frames as usize * 8, "frame table and engine descriptors: {heap}");
}

#[test]
fn a_task_with_a_heap_gets_a_second_session_in_its_own_vspace() {
    let (system, plan) = repository_plan();
    let ids: Vec<u16> = plan.server.clients.iter().map(|c| c.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "the memserver's clients in id order: {ids:?}");
    let mut heaps = 0;
    for (n, t) in plan.tasks.iter().enumerate() {
        let own = &plan.server.clients[t.client];
        let (_, described) = system.client_by_name(&own.name).unwrap();
        assert_eq!(own.window_base, WINDOW_BASE);
        let boot =
            plan.client_boot(n, Region { addr: 0x1000, len: 0x1000 }, Some(Region { addr: 0x3000, len: 0x1000 }));
        let boot = boot.unwrap();
        match described.heap.as_deref() {
            Some(heap_name) => {
                heaps += 1;
                let (heap_id, heap) = system.client_by_name(heap_name).unwrap();
                let server_side = &plan.server.clients[t.heap.unwrap()];
                assert_eq!((server_side.id, server_side.name.as_str()), (heap_id, heap_name));
                assert_eq!((server_side.window_base, server_side.quota_pages), (HEAP_WINDOW_BASE, heap.quota_pages));
                let window = Region { addr: HEAP_WINDOW_BASE, len: u64::from(heap.window_pages) * 4096 };
                assert_eq!(t.heap_window, Some(window));
                let session = boot.heap.unwrap();
                assert_eq!(
                    (session.id, session.window, session.control),
                    (heap_id, window, Region { addr: 0x3000, len: 0x1000 })
                );
                assert!(plan.tasks.iter().all(|other| other.client != t.heap.unwrap()), "a heap is no task");
                // Without the heap's control region there is no boot info.
                assert_eq!(plan.client_boot(n, Region { addr: 0x1000, len: 0x1000 }, None), None);
                assert_eq!(plan.task_infos()[n].heap, Some(heap_id));
            }
            None => {
                assert_eq!((t.heap, t.heap_window, boot.heap), (None, None, None));
                assert_eq!(plan.task_infos()[n].heap, None);
            }
        }
    }
    assert!(heaps >= 4, "the load generators, the suite, the C tasks have heaps");
    // The C example runs twice, debug flags off and on: two images, alone on the pool each.
    for image in ["hash-table", "hash-table-debug"] {
        let t = plan.tasks.iter().find(|t| t.image == image).unwrap();
        assert!((t.instance, t.peers.is_empty(), t.background, t.heap.is_some()) == (0, true, false, true));
    }
}

#[test]
fn a_heap_with_the_id_of_another_client_is_refused() {
    let heap = HeapClient { id: 2, name: "h", quota_pages: 1, window_pages: 1, slub_debug: "" };
    let clients = [
        ClientTask {
            id: 1,
            name: "a",
            quota_pages: 1,
            window_pages: 1,
            introspect: false,
            slub_debug: "",
            image: "x",
            heap: Some(heap),
        },
        ClientTask {
            id: 2,
            name: "b",
            quota_pages: 1,
            window_pages: 1,
            introspect: false,
            slub_debug: "",
            image: "y",
            heap: None,
        },
    ];
    let d = Description {
        pool_pages: 100,
        max_caches_per_client: 32,
        magazine_slots: 4,
        magazines: [8; 4],
        clients: &clients,
    };
    assert_eq!(BootPlan::new(&d, Paging::AARCH64).map(|_| ()), Err(PlanError::DuplicateClient));
    let clients = [ClientTask { heap: Some(HeapClient { id: 3, ..heap }), ..clients[0] }, clients[1]];
    let d = Description { clients: &clients, ..d };
    let plan = BootPlan::new(&d, Paging::AARCH64).unwrap();
    assert_eq!(plan.server.clients.iter().map(|c| c.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!((plan.tasks[0].client, plan.tasks[0].heap, plan.tasks[1].client), (0, Some(2), 1));
    // The heap's window is in the reserve: 3 tables for each of three one-page windows, 3 for the direct map.
    assert_eq!(plan.paging_reserve_pages(), 12);
}

fn one_client(pool_pages: u32, window_pages: u32) -> Result<BootPlan, PlanError> {
    let clients = [ClientTask {
        id: 1,
        name: "a",
        quota_pages: 1,
        window_pages,
        introspect: false,
        slub_debug: "",
        image: "x",
        heap: None,
    }];
    BootPlan::new(
        &Description {
            pool_pages,
            max_caches_per_client: 32,
            magazine_slots: 4,
            magazines: [8, 8, 8, 8],
            clients: &clients,
        },
        Paging::AARCH64,
    )
}

#[test]
fn descriptions_the_plan_cannot_boot_are_refused() {
    let d =
        Description { pool_pages: 100, max_caches_per_client: 32, magazine_slots: 4, magazines: [8; 4], clients: &[] };
    assert_eq!(BootPlan::new(&d, Paging::AARCH64), Err(PlanError::NoClients));
    // 6 tables (3 for the direct map, 3 for the window) leave nothing of a 6-page pool.
    assert_eq!(one_client(6, 1).map(|_| ()), Err(PlanError::PoolTooSmall));
    assert_eq!(one_client(7, 1).unwrap().server.pool_frames, 1);
    assert_eq!(one_client(100, u32::MAX).map(|_| ()), Err(PlanError::RegionTooLarge));
}

#[test]
fn the_reserve_is_handed_over_as_power_of_two_untyped_objects() {
    let plan = one_client(1000, 513 * 512).unwrap();
    let bits = &plan.server.paging_untyped_bits;
    let pages: u64 = bits.iter().map(|b| 1u64 << (b - 12)).sum();
    assert_eq!(pages, u64::from(plan.paging_reserve_pages()));
    assert!(bits.windows(2).all(|w| w[0] > w[1]), "largest first, each size once: {bits:?}");
}

// ---- the supervisor ----

fn info(image: &str, name: &str, client: u16, background: bool) -> TaskInfo {
    TaskInfo {
        image: image.to_string(),
        name: name.to_string(),
        client,
        window: Region { addr: WINDOW_BASE, len: 1 << 20 },
        background,
        heap: None,
    }
}

/// Tasks 0, 1: load generators; 2, 3: the conformance suite and its agent; 4: the fault task.
fn supervisor() -> Supervisor {
    Supervisor::new(std::vec![
        info("loadgen", "loadgen-0", 3, true),
        info("loadgen", "loadgen-1", 4, true),
        info("conformance", "conformance", 5, false),
        info("conformance", "conformance-peer", 9, false),
        info("fault", "use-after-shrink", 10, false),
    ])
}

fn good_census() -> Census {
    Census {
        mapped: 4,
        derived_caps: 4,
        accounted: 4,
        free: 6,
        engine_free: 6,
        pool: 10,
        tables: 1,
        tables_reserved: 2,
        pool_pages: 12,
        ..Census::default()
    }
}

fn not_say(actions: Vec<Action>) -> Vec<Action> {
    actions.into_iter().filter(|a| !matches!(a, Action::Say(_))).collect()
}

fn said(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| if let Action::Say(s) = a { Some(s.as_str()) } else { None })
        .collect::<Vec<_>>()
        .join("\n")
}

fn vm(offset: u64) -> FaultKind {
    FaultKind::Vm { addr: WINDOW_BASE + offset, ip: 0x40_1234, prefetch: false }
}

/// Runs up to the fault task's announcement.
fn up_to_the_fault_task(s: &mut Supervisor) {
    assert_eq!(not_say(s.start()), [Action::Start(0), Action::Start(1)]);
    assert_eq!(not_say(s.on(Event::Ready { task: 0 })), []);
    assert_eq!(
        not_say(s.on(Event::Ready { task: 1 })),
        [Action::Answer(0), Action::Answer(1), Action::Start(2), Action::Start(3)]
    );
    assert_eq!(not_say(s.on(Event::Report { task: 2, failures: 0 })), []);
    assert_eq!(not_say(s.on(Event::Report { task: 3, failures: 0 })), [Action::Start(4)]);
    assert_eq!(not_say(s.on(Event::ExpectFault { task: 4, offset: 0x3000, frames: 5 })), [Action::Answer(4)]);
}

#[test]
fn a_whole_run_with_the_expected_fault_passes() {
    let mut s = supervisor();
    up_to_the_fault_task(&mut s);
    let actions = s.on(Event::Fault { task: 4, fault: vm(0x3000) });
    assert!(said(&actions).contains("client use-after-shrink: vm fault at window+0x3000 (pc 0x401234)"), "{actions:?}");
    assert_eq!(not_say(actions), [Action::Stop(4), Action::Reclaim { task: 4, client: 10 }]);
    // Paused meanwhile: the census waits for the reclaim.
    assert_eq!(not_say(s.on(Event::Pause { task: 1 })), []);
    assert_eq!(not_say(s.on(Event::Pause { task: 0 })), []);
    let actions = s.on(Event::Reclaimed { task: 4, frames: 5, free: 100 });
    assert!(said(&actions).contains("fault caught and its frames came back"), "{actions:?}");
    assert_eq!(not_say(actions), [Action::Census(Stage::Held)]);
    assert_eq!(
        not_say(s.on(Event::Census { stage: Stage::Held, census: good_census() })),
        [Action::Answer(0), Action::Answer(1)]
    );
    assert_eq!(not_say(s.on(Event::Report { task: 0, failures: 0 })), []);
    assert_eq!(not_say(s.on(Event::Report { task: 1, failures: 0 })), [Action::Census(Stage::Final)]);
    let end = Census { mapped: 0, accounted: 0, derived_caps: 0, free: 10, engine_free: 10, ..good_census() };
    assert_eq!(not_say(s.on(Event::Census { stage: Stage::Final, census: end })), [Action::Finish { failures: 0 }]);
}

#[test]
fn frames_missing_after_the_reclaim_fail_the_run() {
    let mut s = supervisor();
    up_to_the_fault_task(&mut s);
    s.on(Event::Fault { task: 4, fault: vm(0x3000) });
    let actions = s.on(Event::Reclaimed { task: 4, frames: 4, free: 100 });
    assert!(said(&actions).contains("held 5 frame(s), 4 came back"));
    assert_eq!(s.failures(), 1);
}

#[test]
fn a_fault_elsewhere_than_announced_is_a_failure() {
    let mut s = supervisor();
    up_to_the_fault_task(&mut s);
    s.on(Event::Fault { task: 4, fault: vm(0x4000) });
    s.on(Event::Reclaimed { task: 4, frames: 5, free: 100 });
    assert_eq!(s.failures(), 1);
}

#[test]
fn an_announced_fault_that_never_comes_is_a_failure() {
    let mut s = supervisor();
    up_to_the_fault_task(&mut s);
    let actions = s.on(Event::Report { task: 4, failures: 1 });
    assert!(said(&actions).contains("announced a fault that never came"));
    assert_eq!(s.failures(), 2);
}

#[test]
fn an_unexpected_fault_stops_its_image_and_the_others_go_on() {
    let mut s = supervisor();
    s.start();
    s.on(Event::Ready { task: 0 });
    s.on(Event::Ready { task: 1 });
    // The suite faults: it and its agent are stopped and reclaimed; then the fault task starts.
    let actions = s.on(Event::Fault { task: 2, fault: FaultKind::Vm { addr: 0x10, ip: 0x40_0000, prefetch: false } });
    assert!(said(&actions).contains("client conformance: vm fault at 0x10, outside its window"), "{actions:?}");
    assert_eq!(
        not_say(actions),
        [
            Action::Stop(2),
            Action::Reclaim { task: 2, client: 5 },
            Action::Stop(3),
            Action::Reclaim { task: 3, client: 9 }
        ]
    );
    assert_eq!(not_say(s.on(Event::Reclaimed { task: 2, frames: 7, free: 10 })), []);
    assert_eq!(not_say(s.on(Event::Reclaimed { task: 3, frames: 1, free: 11 })), [Action::Start(4)]);
    assert_eq!(s.failures(), 2);
    // The rest of the run goes on to its end.
    s.on(Event::ExpectFault { task: 4, offset: 0, frames: 0 });
    s.on(Event::Fault { task: 4, fault: vm(0) });
    s.on(Event::Reclaimed { task: 4, frames: 0, free: 10 });
    s.on(Event::Pause { task: 0 });
    s.on(Event::Pause { task: 1 });
    s.on(Event::Census { stage: Stage::Held, census: good_census() });
    s.on(Event::Report { task: 0, failures: 0 });
    s.on(Event::Report { task: 1, failures: 0 });
    let end = s.on(Event::Census { stage: Stage::Final, census: good_census() });
    assert_eq!(not_say(end), [Action::Finish { failures: 2 }]);
}

#[test]
fn a_census_that_disagrees_fails_the_run() {
    let mut s = Supervisor::new(std::vec![info("conformance", "conformance", 5, false)]);
    assert_eq!(not_say(s.start()), [Action::Start(0)]);
    assert_eq!(not_say(s.on(Event::Report { task: 0, failures: 0 })), [Action::Census(Stage::Held)]);
    let bad = Census { accounted: 3, ..good_census() };
    let actions = s.on(Event::Census { stage: Stage::Held, census: bad });
    assert!(said(&actions).contains("census disagrees"));
    assert_eq!(not_say(actions), [Action::Census(Stage::Final)]);
    assert_eq!(
        not_say(s.on(Event::Census { stage: Stage::Final, census: good_census() })),
        [Action::Finish { failures: 1 }]
    );
}

#[test]
fn messages_from_finished_or_unknown_tasks_change_nothing() {
    let mut s = supervisor();
    s.start();
    s.on(Event::Report { task: 0, failures: 0 });
    let actions = s.on(Event::Report { task: 0, failures: 7 });
    assert!(said(&actions).contains("ignored"));
    assert_eq!(s.on(Event::Ready { task: 99 }).len(), 1);
    // A reclaim answer for a task that was never stopped changes nothing either.
    assert!(said(&s.on(Event::Reclaimed { task: 1, frames: 3, free: 0 })).contains("not stopped"));
    assert_eq!(s.failures(), 0);
}

#[test]
fn fault_lines_name_the_client_and_where() {
    let window = Region { addr: WINDOW_BASE, len: 0x10000 };
    let line = |fault| FaultReport { name: "x", window, fault }.to_string();
    assert_eq!(line(vm(0xabc)), "client x: vm fault at window+0xabc (pc 0x401234)");
    assert_eq!(line(FaultKind::Other { kind: "capability" }), "client x: capability fault");
    assert_eq!(
        line(FaultKind::Vm { addr: WINDOW_BASE + 0x10000, ip: 1, prefetch: true }),
        "client x: instruction fetch at 0x8000010000, outside its window (pc 0x1)"
    );
}

/// A task with a heap client (50): background load generator 0, the suite 1 (its heap 51).
fn supervisor_with_heaps() -> Supervisor {
    let with_heap = |mut t: TaskInfo, heap| {
        t.heap = Some(heap);
        t
    };
    Supervisor::new(std::vec![
        with_heap(info("loadgen", "loadgen-0", 3, true), 50),
        with_heap(info("conformance", "conformance", 5, false), 51),
    ])
}

#[test]
fn a_heap_is_reclaimed_when_its_task_reports_and_the_run_waits_for_it() {
    let mut s = supervisor_with_heaps();
    s.start();
    s.on(Event::Ready { task: 0 });
    let actions = s.on(Event::Report { task: 1, failures: 0 });
    assert_eq!(not_say(actions), [Action::ReclaimHeap { task: 1, client: 51 }]);
    s.on(Event::Pause { task: 0 });
    // The census with the load held waits for the suite's heap.
    let actions = s.on(Event::HeapReclaimed { task: 1, frames: 9, free: 100 });
    assert!(said(&actions).contains("client conformance's heap (client 51) reclaimed: 9 frame(s) back"), "{actions:?}");
    assert_eq!(not_say(actions), [Action::Census(Stage::Held)]);
    assert_eq!(not_say(s.on(Event::Census { stage: Stage::Held, census: good_census() })), [Action::Answer(0)]);
    assert_eq!(not_say(s.on(Event::Report { task: 0, failures: 0 })), [Action::ReclaimHeap { task: 0, client: 50 }]);
    assert_eq!(not_say(s.on(Event::HeapReclaimed { task: 0, frames: 2, free: 102 })), [Action::Census(Stage::Final)]);
    let end = s.on(Event::Census { stage: Stage::Final, census: good_census() });
    assert_eq!(not_say(end), [Action::Finish { failures: 0 }]);
}

#[test]
fn a_faulting_task_loses_its_heap_with_its_client_and_only_its_own_frames_are_compared() {
    let mut s = supervisor_with_heaps();
    s.start();
    s.on(Event::Ready { task: 0 });
    s.on(Event::ExpectFault { task: 1, offset: 0x2000, frames: 4 });
    let actions = s.on(Event::Fault { task: 1, fault: vm(0x2000) });
    assert_eq!(
        not_say(actions),
        [Action::Stop(1), Action::ReclaimHeap { task: 1, client: 51 }, Action::Reclaim { task: 1, client: 5 }]
    );
    // The heap's frames are not the task's: 4 came back from its own client, as announced.
    s.on(Event::HeapReclaimed { task: 1, frames: 3, free: 50 });
    let actions = s.on(Event::Reclaimed { task: 1, frames: 4, free: 54 });
    assert!(said(&actions).contains("fault caught and its frames came back"), "{actions:?}");
    assert_eq!(s.failures(), 0);
    // A heap reclaim nobody asked for changes nothing.
    assert!(said(&s.on(Event::HeapReclaimed { task: 1, frames: 1, free: 0 })).contains("not asked for"));
    assert_eq!(s.failures(), 0);
}

/// The memserver learns each seL4 client's `slub_debug`, and each client's control region is
/// sized as the dispatch lays it out: slots, cache table, and a page-owner entry per window
/// page.
#[test]
fn slub_debug_and_control_sizes_reach_the_memserver() {
    let (system, plan) = repository_plan();
    for (i, c) in plan.server.clients.iter().enumerate() {
        let (_, entry) = system.client_by_name(&c.name).unwrap();
        assert_eq!(c.slub_debug.as_str(), entry.slub_debug.as_deref().unwrap_or(""), "{}", c.name);
        let bytes = plan.control_bytes(i).unwrap();
        let caches = plan.server.max_caches_per_client.max(14);
        let layout = protocol::control::ControlLayout {
            slots: plan.server.magazine_slots,
            caches,
            window_pages: c.window_pages,
        };
        assert_eq!(bytes, layout.size(), "{}", c.name);
        assert!(bytes >= layout.page_owner_offset(c.window_pages), "{}: no room for the page-owner table", c.name);
    }
    let debug = plan.server.clients.iter().find(|c| c.name == "conformance-debug").unwrap();
    assert_eq!(debug.slub_debug.as_str(), "FZPU,kmalloc-*");
}

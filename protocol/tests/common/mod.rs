//! Shared by the integration tests: one example of every message, worst-case values, and
//! proptest strategies.
#![allow(dead_code)]

use protocol::*;

pub mod strategies;

pub fn name(s: &str) -> CacheName {
    cache_name(s).unwrap()
}

fn corruption() -> Corruption {
    Corruption { cache: CacheId(3), object: Handle(0x2040), offset: -8, found: 0x00, expected: 0xbb }
}

/// One example of every error, with its golden-file name.
pub fn error_examples() -> Vec<(&'static str, Error)> {
    vec![
        ("invalid_argument", Error::InvalidArgument),
        ("name_taken", Error::NameTaken),
        ("no_such_cache", Error::NoSuchCache),
        ("out_of_memory", Error::OutOfMemory),
        ("quota_exceeded", Error::QuotaExceeded),
        ("invalid_object", Error::InvalidObject),
        ("wrong_cache", Error::WrongCache),
        ("double_free", Error::DoubleFree),
        ("cache_busy", Error::CacheBusy { live: 300 }),
        (
            "poison_corrupted",
            Error::PoisonCorrupted(Corruption { offset: 17, found: 0x00, expected: 0x6b, ..corruption() }),
        ),
        ("red_zone_corrupted", Error::RedZoneCorrupted(corruption())),
        ("malformed", Error::Malformed),
        ("version_mismatch", Error::VersionMismatch { server: 1 }),
        ("not_supported", Error::NotSupported),
        ("permission_denied", Error::PermissionDenied),
        ("internal", Error::Internal),
    ]
}

/// One example of every request (every `ExchangeOp` too), with its golden-file name.
pub fn request_examples() -> Vec<(&'static str, Request)> {
    let cache = CacheId(5);
    vec![
        ("hello", Request::Hello { version: PROTOCOL_VERSION, client_name: client_name("loadgen").unwrap() }),
        (
            "cache_create",
            Request::CacheCreate {
                name: name("dentry"),
                size: 192,
                align: 0,
                flags: flags::SLAB_HWCACHE_ALIGN,
                ctor: true,
                dtor: false,
            },
        ),
        ("alloc", Request::Alloc { cache }),
        ("zalloc", Request::Zalloc { cache }),
        ("free", Request::Free { cache, handle: Handle(0x1_2340) }),
        ("destroy", Request::Destroy { cache }),
        ("shrink", Request::Shrink { cache }),
        ("kmalloc", Request::Kmalloc { size: 54 }),
        ("kfree", Request::Kfree { handle: Handle(0x8000) }),
        ("magazine_exchange.refill", Request::MagazineExchange { cache, slot: 2, op: ExchangeOp::Refill }),
        ("magazine_exchange.drain", Request::MagazineExchange { cache, slot: 2, op: ExchangeOp::Drain }),
        ("magazine_exchange.flush", Request::MagazineExchange { cache, slot: 2, op: ExchangeOp::Flush }),
        ("cache_info", Request::CacheInfo { cache }),
        ("slab_info", Request::SlabInfo { page: 1, all_clients: true }),
        ("object_owner", Request::ObjectOwner { handle: Handle(0x2040) }),
        ("stats", Request::Stats),
        ("goodbye", Request::Goodbye),
        ("client_stats", Request::ClientStats { client: 3 }),
        ("clients", Request::Clients { page: 1 }),
        ("dma_addr", Request::DmaAddr { handle: Handle(0x3040) }),
        ("validate", Request::Validate { client: 3, name: name("kmalloc-32") }),
        ("krealloc", Request::Krealloc { handle: Handle(0x8040), size: 40, zero: true }),
        ("shrink_begin", Request::ShrinkBegin { cache }),
        ("shrink_commit", Request::ShrinkCommit { cache, token: 7 }),
    ]
}

pub fn layout() -> CacheLayout {
    CacheLayout { object_size: 192, stride: 192, align: 64, objects_per_slab: 21, pages_per_slab: 1 }
}

pub fn row(client: ClientId, n: &str) -> SlabInfoRow {
    SlabInfoRow {
        client,
        name: name(n),
        active_objs: 40,
        num_objs: 42,
        objsize: 192,
        objperslab: 21,
        pagesperslab: 1,
        active_slabs: 2,
        num_slabs: 2,
    }
}

/// One example of every reply (every error too), with its golden-file name.
pub fn reply_examples() -> Vec<(String, Reply)> {
    let mut rows = SlabInfoRows::new();
    rows.push(row(1, "dentry")).unwrap();
    rows.push(row(1, "kmalloc-64")).unwrap();
    let mut v: Vec<(String, Reply)> = vec![
        (
            "hello".into(),
            Reply::Hello(SessionInfo {
                client: 1,
                window_size: 64 << 20,
                control_size: 17 * 4096,
                magazine_slots: 64,
                magazine_capacity: 64,
            }),
        ),
        (
            "created".into(),
            Reply::Created(Created {
                cache: CacheId(5),
                layout: layout(),
                debug: false,
                slot: Some(2),
                magazine_capacity: 32,
            }),
        ),
        ("object".into(), Reply::Object(Object { handle: Handle(0x1_2340), fresh: true })),
        ("done".into(), Reply::Done),
        ("shrunk".into(), Reply::Shrunk(Shrunk { pages: 12 })),
        ("exchanged".into(), Reply::Exchanged(Exchanged { count: 32, fresh_mask: 0xffff_0000 })),
        (
            "cache_info".into(),
            Reply::CacheInfo(CacheInfo {
                cache: CacheId(5),
                name: name("dentry"),
                flags: flags::SLAB_HWCACHE_ALIGN,
                ctor: true,
                layout: layout(),
                debug: false,
                slot: Some(2),
                magazine_capacity: 32,
                active_objs: 40,
                num_objs: 42,
                active_slabs: 2,
                num_slabs: 2,
                magazine_objs: 7,
                dtor: false,
            }),
        ),
        ("slab_info".into(), Reply::SlabInfo(SlabInfoPage { page: 0, more: false, rows })),
        ("owner".into(), Reply::Owner(Owner { alloc: Some(Track { client: 1, seq: 1000 }), free: None })),
        (
            "stats".into(),
            Reply::Stats(Stats {
                pool_pages: 16384,
                pool_free_pages: 16000,
                client: 1,
                client_pages: 384,
                quota_pages: 4096,
                caches: 3,
                live_objects: 5000,
                magazine_objects: 60,
                requests: 200,
                allocs: 10,
                frees: 9,
                refills: 100,
                drains: 80,
                flushes: 1,
                objects_refilled: 3200,
                objects_drained: 2560,
                errors: 2,
                alloc_hits: 90_000,
                free_hits: 89_000,
                magazine_misses: 1_500,
                granted_pages: 384,
                resident_pages: 300,
                grant_violations: 1,
                reclaimable_pages: 8,
            }),
        ),
    ];
    for (n, e) in error_examples() {
        v.push((format!("error.{n}"), Reply::Error(e)));
    }
    let mut clients = ClientList::new();
    for (client, n) in [(1, "app"), (2, "memctl")] {
        clients.push(ClientEntry { client, name: client_name(n).unwrap() }).unwrap();
    }
    v.push(("clients".into(), Reply::Clients(ClientsPage { page: 0, more: false, clients })));
    v.push(("dma_addr".into(), Reply::DmaAddr(DmaAddress { addr: 0x4_1234_5040, contiguous: 192 })));
    let first = Some(Finding::RedZone(Corruption { offset: 18, found: 0xab, expected: 0xcc, ..corruption() }));
    v.push(("validated".into(), Reply::Validated(ValidationReport { slabs: 2, objects: 256, errors: 1, first })));
    let mut slabs = SlabList::new();
    slabs.push(Handle(0x4000)).unwrap();
    slabs.push(Handle(0x6000)).unwrap();
    v.push(("shrink_plan".into(), Reply::ShrinkPlan(ShrinkPlan { token: 7, more: true, slabs })));
    v
}

/// The largest value of every request variant.
pub fn worst_requests() -> Vec<Request> {
    let c = CacheId(u32::MAX);
    let h = Handle(u64::MAX);
    vec![
        Request::Hello { version: u16::MAX, client_name: client_name(&"n".repeat(CLIENT_NAME_MAX)).unwrap() },
        Request::CacheCreate {
            name: name(&"x".repeat(31)),
            size: u32::MAX,
            align: u32::MAX,
            flags: u32::MAX,
            ctor: true,
            dtor: true,
        },
        Request::Alloc { cache: c },
        Request::Zalloc { cache: c },
        Request::Free { cache: c, handle: h },
        Request::Destroy { cache: c },
        Request::Shrink { cache: c },
        Request::Kmalloc { size: u32::MAX },
        Request::Kfree { handle: h },
        Request::MagazineExchange { cache: c, slot: u16::MAX, op: ExchangeOp::Flush },
        Request::CacheInfo { cache: c },
        Request::SlabInfo { page: u16::MAX, all_clients: true },
        Request::ObjectOwner { handle: h },
        Request::Stats,
        Request::Goodbye,
        Request::ClientStats { client: u16::MAX },
        Request::Clients { page: u16::MAX },
        Request::DmaAddr { handle: h },
        Request::Validate { client: u16::MAX, name: name(&"v".repeat(31)) },
        Request::Krealloc { handle: h, size: u32::MAX, zero: true },
        Request::ShrinkBegin { cache: c },
        Request::ShrinkCommit { cache: c, token: u32::MAX },
    ]
}

pub fn worst_row() -> SlabInfoRow {
    SlabInfoRow {
        client: u16::MAX,
        name: name(&"y".repeat(31)),
        active_objs: u32::MAX,
        num_objs: u32::MAX,
        objsize: u32::MAX,
        objperslab: u32::MAX,
        pagesperslab: u32::MAX,
        active_slabs: u32::MAX,
        num_slabs: u32::MAX,
    }
}

pub fn worst_errors() -> Vec<Error> {
    let c = Corruption {
        cache: CacheId(u32::MAX),
        object: Handle(u64::MAX),
        offset: i32::MIN,
        found: 0xff,
        expected: 0xff,
    };
    vec![
        Error::CacheBusy { live: u32::MAX },
        Error::PoisonCorrupted(c),
        Error::RedZoneCorrupted(c),
        Error::VersionMismatch { server: u16::MAX },
        Error::Malformed,
    ]
}

pub fn worst_cache_info() -> CacheInfo {
    let m = u32::MAX;
    CacheInfo {
        cache: CacheId(m),
        name: name(&"z".repeat(31)),
        flags: m,
        ctor: true,
        layout: worst_layout(),
        debug: true,
        slot: Some(u16::MAX),
        magazine_capacity: u16::MAX,
        active_objs: m,
        num_objs: m,
        active_slabs: m,
        num_slabs: m,
        magazine_objs: m,
        dtor: true,
    }
}

pub fn worst_layout() -> CacheLayout {
    let m = u32::MAX;
    CacheLayout { object_size: m, stride: m, align: m, objects_per_slab: m, pages_per_slab: m }
}

pub fn worst_stats() -> Stats {
    let (w, d) = (u32::MAX, u64::MAX);
    Stats {
        pool_pages: w,
        pool_free_pages: w,
        client: u16::MAX,
        client_pages: w,
        quota_pages: w,
        caches: w,
        live_objects: d,
        magazine_objects: d,
        requests: d,
        allocs: d,
        frees: d,
        refills: d,
        drains: d,
        flushes: d,
        objects_refilled: d,
        objects_drained: d,
        errors: d,
        alloc_hits: d,
        free_hits: d,
        magazine_misses: d,
        granted_pages: w,
        resident_pages: w,
        grant_violations: w,
        reclaimable_pages: w,
    }
}

/// The largest value of every reply variant.
pub fn worst_replies() -> Vec<Reply> {
    let track = Some(Track { client: u16::MAX, seq: u64::MAX });
    let mut rows = SlabInfoRows::new();
    while rows.push(worst_row()).is_ok() {}
    let mut v = vec![
        Reply::Hello(SessionInfo {
            client: u16::MAX,
            window_size: u64::MAX,
            control_size: u32::MAX,
            magazine_slots: u16::MAX,
            magazine_capacity: u16::MAX,
        }),
        Reply::Created(Created {
            cache: CacheId(u32::MAX),
            layout: worst_layout(),
            debug: true,
            slot: Some(u16::MAX),
            magazine_capacity: u16::MAX,
        }),
        Reply::Object(Object { handle: Handle(u64::MAX), fresh: true }),
        Reply::Done,
        Reply::Shrunk(Shrunk { pages: u32::MAX }),
        Reply::Exchanged(Exchanged { count: u16::MAX, fresh_mask: u64::MAX }),
        Reply::CacheInfo(worst_cache_info()),
        Reply::SlabInfo(SlabInfoPage { page: u16::MAX, more: true, rows }),
        Reply::Owner(Owner { alloc: track, free: track }),
        Reply::Stats(worst_stats()),
    ];
    v.extend(worst_errors().into_iter().map(Reply::Error));
    let mut clients = ClientList::new();
    while clients.push(worst_client_entry()).is_ok() {}
    v.push(Reply::Clients(ClientsPage { page: u16::MAX, more: true, clients }));
    v.push(Reply::DmaAddr(DmaAddress { addr: u64::MAX, contiguous: u32::MAX }));
    v.push(Reply::Validated(worst_validation()));
    let mut slabs = SlabList::new();
    while slabs.push(Handle(u64::MAX)).is_ok() {}
    v.push(Reply::ShrinkPlan(ShrinkPlan { token: u32::MAX, more: true, slabs }));
    v
}

pub fn worst_validation() -> ValidationReport {
    let c = Corruption {
        cache: CacheId(u32::MAX),
        object: Handle(u64::MAX),
        offset: i32::MIN,
        found: 0xff,
        expected: 0xff,
    };
    ValidationReport { slabs: u32::MAX, objects: u32::MAX, errors: u32::MAX, first: Some(Finding::Poison(c)) }
}

pub fn worst_client_entry() -> ClientEntry {
    ClientEntry { client: u16::MAX, name: client_name(&"c".repeat(CLIENT_NAME_MAX)).unwrap() }
}

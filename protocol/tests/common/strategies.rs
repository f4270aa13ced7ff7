//! proptest strategies for every message type.

use proptest::prelude::*;
use protocol::*;

use super::error_examples;

fn arb_name() -> impl Strategy<Value = CacheName> {
    "\\PC{0,31}".prop_map(|s| {
        let mut out = CacheName::new();
        for ch in s.chars() {
            if out.push(ch).is_err() {
                break;
            }
        }
        out
    })
}

fn arb_cache() -> impl Strategy<Value = CacheId> {
    any::<u32>().prop_map(CacheId)
}

fn arb_handle() -> impl Strategy<Value = Handle> {
    any::<u64>().prop_map(Handle)
}

fn arb_op() -> impl Strategy<Value = ExchangeOp> {
    prop_oneof![Just(ExchangeOp::Refill), Just(ExchangeOp::Drain), Just(ExchangeOp::Flush)]
}

pub fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), arb_name())
            .prop_map(|(version, n)| Request::Hello { version, client_name: client_name(n.as_str()).unwrap() }),
        (arb_name(), any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), any::<bool>()).prop_map(
            |(name, size, align, flags, ctor, dtor)| Request::CacheCreate { name, size, align, flags, ctor, dtor }
        ),
        arb_cache().prop_map(|cache| Request::Alloc { cache }),
        arb_cache().prop_map(|cache| Request::Zalloc { cache }),
        (arb_cache(), arb_handle()).prop_map(|(cache, handle)| Request::Free { cache, handle }),
        arb_cache().prop_map(|cache| Request::Destroy { cache }),
        arb_cache().prop_map(|cache| Request::Shrink { cache }),
        any::<u32>().prop_map(|size| Request::Kmalloc { size }),
        arb_handle().prop_map(|handle| Request::Kfree { handle }),
        (arb_cache(), any::<u16>(), arb_op()).prop_map(|(cache, slot, op)| Request::MagazineExchange {
            cache,
            slot,
            op
        }),
        arb_cache().prop_map(|cache| Request::CacheInfo { cache }),
        (any::<u16>(), any::<bool>()).prop_map(|(page, all_clients)| Request::SlabInfo { page, all_clients }),
        arb_handle().prop_map(|handle| Request::ObjectOwner { handle }),
        Just(Request::Stats),
        Just(Request::Goodbye),
        any::<u16>().prop_map(|client| Request::ClientStats { client }),
        any::<u16>().prop_map(|page| Request::Clients { page }),
        (any::<u16>(), arb_name()).prop_map(|(client, name)| Request::Validate { client, name }),
        (arb_handle(), any::<u32>(), any::<bool>()).prop_map(|(handle, size, zero)| Request::Krealloc {
            handle,
            size,
            zero
        }),
        arb_cache().prop_map(|cache| Request::ShrinkBegin { cache }),
        (arb_cache(), any::<u32>()).prop_map(|(cache, token)| Request::ShrinkCommit { cache, token }),
    ]
}

fn arb_corruption() -> impl Strategy<Value = Corruption> {
    (arb_cache(), arb_handle(), any::<i32>(), any::<u8>(), any::<u8>())
        .prop_map(|(cache, object, offset, found, expected)| Corruption { cache, object, offset, found, expected })
}

pub fn arb_error() -> impl Strategy<Value = Error> {
    prop_oneof![
        proptest::sample::select(error_examples().into_iter().map(|(_, e)| e).collect::<Vec<_>>()),
        any::<u32>().prop_map(|live| Error::CacheBusy { live }),
        arb_corruption().prop_map(Error::PoisonCorrupted),
        arb_corruption().prop_map(Error::RedZoneCorrupted),
        any::<u16>().prop_map(|server| Error::VersionMismatch { server }),
    ]
}

fn arb_layout() -> impl Strategy<Value = CacheLayout> {
    any::<[u32; 5]>().prop_map(|[a, b, c, d, e]| CacheLayout {
        object_size: a,
        stride: b,
        align: c,
        objects_per_slab: d,
        pages_per_slab: e,
    })
}

fn arb_row() -> impl Strategy<Value = SlabInfoRow> {
    (any::<u16>(), arb_name(), any::<[u32; 7]>()).prop_map(|(client, name, [a, b, c, d, e, f, g])| SlabInfoRow {
        client,
        name,
        active_objs: a,
        num_objs: b,
        objsize: c,
        objperslab: d,
        pagesperslab: e,
        active_slabs: f,
        num_slabs: g,
    })
}

fn arb_track() -> impl Strategy<Value = Option<Track>> {
    proptest::option::of((any::<u16>(), any::<u64>()).prop_map(|(client, seq)| Track { client, seq }))
}

fn arb_cache_info() -> impl Strategy<Value = CacheInfo> {
    (
        (arb_cache(), arb_name(), any::<u32>(), any::<bool>(), arb_layout(), any::<bool>()),
        (proptest::option::of(any::<u16>()), any::<u16>(), any::<[u32; 5]>(), any::<bool>()),
    )
        .prop_map(
            |((cache, name, flags, ctor, layout, debug), (slot, magazine_capacity, [a, b, c, d, e], dtor))| CacheInfo {
                cache,
                name,
                flags,
                ctor,
                layout,
                debug,
                slot,
                magazine_capacity,
                active_objs: a,
                num_objs: b,
                active_slabs: c,
                num_slabs: d,
                magazine_objs: e,
                dtor,
            },
        )
}

fn arb_stats() -> impl Strategy<Value = Stats> {
    (any::<[u32; 9]>(), any::<u16>(), any::<[u64; 14]>()).prop_map(|(w, client, d)| Stats {
        pool_pages: w[0],
        pool_free_pages: w[1],
        client,
        client_pages: w[2],
        quota_pages: w[3],
        caches: w[4],
        live_objects: d[0],
        magazine_objects: d[1],
        requests: d[2],
        allocs: d[3],
        frees: d[4],
        refills: d[5],
        drains: d[6],
        flushes: d[7],
        objects_refilled: d[8],
        objects_drained: d[9],
        errors: d[10],
        alloc_hits: d[11],
        free_hits: d[12],
        magazine_misses: d[13],
        granted_pages: w[5],
        resident_pages: w[6],
        grant_violations: w[7],
        reclaimable_pages: w[8],
    })
}

pub fn arb_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u16>(), any::<u64>(), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(
            |(client, window_size, control_size, magazine_slots, magazine_capacity)| {
                Reply::Hello(SessionInfo { client, window_size, control_size, magazine_slots, magazine_capacity })
            }
        ),
        (arb_cache(), arb_layout(), any::<bool>(), proptest::option::of(any::<u16>()), any::<u16>()).prop_map(
            |(cache, layout, debug, slot, magazine_capacity)| Reply::Created(Created {
                cache,
                layout,
                debug,
                slot,
                magazine_capacity
            })
        ),
        (arb_handle(), any::<bool>()).prop_map(|(handle, fresh)| Reply::Object(Object { handle, fresh })),
        Just(Reply::Done),
        any::<u32>().prop_map(|pages| Reply::Shrunk(Shrunk { pages })),
        (any::<u16>(), any::<u64>()).prop_map(|(count, fresh_mask)| Reply::Exchanged(Exchanged { count, fresh_mask })),
        arb_cache_info().prop_map(Reply::CacheInfo),
        (any::<u16>(), any::<bool>(), proptest::collection::vec(arb_row(), 0..=SLABINFO_ROWS_PER_PAGE)).prop_map(
            |(page, more, rows)| Reply::SlabInfo(SlabInfoPage { page, more, rows: SlabInfoRows::from_iter(rows) })
        ),
        (arb_track(), arb_track()).prop_map(|(alloc, free)| Reply::Owner(Owner { alloc, free })),
        arb_stats().prop_map(Reply::Stats),
        arb_error().prop_map(Reply::Error),
        (
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec((any::<u16>(), arb_client_name()), 0..=CLIENTS_PER_PAGE)
        )
            .prop_map(|(page, more, entries)| Reply::Clients(ClientsPage {
                page,
                more,
                clients: entries.into_iter().map(|(client, name)| ClientEntry { client, name }).collect(),
            })),
        (any::<[u32; 3]>(), proptest::option::of((any::<bool>(), arb_corruption()))).prop_map(
            |([slabs, objects, errors], first)| Reply::Validated(ValidationReport {
                slabs,
                objects,
                errors,
                first: first.map(|(poison, c)| if poison { Finding::Poison(c) } else { Finding::RedZone(c) }),
            })
        ),
        (any::<u32>(), any::<bool>(), proptest::collection::vec(arb_handle(), 0..=SHRINK_PLAN_SLABS)).prop_map(
            |(token, more, slabs)| Reply::ShrinkPlan(ShrinkPlan { token, more, slabs: SlabList::from_iter(slabs) })
        ),
    ]
}

fn arb_client_name() -> impl Strategy<Value = ClientName> {
    arb_name().prop_map(|n| ClientName::try_from(n.as_str()).unwrap())
}

//! A client task's own heap: memclient's `GlobalKmalloc` over the session of the task's heap
//! client, with a small static bootstrap heap beside it.
//!
//! Design: `system.toml` gives a task a heap client (`heap = "NAME"`), whose window the root
//! task reserves in the task's VSpace (`HEAP_WINDOW_BASE`) and whose badged endpoint
//! capability sits in `SLOT_HEAP_MEMSERVER`. The task's entry opens that session ([`open`])
//! before it calls the task's `main`, and from then on every `Box`, `Vec` and `String` of the
//! task is a `kmalloc` of the heap client, served by the memserver (`GlobalKmalloc`: one
//! kmalloc per allocation, large sizes in whole pages). A heap client of its own, rather than
//! the task's own client, because the task's client is what the task measures or tests: the
//! conformance suite opens and closes it (`Hello`, `Goodbye`, counts of live objects), and the
//! load generator counts its IPCs; heap allocations there would change both.
//!
//! Bootstrap: what is allocated before the session exists, and everything in a task without a
//! heap client (the conformance agents), comes from [`BOOTSTRAP_BYTES`] of static memory
//! (rust-sel4's dlmalloc over a static array). `GlobalKmalloc::dealloc` tells the two apart
//! by address: a pointer in the heap client's window is a memserver object, any other a
//! bootstrap block. A client task has one thread, and the session is installed once, before
//! `main`, so [`HeapSession`] is a write-once cell that nobody waits on.

use memclient::Memserver;
use memclient::global::{GlobalKmalloc, GlobalKmallocCounters, SessionSource};
use memserver_sel4_abi::ClientSession;
use memserver_sel4_abi::start::SLOT_HEAP_MEMSERVER;
use sel4_dlmalloc::{StaticDlmalloc, StaticHeap};
use sel4_sync::RawLazyNotificationMutex;

use crate::Sel4Transport;

/// Static memory for allocations made while there is no heap session.
pub const BOOTSTRAP_BYTES: usize = 256 * 1024;

static BOOTSTRAP_HEAP: StaticHeap<BOOTSTRAP_BYTES> = StaticHeap::new();

/// The bootstrap allocator. The task has one thread, so its lock is never contended;
/// contention would stop the task.
type Bootstrap = StaticDlmalloc<RawLazyNotificationMutex>;

/// Where the task's `GlobalKmalloc` finds its session: set once by [`open`].
pub struct HeapSession {
    session: spin::Once<Memserver<Sel4Transport>>,
    /// The heap client's name, for the summary.
    name: spin::Once<protocol::ClientName>,
}

impl SessionSource for HeapSession {
    type Transport = Sel4Transport;

    fn session(&self) -> Option<&Memserver<Sel4Transport>> {
        self.session.get()
    }

    fn ready(&self) -> Option<&Memserver<Sel4Transport>> {
        self.session.get()
    }
}

/// The client task's allocator.
#[global_allocator]
static ALLOCATOR: GlobalKmalloc<HeapSession, Bootstrap> = GlobalKmalloc::with_source(
    HeapSession { session: spin::Once::new(), name: spin::Once::new() },
    StaticDlmalloc::new_with_raw_mutex(RawLazyNotificationMutex::new(no_contention), BOOTSTRAP_HEAP.bounds()),
);

fn no_contention() -> sel4::cap::Notification {
    sel4::debug_println!("client task: heap lock contended in a single-threaded task");
    crate::stop()
}

/// Opens the heap client's session (`Hello` on `SLOT_HEAP_MEMSERVER`) and makes it the
/// task's heap. Called once, by the task's entry, before `main`.
pub fn open(heap: &ClientSession) -> Result<(), &'static str> {
    if ALLOCATOR.source().session.is_completed() {
        return Err("heap session opened twice");
    }
    let server = crate::open_at(SLOT_HEAP_MEMSERVER, heap)?;
    ALLOCATOR.source().session.call_once(|| server);
    ALLOCATOR.source().name.call_once(|| heap.name.clone());
    Ok(())
}

/// The heap session, once [`open`]ed.
pub fn session() -> Option<&'static Memserver<Sel4Transport>> {
    ALLOCATOR.source().session.get()
}

/// Gives every kmalloc class of the heap client a slab now (one object each, allocated and
/// freed: an empty slab stays until a shrink). For a task that counts the pool's free pages
/// between its own steps (the conformance suite): the small allocations of its heap then come
/// from slabs that exist already instead of taking pages in the middle of a measurement.
/// Returns the pages the heap client holds.
pub fn grow_every_class() -> Result<u32, &'static str> {
    let server = session().ok_or("no heap session")?;
    for size in memclient::kmalloc::KMALLOC_SIZES {
        let object = server.kmalloc(size as usize).map_err(|_| "kmalloc")?;
        server.kfree(object).map_err(|_| "kfree")?;
    }
    server.stats().map(|s| s.client_pages).map_err(|_| "stats")
}

/// What the allocator counted.
pub fn counters() -> GlobalKmallocCounters {
    ALLOCATOR.counters()
}

/// Prints what the memserver served of `task`'s heap (from the allocator's counters and
/// from the heap client's `Stats`); returns the failures: a heap client that served nothing
/// (the task's allocations went elsewhere), or frees the server refused.
pub fn summary(task: &str) -> u64 {
    let c = counters();
    let Some(server) = session() else {
        sel4::debug_println!(
            "{task}: heap: no heap client; {} allocation(s) from the bootstrap heap",
            c.bootstrap_allocations
        );
        return 0;
    };
    let name = ALLOCATOR.source().name.get().map_or("?", |n| n.as_str());
    let magazines = server.counters();
    match server.stats() {
        Ok(stats) => sel4::debug_println!(
            "{task}: heap: {} allocation(s) served by the memserver ({} freed), {} from the bootstrap heap, {} failed free(s); \
             heap client {name}: {} kmalloc/kfree(s) from magazines, {} by IPC, {} live object(s) ({} in magazines), {} page(s)",
            c.served_allocations,
            c.served_frees,
            c.bootstrap_allocations,
            c.failed_frees,
            magazines.kmalloc_hits,
            magazines.kmalloc_misses,
            stats.live_objects,
            stats.magazine_objects,
            stats.client_pages
        ),
        Err(e) => {
            sel4::debug_println!("{task}: heap: the heap client {name} answered no stats: {e:?}");
            return 1;
        }
    }
    let mut failures = 0;
    if c.served_allocations == 0 {
        sel4::debug_println!("{task}: FAILED: the heap client served none of the task's allocations");
        failures += 1;
    }
    if c.failed_frees != 0 {
        sel4::debug_println!("{task}: FAILED: the memserver refused {} free(s) of the heap", c.failed_frees);
        failures += 1;
    }
    failures
}

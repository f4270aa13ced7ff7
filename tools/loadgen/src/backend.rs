//! The allocators a sequence runs against: memserver (one cache per size class and the
//! client's kmalloc caches, with or without magazines), glibc `malloc`/`free`
//! (`std::alloc::System`) and mimalloc (its plain allocator API, not installed as the global
//! allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use memclient::Cache;
use memclient::host::Connection;

use crate::pattern;
use crate::workload::KMALLOC;

/// One configuration of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// memserver caches with magazines (the fast path).
    Memserver,
    /// memserver caches used without magazines: every operation an IPC.
    MemserverNoMagazines,
    /// glibc `malloc` / `free`.
    Glibc,
    /// mimalloc `mi_malloc` / `mi_free`.
    Mimalloc,
}

impl Config {
    /// Its name in tables, JSON and plots.
    pub fn name(self) -> &'static str {
        match self {
            Config::Memserver => "memserver",
            Config::MemserverNoMagazines => "memserver-no-magazines",
            Config::Glibc => "glibc",
            Config::Mimalloc => "mimalloc",
        }
    }

    /// Whether it talks to the server.
    pub fn is_memserver(self) -> bool {
        matches!(self, Config::Memserver | Config::MemserverNoMagazines)
    }
}

/// An allocator the runner drives. Objects are at least 8-byte aligned.
pub trait Backend: Sync {
    /// Whether allocations come back constructed (a memserver cache with a ctor); otherwise the
    /// runner constructs them itself when the workload has a ctor.
    fn constructs(&self) -> bool;

    /// An object of `size` bytes of size class `class` (by `kmalloc` when `class` is
    /// [`KMALLOC`]).
    fn alloc(&self, class: usize, size: usize) -> Option<NonNull<u8>>;

    /// Frees an object.
    ///
    /// # Safety
    /// - `object` came from `self.alloc(class, size)` and is not used afterwards.
    unsafe fn free(&self, class: usize, size: usize, object: NonNull<u8>) -> bool;
}

fn layout(size: usize) -> Layout {
    // 8-byte alignment: what malloc guarantees at least, and what memserver objects have.
    Layout::from_size_align(size.max(1), 8).unwrap_or(Layout::new::<u64>())
}

/// glibc `malloc` / `free`: `System` calls them directly for alignments up to 16.
pub struct Glibc;

impl Backend for Glibc {
    fn constructs(&self) -> bool {
        false
    }

    #[inline]
    fn alloc(&self, _class: usize, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { System.alloc(layout(size)) })
    }

    #[inline]
    unsafe fn free(&self, _class: usize, size: usize, object: NonNull<u8>) -> bool {
        // SAFETY: allocated by System with the same layout (caller's contract).
        unsafe { System.dealloc(object.as_ptr(), layout(size)) };
        true
    }
}

/// mimalloc through its `GlobalAlloc` implementation (`mi_malloc_aligned` / `mi_free`).
pub struct Mimalloc;

impl Backend for Mimalloc {
    fn constructs(&self) -> bool {
        false
    }

    #[inline]
    fn alloc(&self, _class: usize, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: the layout has a non-zero size.
        NonNull::new(unsafe { mimalloc::MiMalloc.alloc(layout(size)) })
    }

    #[inline]
    unsafe fn free(&self, _class: usize, size: usize, object: NonNull<u8>) -> bool {
        // SAFETY: allocated by MiMalloc with the same layout (caller's contract).
        unsafe { mimalloc::MiMalloc.dealloc(object.as_ptr(), layout(size)) };
        true
    }
}

/// Object size the memserver ctor constructs (a `Ctor` is a plain `fn` without a size).
static CTOR_SIZE: AtomicUsize = AtomicUsize::new(0);

fn ctor(object: NonNull<u8>) {
    // SAFETY: the library runs the ctor on a fresh object of the cache, whose size is CTOR_SIZE
    // (the ctor workload has one cache).
    unsafe { pattern::construct(object, CTOR_SIZE.load(Ordering::Relaxed)) };
}

/// memserver: one cache per size class of the plan, and `kmalloc` (through the kmalloc
/// caches' magazines; without magazines, a `Kmalloc`/`Kfree` IPC each).
pub struct MemserverCaches<'m> {
    session: &'m Session,
    caches: Vec<Cache<'m, Connection>>,
    magazines: bool,
    with_ctor: bool,
    /// `Kmalloc`/`Kfree` IPCs made without magazines (the library counts only its own).
    kmalloc_ipcs: AtomicU64,
}

impl<'m> MemserverCaches<'m> {
    /// Creates the caches (`lg-<size>`), with or without magazines, with the ctor if asked.
    pub fn create(
        server: &'m Session,
        classes: &[u32],
        magazines: bool,
        with_ctor: bool,
    ) -> Result<Self, memclient::Error> {
        let mut caches = Vec::with_capacity(classes.len());
        for &size in classes {
            let name = format!("lg-{size}");
            let ctor_fn = with_ctor.then_some(ctor as memclient::Ctor);
            if with_ctor {
                CTOR_SIZE.store(size as usize, Ordering::Relaxed);
            }
            let cache = if magazines {
                Cache::create(server, &name, size, 0, 0, ctor_fn)?
            } else {
                Cache::create_without_magazines(server, &name, size, 0, 0, ctor_fn)?
            };
            caches.push(cache);
        }
        Ok(MemserverCaches { session: server, caches, magazines, with_ctor, kmalloc_ipcs: AtomicU64::new(0) })
    }

    /// Returns the magazines, checks that no object is left allocated (a lost object), and
    /// destroys the caches; then flushes the kmalloc magazines and checks that no kmalloc
    /// object is left allocated. Returns a description of each problem found.
    pub fn finish(self) -> Vec<String> {
        let mut problems = Vec::new();
        let session = self.session;
        for cache in self.caches {
            let name = format!("cache {:?}", cache.id());
            if let Err(e) = cache.flush() {
                problems.push(format!("{name}: flush failed: {e}"));
            }
            if let Err((_, e)) = cache.destroy() {
                // CacheBusy { live }: objects the run believes freed are still allocated.
                problems.push(format!("{name}: destroy failed ({e}): objects lost"));
            }
        }
        if let Err(e) = session.kmalloc_flush() {
            problems.push(format!("kmalloc flush failed: {e}"));
        }
        match session.stats() {
            Ok(s) if s.live_objects > 0 => {
                problems.push(format!("kmalloc: {} objects still allocated: objects lost", s.live_objects))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("stats failed: {e}")),
        }
        problems
    }

    /// `kmalloc`s and `kfree`s made by IPC without magazines: misses the library did not
    /// count (it counts those of its own `kmalloc`).
    pub fn uncounted_kmalloc_misses(&self) -> u64 {
        self.kmalloc_ipcs.load(Ordering::Relaxed)
    }

    /// `kmalloc` as the library has it (inline, as the baselines' `malloc` is a direct call),
    /// or by IPC without magazines.
    #[inline]
    fn kmalloc(&self, size: usize) -> Option<NonNull<u8>> {
        if self.magazines {
            return self.session.kmalloc(size).ok();
        }
        self.kmalloc_by_ipc(size)
    }

    #[inline(never)]
    fn kmalloc_by_ipc(&self, size: usize) -> Option<NonNull<u8>> {
        self.kmalloc_ipcs.fetch_add(1, Ordering::Relaxed);
        let object = self.session.ipc(|api| api.kmalloc(u32::try_from(size).unwrap_or(u32::MAX))).ok()?;
        self.session.window().ptr(object.handle, size)
    }

    /// `kfree`, as [`MemserverCaches::kmalloc`].
    #[inline]
    fn kfree(&self, object: NonNull<u8>) -> bool {
        if self.magazines {
            return self.session.kfree(object).is_ok();
        }
        self.kfree_by_ipc(object)
    }

    #[inline(never)]
    fn kfree_by_ipc(&self, object: NonNull<u8>) -> bool {
        self.kmalloc_ipcs.fetch_add(1, Ordering::Relaxed);
        self.session.window().handle(object).is_some_and(|h| self.session.ipc(|api| api.kfree(h)).is_ok())
    }
}

/// One client's session with the server over the host transport.
pub type Session = memclient::Memserver<Connection>;

impl Backend for MemserverCaches<'_> {
    fn constructs(&self) -> bool {
        self.with_ctor
    }

    #[inline]
    fn alloc(&self, class: usize, size: usize) -> Option<NonNull<u8>> {
        if class == usize::from(KMALLOC) {
            return self.kmalloc(size);
        }
        self.caches.get(class)?.alloc().ok()
    }

    #[inline]
    unsafe fn free(&self, class: usize, _size: usize, object: NonNull<u8>) -> bool {
        if class == usize::from(KMALLOC) {
            return self.kfree(object);
        }
        self.caches.get(class).is_some_and(|c| c.free(object).is_ok())
    }
}

//! [`GlobalKmalloc`]: a `core::alloc::GlobalAlloc` over the session's `kmalloc`/`kfree`, so a
//! program's `Box`, `Vec`, `String` and `HashMap` come from the memserver.
//!
//! # Design
//! The allocator asks a [`SessionSource`] for the session on every allocation. While there is
//! none (it is being made, or could not be made), the allocation is served by a *bootstrap*
//! allocator instead (`std::alloc::System` on Linux; on seL4, one that returns null). That is
//! what lets the session be made lazily from inside the allocator: connecting allocates, and
//! those allocations go to the bootstrap allocator rather than back into the connection.
//! `dealloc` tells the two kinds of pointer apart by address: a pointer inside the client's
//! window is a memserver object (`kfree`), any other goes back to the bootstrap allocator.
//!
//! Sizes and alignment: each allocation is one `kmalloc` of the layout's size (served by the
//! smallest kmalloc class that fits, or by whole pages above the largest class). kmalloc
//! objects are at least 8-byte aligned, and power-of-two sizes are naturally aligned (Linux's
//! rule, the memserver's too), so an alignment above 8 is served by asking for
//! `max(size, align)` rounded up to a power of two. The returned address is checked anyway:
//! one that is not aligned is freed and the allocation fails, so a broken rule is a null
//! (and Rust's allocation-error abort), never a misaligned object.
//!
//! Nothing here panics or allocates: a failure is a null pointer, as `GlobalAlloc` requires.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::server::Memserver;
use crate::transport::Transport;

/// Alignment every kmalloc object has whatever its size (objects are 8-byte aligned).
pub const KMALLOC_MIN_ALIGN: usize = 8;

/// Where a [`GlobalKmalloc`] finds its session.
pub trait SessionSource: Sync {
    /// The session's transport.
    type Transport: Transport;

    /// The session, made now if it was not and may be; `None` while none is available (being
    /// made, possibly by this very thread further up its stack, or failed). Must not wait for
    /// another thread, and must tolerate being re-entered through the allocator.
    fn session(&self) -> Option<&Memserver<Self::Transport>>;

    /// The session if it exists already. Never makes one, never waits, never allocates.
    fn ready(&self) -> Option<&Memserver<Self::Transport>>;
}

/// A global allocator over kmalloc. `S` gives the session, `B` serves what the memserver
/// cannot while there is no session (see the module documentation).
pub struct GlobalKmalloc<S, B> {
    source: S,
    bootstrap: B,
    served_allocations: AtomicU64,
    served_frees: AtomicU64,
    bootstrap_allocations: AtomicU64,
    failed_frees: AtomicU64,
}

/// What a [`GlobalKmalloc`] counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalKmallocCounters {
    /// Allocations the memserver served (kmalloc objects handed out; a `realloc` that moves
    /// counts one).
    pub served_allocations: u64,
    /// Of those, the ones given back (`kfree` accepted).
    pub served_frees: u64,
    /// Allocations served by the bootstrap allocator (no session at the time).
    pub bootstrap_allocations: u64,
    /// `kfree`s the server refused or that could not be sent (the object is lost to this
    /// process; nothing else can be done from inside `dealloc`).
    pub failed_frees: u64,
}

impl<S, B> GlobalKmalloc<S, B> {
    /// An allocator taking its session from `source`, and `bootstrap` while there is none.
    pub const fn with_source(source: S, bootstrap: B) -> Self {
        GlobalKmalloc {
            source,
            bootstrap,
            served_allocations: AtomicU64::new(0),
            served_frees: AtomicU64::new(0),
            bootstrap_allocations: AtomicU64::new(0),
            failed_frees: AtomicU64::new(0),
        }
    }

    /// The session source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// What it counted so far.
    pub fn counters(&self) -> GlobalKmallocCounters {
        GlobalKmallocCounters {
            served_allocations: self.served_allocations.load(Relaxed),
            served_frees: self.served_frees.load(Relaxed),
            bootstrap_allocations: self.bootstrap_allocations.load(Relaxed),
            failed_frees: self.failed_frees.load(Relaxed),
        }
    }
}

/// The kmalloc size that gives `layout` its alignment: the size itself up to 8-byte
/// alignment, else `max(size, align)` rounded up to a power of two (naturally aligned).
pub fn kmalloc_request_size(layout: Layout) -> Option<usize> {
    let size = if layout.align() <= KMALLOC_MIN_ALIGN {
        layout.size()
    } else {
        layout.size().max(layout.align()).checked_next_power_of_two()?
    };
    (size <= crate::kmalloc::KMALLOC_MAX_SIZE).then_some(size)
}

/// One kmalloc for `layout`, its address checked against the alignment.
fn kmalloc_aligned<T: Transport>(session: &Memserver<T>, layout: Layout) -> Option<NonNull<u8>> {
    let object = session.kmalloc(kmalloc_request_size(layout)?).ok()?;
    if object.as_ptr().addr() & (layout.align() - 1) != 0 {
        let _ = session.kfree(object);
        return None;
    }
    Some(object)
}

impl<S: SessionSource, B: GlobalAlloc> GlobalKmalloc<S, B> {
    /// One kmalloc for `layout` from `session`, counted.
    fn serve(&self, session: &Memserver<S::Transport>, layout: Layout) -> Option<NonNull<u8>> {
        let object = kmalloc_aligned(session, layout)?;
        self.served_allocations.fetch_add(1, Relaxed);
        Some(object)
    }

    /// The session if `ptr` is one of its objects.
    fn owner_of(&self, ptr: *mut u8) -> Option<(&Memserver<S::Transport>, NonNull<u8>)> {
        let session = self.source.ready()?;
        let ptr = NonNull::new(ptr)?;
        session.window().handle(ptr).map(|_| (session, ptr))
    }
}

// SAFETY: `alloc` returns either null, a kmalloc object of at least `kmalloc_request_size`
// bytes (≥ `layout.size()`) whose address was checked against `layout.align()` and which no
// one else owns until it is kfreed, or what the bootstrap allocator returned for `layout`.
// `dealloc` sends each pointer back to where it came from: window addresses are only ever
// produced by kmalloc, and the bootstrap allocator never returns one (the window is a mapping
// of this process that no other allocator hands out).
unsafe impl<S: SessionSource, B: GlobalAlloc> GlobalAlloc for GlobalKmalloc<S, B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.source.session() {
            Some(session) => self.serve(session, layout).map_or(ptr::null_mut(), NonNull::as_ptr),
            None => {
                self.bootstrap_allocations.fetch_add(1, Relaxed);
                // SAFETY: the caller's guarantees for `layout` (non-zero size) pass through.
                unsafe { self.bootstrap.alloc(layout) }
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.source.session() {
            Some(session) => match self.serve(session, layout) {
                Some(object) => {
                    // SAFETY: a fresh object of at least `layout.size()` bytes, owned here.
                    unsafe { object.as_ptr().write_bytes(0, layout.size()) };
                    object.as_ptr()
                }
                None => ptr::null_mut(),
            },
            None => {
                self.bootstrap_allocations.fetch_add(1, Relaxed);
                // SAFETY: as in `alloc`.
                unsafe { self.bootstrap.alloc_zeroed(layout) }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.owner_of(ptr) {
            Some((session, object)) => {
                let counter = if session.kfree(object).is_ok() { &self.served_frees } else { &self.failed_frees };
                counter.fetch_add(1, Relaxed);
            }
            // SAFETY: not a window address, so `alloc` got it from the bootstrap allocator
            // with this `layout` (the caller's guarantee).
            None => unsafe { self.bootstrap.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A kmalloc object keeps its size: shrinking is free (kfree needs no size).
        if new_size <= layout.size() && self.owner_of(ptr).is_some() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow isize, so this is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (the caller's guarantee).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and distinct
            // (the old one is still allocated); the old one is freed once, with its layout.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn alignment_up_to_8_asks_for_the_size_itself() {
        assert_eq!(kmalloc_request_size(layout(1, 1)), Some(1));
        assert_eq!(kmalloc_request_size(layout(54, 8)), Some(54));
        assert_eq!(kmalloc_request_size(layout(4097, 4)), Some(4097));
    }

    #[test]
    fn larger_alignment_asks_for_a_naturally_aligned_power_of_two() {
        assert_eq!(kmalloc_request_size(layout(24, 16)), Some(32));
        assert_eq!(kmalloc_request_size(layout(8, 64)), Some(64));
        assert_eq!(kmalloc_request_size(layout(100, 64)), Some(128));
        assert_eq!(kmalloc_request_size(layout(5000, 4096)), Some(8192));
    }

    #[test]
    fn sizes_beyond_kmalloc_max_size_are_refused() {
        assert_eq!(kmalloc_request_size(layout(1 << 33, 8)), None);
        assert_eq!(kmalloc_request_size(layout((1 << 22) + 1, 16)), None);
        assert_eq!(kmalloc_request_size(layout(1 << 22, 16)), Some(1 << 22));
    }
}

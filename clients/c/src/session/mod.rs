//! The process's session, and what the C API keeps beside it: the size of the objects it
//! handed out, per window page, for `ksize()` and `krealloc()` (the server replies with a
//! handle, not a size).
//!
//! Where the session comes from is the one platform-specific part of the crate: on Linux
//! ([`host`], feature `std`) it is made on first use from the environment or by
//! `memclient_connect()`; without `std` ([`installed`]: seL4) the platform installs it before
//! any C code runs. Everything else names only [`SessionTransport`] and [`state`].

use alloc::boxed::Box;
use core::ffi::{CStr, c_char, c_int};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use memclient::Memserver;
use protocol::PAGE_SIZE;

use crate::error::{self, errno};

#[cfg(feature = "std")]
mod host;
#[cfg(feature = "std")]
use host as platform;
#[cfg(feature = "std")]
pub use host::{SessionError, SessionTransport};

#[cfg(not(feature = "std"))]
mod installed;
#[cfg(not(feature = "std"))]
use installed as platform;
#[cfg(not(feature = "std"))]
pub use installed::{BoxedTransport, SessionError, SessionTransport, install};

pub(crate) use platform::errno_of;

static STATE: spin::Once<State> = spin::Once::new();

/// The session and the object sizes.
pub struct State {
    /// The session.
    pub server: &'static Memserver<SessionTransport>,
    /// Usable size of the objects that start in each window page (0: none handed out).
    /// Every object starting in one page belongs to the same slab, so to the same cache; a
    /// page's entry changes only when the page is handed out again, in another slab or in a
    /// large kmalloc, after all its objects were freed.
    sizes: Box<[AtomicU32]>,
}

impl State {
    fn new(server: &'static Memserver<SessionTransport>) -> State {
        let pages = server.window().len().div_ceil(PAGE_SIZE);
        State { server, sizes: (0..pages).map(|_| AtomicU32::new(0)).collect() }
    }

    /// The entry of the page where `object` starts.
    fn entry(&self, object: NonNull<u8>) -> Option<&AtomicU32> {
        let handle = self.server.window().handle(object)?;
        self.sizes.get(usize::try_from(handle.0).ok()? / PAGE_SIZE)
    }

    /// Records that `object`, handed out now, has `size` usable bytes.
    pub fn record_size(&self, object: NonNull<u8>, size: u32) {
        if let Some(entry) = self.entry(object) {
            entry.store(size, Relaxed);
        }
    }

    /// The usable size of `object` (an object this library handed out), if known.
    pub fn size_of(&self, object: NonNull<u8>) -> Option<u32> {
        self.entry(object).map(|e| e.load(Relaxed)).filter(|&s| s > 0)
    }
}

/// The session if it exists already (a pointer can be one of its objects only then).
pub fn ready_state() -> Option<&'static State> {
    STATE.get()
}

/// The session, made now if need be; on failure, the calling thread's error is set (`what`
/// names the C call) and `None` comes back.
pub fn state(what: &str) -> Option<&'static State> {
    if let Some(state) = STATE.get() {
        return Some(state);
    }
    match platform::get() {
        Ok(server) => Some(STATE.call_once(|| State::new(server))),
        Err(e) => {
            error::set_session(what, &e);
            None
        }
    }
}

/// Connects to the memserver at `socket` as the client task `client` (a `[[client]]` of its
/// `system.toml`), instead of waiting for the first call to connect from `MEMSERVER_SOCKET`
/// and `MEMSERVER_CLIENT`. Returns 0, or a negative errno value (`-EISCONN` if this process is
/// already connected; a failed attempt, even the automatic one, may be retried). On seL4 the
/// task's runtime connects before `main`: `-EISCONN` (or `-EOPNOTSUPP` without a session).
///
/// # Safety
/// `socket` and `client` are NUL-terminated strings (or NULL, refused with `-EINVAL`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memclient_connect(socket: *const c_char, client: *const c_char) -> c_int {
    const WHAT: &str = "memclient_connect";
    if socket.is_null() || client.is_null() {
        error::set(errno::EINVAL, format_args!("{WHAT}: NULL socket or client name"));
        return -errno::EINVAL;
    }
    // SAFETY: both are non-null NUL-terminated strings (the caller's guarantee).
    let (socket, client) = unsafe { (CStr::from_ptr(socket), CStr::from_ptr(client)) };
    let (Ok(socket), Ok(client)) = (socket.to_str(), client.to_str()) else {
        error::set(errno::EINVAL, format_args!("{WHAT}: socket or client name is not UTF-8"));
        return -errno::EINVAL;
    };
    match platform::connect(socket, client) {
        Ok(server) => {
            STATE.call_once(|| State::new(server));
            0
        }
        Err(e) => {
            error::set_session(WHAT, &e);
            -error::memclient_last_error()
        }
    }
}

/// What the server counts for this client (`Stats`), for `memclient_stats()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(non_camel_case_types)]
pub struct memclient_stats {
    /// Requests this client sent (every IPC).
    pub requests: u64,
    /// Objects handed out by IPC (`Alloc`, `Zalloc`, `Kmalloc`); magazine refills not included.
    pub allocs: u64,
    /// Objects taken back by IPC (`Free`, `Kfree`).
    pub frees: u64,
    /// Objects allocated to this client, those parked in its magazines included.
    pub live_objects: u64,
    /// Of `live_objects`, those in magazines.
    pub magazine_objects: u64,
    /// Allocations served from a magazine without IPC.
    pub alloc_hits: u64,
    /// Frees absorbed by a magazine without IPC.
    pub free_hits: u64,
    /// Allocations and frees that needed an IPC.
    pub magazine_misses: u64,
    /// Pages this client holds.
    pub pages: u32,
    /// Its quota, in pages.
    pub quota_pages: u32,
}

/// Fills `*out` with the server's counters for this client. Returns 0, or a negative errno
/// value.
///
/// # Safety
/// `out` is NULL (refused with `-EINVAL`) or points to a writable `struct memclient_stats`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memclient_stats(out: *mut memclient_stats) -> c_int {
    const WHAT: &str = "memclient_stats";
    if out.is_null() {
        error::set(errno::EINVAL, format_args!("{WHAT}: NULL"));
        return -errno::EINVAL;
    }
    let Some(state) = state(WHAT) else { return -error::memclient_last_error() };
    match state.server.stats() {
        Ok(s) => {
            let stats = memclient_stats {
                requests: s.requests,
                allocs: s.allocs,
                frees: s.frees,
                live_objects: s.live_objects,
                magazine_objects: s.magazine_objects,
                alloc_hits: s.alloc_hits,
                free_hits: s.free_hits,
                magazine_misses: s.magazine_misses,
                pages: s.client_pages,
                quota_pages: s.quota_pages,
            };
            // SAFETY: `out` points to a writable memclient_stats (the caller's guarantee).
            unsafe { out.write(stats) };
            0
        }
        Err(e) => {
            error::set_error(WHAT, &e);
            -error::code_of(&e)
        }
    }
}

//! The process's session. (`ksize()` and `krealloc()` need nothing kept beside it: the
//! server's page-owner and cache tables in the control region say which cache an object
//! belongs to.)
//!
//! Where the session comes from is the one platform-specific part of the crate: on Linux
//! ([`host`], feature `std`) it is made on first use from the environment or by
//! `memclient_connect()`; without `std` ([`installed`]: seL4) the platform installs it before
//! any C code runs. Everything else names only [`SessionTransport`] and [`state`].

use core::ffi::{CStr, c_char, c_int};

use memclient::Memserver;

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

/// The session.
pub struct State {
    /// The session.
    pub server: &'static Memserver<SessionTransport>,
}

impl State {
    fn new(server: &'static Memserver<SessionTransport>) -> State {
        State { server }
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

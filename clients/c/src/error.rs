//! The `errno`-like report of the last failure of the calling thread:
//! `memclient_last_error()` (a Linux errno value) and `memclient_last_error_message()`.
//!
//! As with `errno`, a successful call does not clear it: read it right after a call returned
//! `NULL` (or after a `void` call you suspect). On Linux it is per thread; without `std` (seL4
//! C tasks, which have one thread) per process.

use alloc::ffi::CString;
use alloc::string::ToString;
use core::ffi::{c_char, c_int};

use memclient::Error;
use memclient::TransportError;

use crate::session::{self, SessionError};

/// Linux errno values (the same numbers on x86_64 and aarch64). Crate-private: C code has
/// them from `<errno.h>`.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
pub(crate) mod errno {
    use core::ffi::c_int;
    pub(crate) const EPERM: c_int = 1;
    pub(crate) const ENOENT: c_int = 2;
    pub(crate) const EIO: c_int = 5;
    pub(crate) const EAGAIN: c_int = 11;
    pub(crate) const ENOMEM: c_int = 12;
    pub(crate) const EFAULT: c_int = 14;
    pub(crate) const EBUSY: c_int = 16;
    pub(crate) const EEXIST: c_int = 17;
    pub(crate) const EINVAL: c_int = 22;
    pub(crate) const ENOSPC: c_int = 28;
    pub(crate) const EPROTO: c_int = 71;
    pub(crate) const EOVERFLOW: c_int = 75;
    pub(crate) const EOPNOTSUPP: c_int = 95;
    pub(crate) const EISCONN: c_int = 106;
    pub(crate) const ENOTCONN: c_int = 107;
}

/// The last failure: its errno value and its message.
type Last = (c_int, CString);

#[cfg(feature = "std")]
std::thread_local! {
    static LAST: core::cell::RefCell<Last> = core::cell::RefCell::new((0, CString::default()));
}

/// Runs `f` on the calling thread's last failure.
#[cfg(feature = "std")]
fn with_last<R>(f: impl FnOnce(&mut Last) -> R) -> R {
    LAST.with(|last| f(&mut last.borrow_mut()))
}

/// The process's last failure (`None`: none yet).
#[cfg(not(feature = "std"))]
static LAST: spin::Mutex<Option<Last>> = spin::Mutex::new(None);

/// Runs `f` on the process's last failure.
#[cfg(not(feature = "std"))]
fn with_last<R>(f: impl FnOnce(&mut Last) -> R) -> R {
    f(LAST.lock().get_or_insert_with(|| (0, CString::default())))
}

/// Records a failure of the calling thread: `code` (an errno value) and what happened.
pub fn set(code: c_int, message: impl core::fmt::Display) {
    let text = message.to_string().replace('\0', " ");
    let text = CString::new(text).unwrap_or_default();
    with_last(|last| *last = (code, text));
}

/// Records `error`, from the call `what` (a C function name, for the message).
pub fn set_error(what: &str, error: &Error) {
    set(code_of(error), format_args!("{what}: {error}"));
}

/// Records a failure to get the session.
pub fn set_session(what: &str, error: &SessionError) {
    set(session::errno_of(error), format_args!("{what}: {error}"));
}

/// The errno value closest to `error`.
pub fn code_of(error: &Error) -> c_int {
    use protocol::Error as E;
    match error {
        Error::Server(e) => match e {
            E::InvalidArgument | E::WrongCache => errno::EINVAL,
            E::NameTaken => errno::EEXIST,
            E::NoSuchCache => errno::ENOENT,
            E::OutOfMemory | E::QuotaExceeded => errno::ENOMEM,
            E::InvalidObject | E::DoubleFree | E::PoisonCorrupted(_) | E::RedZoneCorrupted(_) => errno::EFAULT,
            E::CacheBusy { .. } => errno::EBUSY,
            E::Malformed | E::VersionMismatch { .. } => errno::EPROTO,
            E::NotSupported => errno::EOPNOTSUPP,
            E::PermissionDenied => errno::EPERM,
            E::Internal => errno::EIO,
        },
        Error::Transport(TransportError::Disconnected) => errno::ENOTCONN,
        Error::Transport(TransportError::Os(code)) if *code > 0 => *code,
        Error::Transport(_) | Error::UnexpectedReply | Error::Encode => errno::EPROTO,
        Error::NotInWindow => errno::EFAULT,
    }
}

/// The errno value of the calling thread's last failed call (0 if none failed yet).
#[unsafe(no_mangle)]
pub extern "C" fn memclient_last_error() -> c_int {
    with_last(|last| last.0)
}

/// A message describing the calling thread's last failed call ("" if none failed yet). Valid
/// until the thread's next failed call; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn memclient_last_error_message() -> *const c_char {
    // The CString's bytes stay where they are until the next failure replaces it.
    with_last(|last| last.1.as_ptr())
}

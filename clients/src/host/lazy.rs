//! [`LazySession`]: a process-wide session made on first use, from the environment
//! (`MEMSERVER_SOCKET`, `MEMSERVER_CLIENT`) or from a fixed target, for code that has no
//! place to call `connect` first: a `#[global_allocator]` and the C API.
//!
//! Connecting allocates (paths, the reply buffer), and a global allocator that connects
//! must not call itself while it does. So the session is a small state machine, and a caller
//! that finds it *connecting* is told so at once ([`LazySession::try_get`]) instead of
//! waiting: the allocator then serves that allocation from its bootstrap allocator. Code that
//! can wait (the C API) uses [`LazySession::get`]. A failed attempt is remembered: later
//! calls report the same error without connecting again, until an explicit
//! [`LazySession::connect_to`].

use core::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::Error;
use crate::server::Memserver;
use crate::transport::TransportError;

use super::Connection;

/// Environment variable naming the server's socket.
pub const SOCKET_VARIABLE: &str = "MEMSERVER_SOCKET";
/// Environment variable naming this client task (a `[[client]]` of `system.toml`).
pub const CLIENT_VARIABLE: &str = "MEMSERVER_CLIENT";

const UNSET: u8 = 0;
const CONNECTING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// Where a [`LazySession`] connects on first use.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// `MEMSERVER_SOCKET` and `MEMSERVER_CLIENT`, read at the first use.
    Environment,
    /// A fixed socket path and client name.
    Fixed {
        /// The server's socket.
        socket: &'static str,
        /// The client task's name.
        client: &'static str,
    },
}

/// Why a [`LazySession`] has no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LazyError {
    /// Another thread (or this one, further up its stack) is connecting right now.
    Connecting,
    /// The environment variable is not set (or not UTF-8, for the client name).
    NotConfigured(&'static str),
    /// Connecting failed.
    Connect(Error),
    /// [`LazySession::connect_to`] on a session that is already connected.
    AlreadyConnected,
}

impl core::fmt::Display for LazyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LazyError::Connecting => f.write_str("the connection is being made"),
            LazyError::NotConfigured(variable) => write!(f, "{variable} is not set"),
            // The OS's words for an errno (formatting them allocates: in a global allocator
            // this runs while connecting, when allocations go to the bootstrap allocator).
            LazyError::Connect(Error::Transport(TransportError::Os(code))) if *code > 0 => {
                write!(f, "cannot connect to memserver: {}", std::io::Error::from_raw_os_error(*code))
            }
            LazyError::Connect(e) => write!(f, "cannot connect to memserver: {e}"),
            LazyError::AlreadyConnected => f.write_str("already connected"),
        }
    }
}

impl std::error::Error for LazyError {}

/// A session made on first use. `const`-constructible, so it can live in a `static`.
pub struct LazySession {
    target: Target,
    /// Appended to the one-line warning printed when the first attempt fails.
    on_failure: &'static str,
    state: AtomicU8,
    session: OnceLock<Memserver<Connection>>,
    failure: spin::Mutex<Option<LazyError>>,
}

impl LazySession {
    /// A session that connects to `target` on first use. When that fails, one line goes to
    /// stderr, naming the error and ending with `on_failure` (what the caller does instead).
    pub const fn new(target: Target, on_failure: &'static str) -> Self {
        LazySession {
            target,
            on_failure,
            state: AtomicU8::new(UNSET),
            session: OnceLock::new(),
            failure: spin::Mutex::new(None),
        }
    }

    /// The session if it is connected; never connects, never waits.
    #[inline]
    pub fn ready(&self) -> Option<&Memserver<Connection>> {
        self.session.get()
    }

    /// The session, connecting first if nobody has tried yet. Never waits: while a
    /// connection is being made (by any thread, including the caller's own allocation inside
    /// `connect`), the answer is [`LazyError::Connecting`].
    pub fn try_get(&self) -> Result<&Memserver<Connection>, LazyError> {
        if let Some(session) = self.session.get() {
            return Ok(session);
        }
        match self.state.compare_exchange(UNSET, CONNECTING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => self.connect_to_target(),
            Err(READY) => self.session.get().ok_or(LazyError::Connecting),
            Err(FAILED) => Err(self.failure.lock().unwrap_or(LazyError::Connecting)),
            Err(_) => Err(LazyError::Connecting),
        }
    }

    /// The session, connecting first if nobody has tried yet; waits (yielding the CPU) while
    /// another thread connects. Not for a global allocator (see [`LazySession::try_get`]).
    pub fn get(&self) -> Result<&Memserver<Connection>, LazyError> {
        loop {
            match self.try_get() {
                Err(LazyError::Connecting) => std::thread::yield_now(),
                other => return other,
            }
        }
    }

    /// Connects now to `socket` as `client`, unless connected already
    /// ([`LazyError::AlreadyConnected`]). Allowed after a failed first use; a failure here is
    /// returned, not printed.
    pub fn connect_to(&self, socket: &Path, client: &str) -> Result<&Memserver<Connection>, LazyError> {
        loop {
            let state = self.state.load(Ordering::Acquire);
            match state {
                READY => return Err(LazyError::AlreadyConnected),
                CONNECTING => std::thread::yield_now(),
                _ => {
                    if self.state.compare_exchange(state, CONNECTING, Ordering::Acquire, Ordering::Acquire).is_ok() {
                        return self.settle(super::connect(socket, client).map_err(LazyError::Connect));
                    }
                }
            }
        }
    }

    /// The first use's connection (by the thread that moved the state to CONNECTING).
    fn connect_to_target(&self) -> Result<&Memserver<Connection>, LazyError> {
        let result = match self.target {
            Target::Fixed { socket, client } => super::connect(Path::new(socket), client).map_err(LazyError::Connect),
            Target::Environment => connect_from_environment(),
        };
        if let Err(e) = &result {
            warn(e, self.target, self.on_failure);
        }
        self.settle(result)
    }

    /// Records the outcome of a connection attempt made by the thread that moved the state to
    /// CONNECTING (so the cell is empty, and `set` neither fails nor blocks).
    fn settle(&self, result: Result<Memserver<Connection>, LazyError>) -> Result<&Memserver<Connection>, LazyError> {
        match result {
            Ok(session) => {
                let _ = self.session.set(session);
                self.state.store(READY, Ordering::Release);
                self.session.get().ok_or(LazyError::Connecting)
            }
            Err(e) => {
                *self.failure.lock() = Some(e);
                self.state.store(FAILED, Ordering::Release);
                Err(e)
            }
        }
    }
}

/// `host::connect` with the target the environment names.
fn connect_from_environment() -> Result<Memserver<Connection>, LazyError> {
    let socket = std::env::var_os(SOCKET_VARIABLE).ok_or(LazyError::NotConfigured(SOCKET_VARIABLE))?;
    let client = std::env::var(CLIENT_VARIABLE).map_err(|_| LazyError::NotConfigured(CLIENT_VARIABLE))?;
    super::connect(Path::new(&socket), &client).map_err(LazyError::Connect)
}

/// One line on stderr, formatted on the stack and written with one `write(2)`: this runs
/// inside a global allocator, which must not allocate for its own messages.
fn warn(error: &LazyError, target: Target, on_failure: &str) {
    let mut line = StackLine::default();
    let _ = match target {
        Target::Fixed { socket, client } => {
            write!(line, "memclient: no memserver session (socket {socket}, client {client}): {error}")
        }
        Target::Environment => write!(line, "memclient: no memserver session: {error}"),
    };
    let _ = writeln!(line, "; {on_failure}");
    // Stderr is unbuffered: one write of the whole line, no allocation.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A line of at most 512 bytes (longer text is cut).
struct StackLine {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackLine {
    fn default() -> Self {
        StackLine { buf: [0; 512], len: 0 }
    }
}

impl StackLine {
    fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl core::fmt::Write for StackLine {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let free = self.buf.get_mut(self.len..).unwrap_or(&mut []);
        let n = text.len().min(free.len());
        free.get_mut(..n).unwrap_or(&mut []).copy_from_slice(text.as_bytes().get(..n).unwrap_or(&[]));
        self.len += n;
        Ok(())
    }
}

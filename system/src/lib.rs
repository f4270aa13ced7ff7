//! memserver-system: `system.toml`, the one description of a memserver system, parsed and validated.
//!
//! # Design
//! The host runner, the client tools and (at build time) the seL4 root task all read the same
//! file through this crate, so nothing about the pool, the client tasks or their quotas is
//! repeated in code. [`System::parse`] deserialises with `deny_unknown_fields` (a misspelt key is
//! an error, not a silent default), then [`validate`](System::validate) checks every limit and
//! names the offending key in its message (`client[1].quota_pages = 99999 exceeds
//! server.pool_pages = 16384`). A client's position in the `[[client]]` list is its
//! [`ClientId`]: the first client is 1, 0 is reserved for "no client". Every key, its unit and
//! its limits are documented in `docs/system.md`.

mod text;
mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use protocol::ClientId;
pub use text::SystemText;
pub use validate::limits;

/// Why a system description was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read system description {path}: {source}")]
    Io {
        /// The file named.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not TOML, or a key of the wrong type, or an unknown key (`deny_unknown_fields`).
    #[error("malformed system description: {0}")]
    Parse(String),
    /// Well-formed, but a value breaks a limit or a rule.
    #[error("invalid system description: {key} = {value} {reason}")]
    Invalid {
        /// The offending key, e.g. `client[1].quota_pages`.
        key: String,
        /// Its value as written.
        value: String,
        /// What is wrong with it, e.g. `exceeds server.pool_pages = 16384`.
        reason: String,
    },
}

impl ConfigError {
    /// The key an [`Invalid`](ConfigError::Invalid) error names (for tests and tools).
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// A validated system description.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// The memory server itself.
    pub server: Server,
    /// The client tasks, in [`ClientId`] order (the first is client 1).
    #[serde(rename = "client", default)]
    pub clients: Vec<Client>,
}

/// `[server]`: the pool, the socket, per-client limits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Frames in the pool, in 4 KiB pages.
    pub pool_pages: u32,
    /// Unix socket path of the host runner (relative to the current directory).
    pub socket: PathBuf,
    /// Caches one client may have at once.
    pub max_caches_per_client: u16,
    /// Slots in a client's control region: how many of its caches can use magazines.
    pub magazine_slots: u16,
    /// How long a new connection may stay silent before its `Hello`, in milliseconds.
    #[serde(default = "default_hello_timeout_ms")]
    pub hello_timeout_ms: u32,
    /// Default magazine capacities by object size.
    #[serde(default)]
    pub magazines: Magazines,
    /// Connections that have not said `Hello` yet the host runner keeps at once (their own
    /// pool, apart from the clients' connections).
    #[serde(default = "default_pending_connections")]
    pub pending_connections: u32,
    /// Permission bits of the host runner's socket file (`0o600`: only the server's uid may
    /// connect; `0o660` for a group of client uids).
    #[serde(default = "default_socket_mode")]
    pub socket_mode: u32,
    /// How long the host runner polls for requests instead of sleeping after serving a client
    /// on another CPU, in microseconds (0: it always sleeps).
    #[serde(default = "default_poll_us")]
    pub poll_us: u32,
    /// The identity of clients that name none of their own (`[server.identity]`).
    #[serde(default)]
    pub identity: Identity,
    /// How the host runner holds each client to the pages it granted (`[server.audit]`).
    #[serde(default)]
    pub audit: Audit,
}

fn default_hello_timeout_ms() -> u32 {
    2000
}

fn default_pending_connections() -> u32 {
    32
}

fn default_socket_mode() -> u32 {
    0o600
}

fn default_poll_us() -> u32 {
    50
}

/// Who may connect as a client task, as the kernel reports the peer of a host connection
/// (`SO_PEERCRED`, `/proc/PID/exe`). A key left out is not checked, except `uid`, which
/// defaults to the uid that runs the server. On seL4 the endpoint badge is the identity and
/// these keys do not apply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The effective uid the peer must have.
    pub uid: Option<u32>,
    /// The effective gid the peer must have.
    pub gid: Option<u32>,
    /// The executable the peer must run (an absolute path, compared with `/proc/PID/exe`).
    pub exe: Option<PathBuf>,
}

/// `[server.audit]`: the host runner's audit of client windows (docs/system.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// Every window is audited this often, in milliseconds (besides after each request batch).
    pub interval_ms: u32,
    /// Pages a client may keep resident beyond its grant without a violation.
    pub slack_pages: u32,
    /// Violations within `violation_window_ms` that get a client disconnected.
    pub violations_max: u32,
    /// The window of time violations are counted in, in milliseconds.
    pub violation_window_ms: u32,
}

impl Default for Audit {
    fn default() -> Self {
        Audit { interval_ms: 50, slack_pages: 32, violations_max: 3, violation_window_ms: 10_000 }
    }
}

/// `[server.magazines]`: default magazine capacity (objects per magazine) by object size,
/// after Bonwick & Adams 2001: small objects get big magazines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Magazines {
    /// Objects of at most 256 bytes.
    pub small: u8,
    /// Objects of at most 1 KiB.
    pub medium: u8,
    /// Objects of at most 4 KiB.
    pub large: u8,
    /// Larger objects.
    pub huge: u8,
}

impl Default for Magazines {
    fn default() -> Self {
        Magazines { small: 64, medium: 32, large: 16, huge: 8 }
    }
}

impl Magazines {
    /// Largest size counted as `small`, in bytes.
    pub const SMALL_MAX: u32 = 256;
    /// Largest size counted as `medium`, in bytes.
    pub const MEDIUM_MAX: u32 = 1024;
    /// Largest size counted as `large`, in bytes.
    pub const LARGE_MAX: u32 = 4096;

    /// The magazine capacity for objects of `object_size` bytes.
    pub fn capacity_for(&self, object_size: u32) -> u8 {
        if object_size <= Self::SMALL_MAX {
            self.small
        } else if object_size <= Self::MEDIUM_MAX {
            self.medium
        } else if object_size <= Self::LARGE_MAX {
            self.large
        } else {
            self.huge
        }
    }
}

/// `[[client]]`: one client task.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Its name, presented in `Hello`: 1..=31 bytes of printable ASCII, unique.
    pub name: String,
    /// Frames it may hold at once, in 4 KiB pages.
    pub quota_pages: u32,
    /// Size of its window (the address space its objects live in), in 4 KiB pages.
    pub window_pages: u32,
    /// Whether it may read the statistics and slabinfo of every client (`memctl`).
    #[serde(default)]
    pub introspect: bool,
    /// The seL4 program image this client runs as (`make qemu`): each such client is its own
    /// seL4 task (one VSpace, one badged endpoint); an image may be loaded several times.
    /// `None`: not started on seL4. The host runner ignores it.
    #[serde(default)]
    pub image: Option<String>,
    /// seL4: the client whose session serves this task's own heap (its `Box`, `Vec`,
    /// `String`: the task's `#[global_allocator]` is memclient's `GlobalKmalloc`). Another
    /// `[[client]]`, without an `image`, the heap of no other task; its window is reserved in
    /// this task's VSpace. Only for a client with an `image`. The host runner ignores it.
    #[serde(default)]
    pub heap: Option<String>,
    /// The effective uid its host connection must come from (default: `server.identity`).
    #[serde(default)]
    pub uid: Option<u32>,
    /// The effective gid its host connection must come from (default: `server.identity`).
    #[serde(default)]
    pub gid: Option<u32>,
    /// The executable its host connection must come from (default: `server.identity`).
    #[serde(default)]
    pub exe: Option<PathBuf>,
    /// Linux's `slub_debug` boot parameter for this client's caches: debug flags for all of
    /// them (`"FZPU"`) or for the caches a name list picks (`"FZ,kmalloc-*"`); see
    /// `protocol::slub_debug`. Applied to its kmalloc caches when it is admitted and to the
    /// caches it creates. Default: none.
    #[serde(default)]
    pub slub_debug: Option<String>,
}

impl Client {
    /// Its checked `slub_debug` setting (`SlubDebug::NONE` without one; `validate` refuses a
    /// file whose setting does not parse, so the fallback never hides one).
    pub fn slub_debug(&self) -> protocol::slub_debug::SlubDebug {
        self.slub_debug
            .as_deref()
            .and_then(|spec| protocol::slub_debug::SlubDebug::parse(spec).ok())
            .unwrap_or_default()
    }

    /// Window size in bytes.
    pub fn window_bytes(&self) -> u64 {
        u64::from(self.window_pages) * protocol::PAGE_SIZE as u64
    }

    /// Its identity: each key of its own, else the server's default (`server.identity`).
    pub fn identity(&self, server: &Server) -> Identity {
        let d = &server.identity;
        Identity { uid: self.uid.or(d.uid), gid: self.gid.or(d.gid), exe: self.exe.clone().or_else(|| d.exe.clone()) }
    }
}

impl System {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<System, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
        System::parse(&text)
    }

    /// Parses and validates a system description held in memory.
    pub fn parse(text: &str) -> Result<System, ConfigError> {
        let system: System = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        system.validate()?;
        Ok(system)
    }

    /// The client task with this id, if any.
    pub fn client(&self, id: ClientId) -> Option<&Client> {
        let index = usize::from(id).checked_sub(1)?;
        self.clients.get(index)
    }

    /// The client task with this name and its id, if any.
    pub fn client_by_name(&self, name: &str) -> Option<(ClientId, &Client)> {
        self.clients().find(|(_, c)| c.name == name)
    }

    /// Every client task with its id, in id order.
    pub fn clients(&self) -> impl Iterator<Item = (ClientId, &Client)> {
        // validate() bounds the list to limits::CLIENTS_MAX, so the ids fit in u16.
        (1..=ClientId::MAX).zip(self.clients.iter())
    }

    /// The socket path: `override_path` if given (`--socket`), else `server.socket`.
    pub fn socket_path(&self, override_path: Option<&Path>) -> PathBuf {
        override_path.map_or_else(|| self.server.socket.clone(), Path::to_owned)
    }
}

#[cfg(test)]
mod tests;

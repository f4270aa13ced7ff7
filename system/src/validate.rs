//! The rules a parsed `system.toml` must follow; each failure names its key.

use std::collections::HashMap;
use std::fmt::Display;

use crate::{ConfigError, System};

/// The limits `validate` enforces (documented in `docs/system.md`).
pub mod limits {
    /// Largest pool: 2^24 pages of 4 KiB = 64 GiB.
    pub const POOL_PAGES_MAX: u32 = 1 << 24;
    /// Largest client window: 2^24 pages of 4 KiB = 64 GiB of address space.
    pub const WINDOW_PAGES_MAX: u32 = 1 << 24;
    /// Most caches one client may have.
    pub const CACHES_PER_CLIENT_MAX: u16 = 1024;
    /// Largest magazine capacity (the control-region layout has room for 64 handles).
    pub const MAGAZINE_CAPACITY_MAX: u8 = 64;
    /// Longest client name, in bytes.
    pub const CLIENT_NAME_MAX: usize = 31;
    /// Most client tasks (ids 1..=this; 0 is reserved).
    pub const CLIENTS_MAX: usize = 4096;
    /// Longest `hello_timeout_ms`: ten minutes.
    pub const HELLO_TIMEOUT_MS_MAX: u32 = 600_000;
    /// Most connections waiting for their `Hello` at once.
    pub const PENDING_CONNECTIONS_MAX: u32 = 1024;
    /// Longest polling after a request: 10 ms (the runner spins on one CPU meanwhile).
    pub const POLL_US_MAX: u32 = 10_000;
    /// Longest audit period and violation window: one hour.
    pub const AUDIT_MS_MAX: u32 = 3_600_000;
    /// Most violations before a disconnect.
    pub const VIOLATIONS_MAX: u32 = 1000;
}

fn invalid(key: impl Into<String>, value: impl Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), value: value.to_string(), reason: reason.into() }
}

fn in_range<T: PartialOrd + Display + Copy>(key: &str, value: T, min: T, max: T) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, value, format!("is outside {min}..={max}")));
    }
    Ok(())
}

impl System {
    /// Checks every limit and rule; the error names the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use limits::*;
        let s = &self.server;
        in_range("server.pool_pages", s.pool_pages, 1, POOL_PAGES_MAX)?;
        if s.socket.as_os_str().is_empty() {
            return Err(invalid("server.socket", "\"\"", "must name a path"));
        }
        in_range("server.max_caches_per_client", s.max_caches_per_client, 1, CACHES_PER_CLIENT_MAX)?;
        in_range("server.magazine_slots", s.magazine_slots, 0, protocol::control::SLOTS_MAX)?;
        in_range("server.magazine_slots", s.magazine_slots, 0, s.max_caches_per_client).map_err(|_| {
            invalid(
                "server.magazine_slots",
                s.magazine_slots,
                format!("exceeds server.max_caches_per_client = {}", s.max_caches_per_client),
            )
        })?;
        in_range("server.hello_timeout_ms", s.hello_timeout_ms, 1, HELLO_TIMEOUT_MS_MAX)?;
        in_range("server.pending_connections", s.pending_connections, 1, PENDING_CONNECTIONS_MAX)?;
        in_range("server.poll_us", s.poll_us, 0, POLL_US_MAX)?;
        if s.socket_mode & !0o777 != 0 || s.socket_mode & 0o600 != 0o600 {
            return Err(invalid(
                "server.socket_mode",
                format!("{:#o}", s.socket_mode),
                "must be permission bits (at most 0o777) that include 0o600 (the server's own uid)",
            ));
        }
        check_identity("server.identity", &s.identity.exe)?;
        let a = &s.audit;
        in_range("server.audit.interval_ms", a.interval_ms, 1, AUDIT_MS_MAX)?;
        in_range("server.audit.slack_pages", a.slack_pages, 0, WINDOW_PAGES_MAX)?;
        in_range("server.audit.violations_max", a.violations_max, 1, VIOLATIONS_MAX)?;
        in_range("server.audit.violation_window_ms", a.violation_window_ms, 1, AUDIT_MS_MAX)?;
        let m = &s.magazines;
        for (key, value) in [
            ("server.magazines.small", m.small),
            ("server.magazines.medium", m.medium),
            ("server.magazines.large", m.large),
            ("server.magazines.huge", m.huge),
        ] {
            in_range(key, value, 1, MAGAZINE_CAPACITY_MAX)?;
        }

        if self.clients.is_empty() {
            return Err(invalid("client", "[]", "must list at least one client task"));
        }
        if self.clients.len() > CLIENTS_MAX {
            return Err(invalid("client", self.clients.len(), format!("entries exceed the limit of {CLIENTS_MAX}")));
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            let key = |field: &str| format!("client[{i}].{field}");
            check_name(&key("name"), &c.name)?;
            if let Some(first) = names.insert(&c.name, i) {
                return Err(invalid(key("name"), format!("{:?}", c.name), format!("duplicates client[{first}].name")));
            }
            in_range(&key("quota_pages"), c.quota_pages, 1, u32::MAX)?;
            if c.quota_pages > s.pool_pages {
                return Err(invalid(
                    key("quota_pages"),
                    c.quota_pages,
                    format!("exceeds server.pool_pages = {}", s.pool_pages),
                ));
            }
            in_range(&key("window_pages"), c.window_pages, 1, WINDOW_PAGES_MAX)?;
            if c.window_pages < c.quota_pages {
                return Err(invalid(
                    key("window_pages"),
                    c.window_pages,
                    format!("is below client[{i}].quota_pages = {}", c.quota_pages),
                ));
            }
            if let Some(image) = &c.image {
                check_image(&key("image"), image)?;
            }
            if let Some(spec) = &c.slub_debug
                && let Err(e) = protocol::slub_debug::SlubDebug::parse(spec)
            {
                return Err(invalid(key("slub_debug"), format!("{spec:?}"), e.to_string()));
            }
            check_identity(&format!("client[{i}]"), &c.exe)?;
        }
        self.validate_heaps(&names)
    }

    /// `heap`: on a client with an `image`, naming another client that has no `image` and is
    /// the heap of no other task.
    fn validate_heaps(&self, names: &HashMap<&str, usize>) -> Result<(), ConfigError> {
        let mut heaps: HashMap<&str, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            let Some(heap) = &c.heap else { continue };
            let key = format!("client[{i}].heap");
            let quoted = format!("{heap:?}");
            if c.image.is_none() {
                return Err(invalid(key, quoted, format!("needs client[{i}].image (a heap serves an seL4 task)")));
            }
            let Some(&h) = names.get(heap.as_str()) else {
                return Err(invalid(key, quoted, "names no client"));
            };
            if h == i {
                return Err(invalid(key, quoted, "names the client itself"));
            }
            if self.clients.get(h).is_some_and(|hc| hc.image.is_some()) {
                return Err(invalid(
                    key,
                    quoted,
                    format!("names client[{h}], which runs as a task of its own (image)"),
                ));
            }
            if let Some(first) = heaps.insert(heap, i) {
                return Err(invalid(key, quoted, format!("is already client[{first}].heap")));
            }
        }
        Ok(())
    }
}

/// A client name: 1..=31 bytes of printable ASCII without spaces (it appears in `memctl`
/// output and in log lines).
fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let quoted = format!("{name:?}");
    if name.is_empty() || name.len() > limits::CLIENT_NAME_MAX {
        return Err(invalid(key, quoted, format!("must be 1..={} bytes long", limits::CLIENT_NAME_MAX)));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(key, quoted, "must be printable ASCII without spaces"));
    }
    Ok(())
}

/// An identity's `exe`: an absolute path (it is compared with the kernel's `/proc/PID/exe`).
fn check_identity(key: &str, exe: &Option<std::path::PathBuf>) -> Result<(), ConfigError> {
    match exe {
        Some(path) if !path.is_absolute() => {
            Err(invalid(format!("{key}.exe"), format!("{:?}", path.display().to_string()), "must be an absolute path"))
        }
        _ => Ok(()),
    }
}

/// An seL4 program image name: 1..=31 bytes of lower-case ASCII letters, digits and `-` (it
/// names a task crate of `qemu/`).
fn check_image(key: &str, image: &str) -> Result<(), ConfigError> {
    let quoted = format!("{image:?}");
    if image.is_empty() || image.len() > limits::CLIENT_NAME_MAX {
        return Err(invalid(key, quoted, format!("must be 1..={} bytes long", limits::CLIENT_NAME_MAX)));
    }
    if !image.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(invalid(key, quoted, "must be lower-case ASCII letters, digits and '-'"));
    }
    Ok(())
}

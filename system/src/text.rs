//! [`SystemText`]: a `system.toml` written by code, for the tests, benchmarks and tools that
//! start a server of their own.
//!
//! Each of them used to carry its own copy of the same twenty lines of TOML; they now say only
//! what differs (the pool, the clients and their quotas) and take the defaults for the rest:
//! socket `memserver.sock` in the server's directory, 32 caches per client, 32 magazine slots.

use std::fmt::{self, Display, Write as _};

/// A `system.toml` under construction: the `[server]` table, any extra server tables, then the
/// `[[client]]` tables in order (a client's position is its id). [`Display`] renders the TOML;
/// whether it is a valid system is [`System::parse`](crate::System::parse)'s to say.
#[derive(Clone, Debug)]
pub struct SystemText {
    /// The `[server]` keys and their TOML values, in order.
    server: Vec<(String, String)>,
    tables: String,
    clients: String,
}

impl SystemText {
    /// A server with `pool_pages` frames, a socket `memserver.sock`, 32 caches per client and
    /// 32 magazine slots; no clients yet.
    pub fn new(pool_pages: u32) -> Self {
        let text = Self { server: Vec::new(), tables: String::new(), clients: String::new() };
        text.server("pool_pages", pool_pages)
            .server("socket", "\"memserver.sock\"")
            .server("max_caches_per_client", 32)
            .server("magazine_slots", 32)
    }

    /// Sets a `[server]` key, replacing its value if it is set already. `value` is written as
    /// TOML: pass strings quoted (`"\"x.sock\""`).
    pub fn server(mut self, key: &str, value: impl Display) -> Self {
        let value = value.to_string();
        match self.server.iter_mut().find(|(k, _)| k == key) {
            Some((_, old)) => *old = value,
            None => self.server.push((key.to_owned(), value)),
        }
        self
    }

    /// Adds a server sub-table, e.g. `table("server.audit", &[("slack_pages", 8)])`.
    pub fn table(mut self, name: &str, keys: &[(&str, u64)]) -> Self {
        let _ = writeln!(self.tables, "\n[{name}]");
        for (key, value) in keys {
            let _ = writeln!(self.tables, "{key} = {value}");
        }
        self
    }

    /// Adds a client task `name` with a quota of `quota_pages` and a window of `window_pages`.
    pub fn client(mut self, name: &str, quota_pages: u32, window_pages: u32) -> Self {
        let _ = write!(
            self.clients,
            "\n[[client]]\nname = \"{name}\"\nquota_pages = {quota_pages}\nwindow_pages = {window_pages}\n"
        );
        self
    }

    /// Adds `count` clients `{prefix}-0` … `{prefix}-{count-1}` with the same quota and window.
    pub fn clients(self, prefix: &str, count: u32, quota_pages: u32, window_pages: u32) -> Self {
        (0..count).fold(self, |text, i| text.client(&format!("{prefix}-{i}"), quota_pages, window_pages))
    }

    /// Adds the introspecting client `name` (one page of quota and window, `introspect = true`),
    /// as `memctl` is in the shipped system.
    pub fn introspector(self, name: &str) -> Self {
        self.client(name, 1, 1).client_key("introspect", true)
    }

    /// Sets a key of the client added last (`value` written as TOML, strings quoted).
    pub fn client_key(mut self, key: &str, value: impl Display) -> Self {
        let _ = writeln!(self.clients, "{key} = {value}");
        self
    }
}

impl Display for SystemText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "[server]")?;
        for (key, value) in &self.server {
            writeln!(f, "{key} = {value}")?;
        }
        write!(f, "{}{}", self.tables, self.clients)
    }
}

impl From<SystemText> for String {
    fn from(text: SystemText) -> Self {
        text.to_string()
    }
}

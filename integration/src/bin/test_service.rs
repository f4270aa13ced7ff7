//! `test-service`: the real host runner (`memserver_host`) with a stand-in [`Service`] behind
//! it, for the runner's own tests (`tests/host_socket.rs`, `tests/host_runner.rs`). Takes the
//! same `--system` and `--socket` options as `memserver`. Messages are plain text:
//!
//! | message | reply |
//! | --- | --- |
//! | `hello NAME` (first message) | `welcome ID`, or `refused: ...` for an unknown/duplicate name |
//! | `retry` (before `hello`) | `try again`, and the connection goes on waiting for its `hello` |
//! | `peek OFFSET LEN` | LEN bytes of the window at OFFSET, or `out of range` |
//! | `poke OFFSET TEXT` | writes TEXT into the window: `ok` / `out of range` |
//! | `grant FIRST_PAGE COUNT` | grants the pages to the client (as the engine's `Platform::map` does; the runner's audit punches ungranted pages the client touches): `ok` / the error |
//! | `release FIRST_PAGE COUNT` | punches the pages out of the window and takes their grant back: `ok` / the error |
//! | `resident` | the window's resident pages, in decimal |
//! | `connected` | the ids of connected clients, comma-separated |
//! | `silent` | no reply at all |
//! | anything else | the same bytes back |

use std::collections::BTreeSet;

use std::path::PathBuf;
use std::process::ExitCode;

use memserver_host::memory::Windows;
use memserver_host::service::{Admission, Refusal, Service};
use memserver_system::System;
use protocol::ClientId;

fn main() -> ExitCode {
    let mut system_path = PathBuf::from("system.toml");
    let mut socket = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--system", Some(value)) => system_path = value.into(),
            ("--socket", Some(value)) => socket = Some(PathBuf::from(value)),
            _ => {
                eprintln!("usage: test-service [--system FILE] [--socket PATH]");
                return ExitCode::from(2);
            }
        }
    }
    let system = match System::load(&system_path) {
        Ok(system) => system,
        Err(e) => {
            eprintln!("memserver: {e}");
            return ExitCode::from(2);
        }
    };
    match memserver_host::serve(&system, socket.as_deref(), TestService::new(&system)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("memserver: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Control region size the test service asks for, in bytes.
pub const CONTROL_LEN: usize = 4096;

/// The echo service.
pub struct TestService<'a> {
    system: &'a System,
    connected: BTreeSet<ClientId>,
    windows: Windows,
}

impl<'a> TestService<'a> {
    /// A service admitting the clients of `system`.
    pub fn new(system: &'a System) -> Self {
        TestService { system, connected: BTreeSet::new(), windows: Windows::new() }
    }

    /// The clients the service believes connected.
    #[allow(dead_code)]
    pub fn connected(&self) -> &BTreeSet<ClientId> {
        &self.connected
    }
}

fn put(reply: &mut [u8], text: &[u8]) -> usize {
    let len = text.len().min(reply.len());
    reply[..len].copy_from_slice(&text[..len]);
    len
}

fn two_numbers(args: &str) -> Option<(u64, u64)> {
    let mut it = args.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) => Some((a, b)),
        _ => None,
    }
}

impl Service for TestService<'_> {
    fn admit(&mut self, hello: &[u8], reply: &mut [u8]) -> Admission {
        if hello == b"retry" {
            return Admission::Retry { reply_len: put(reply, b"try again") };
        }
        let name = std::str::from_utf8(hello).ok().and_then(|h| h.strip_prefix("hello "));
        let Some((client, _)) = name.and_then(|n| self.system.client_by_name(n)) else {
            return Admission::Refuse { reply_len: put(reply, b"refused: unknown client") };
        };
        if !self.connected.insert(client) {
            return Admission::Refuse { reply_len: put(reply, b"refused: already connected") };
        }
        let reply_len = put(reply, format!("welcome {client}").as_bytes());
        Admission::Admit { client, control_len: CONTROL_LEN, reply_len }
    }

    fn refusal(&mut self, why: Refusal, reply: &mut [u8]) -> usize {
        put(reply, format!("refused: {why:?}").as_bytes())
    }

    fn handle(&mut self, client: ClientId, request: &[u8], reply: &mut [u8]) -> usize {
        let memory = &mut self.windows;
        let text = std::str::from_utf8(request).unwrap_or("");
        let (command, args) = text.split_once(' ').unwrap_or((text, ""));
        match command {
            "peek" => match two_numbers(args) {
                Some((offset, len)) if len as usize <= reply.len() => {
                    let len = len as usize;
                    if memory.read(client, offset, &mut reply[..len]) { len } else { put(reply, b"out of range") }
                }
                _ => put(reply, b"bad arguments"),
            },
            "poke" => {
                let (offset, data) = args.split_once(' ').unwrap_or((args, ""));
                let ok = offset.parse().is_ok_and(|o| memory.write(client, o, data.as_bytes()));
                put(reply, if ok { b"ok" } else { b"out of range" })
            }
            "grant" => match two_numbers(args).map(|(first, count)| {
                let frames = vec![0u32; usize::try_from(count).unwrap_or(0)];
                memory.map(client, first, &frames)
            }) {
                Some(Ok(())) => put(reply, b"ok"),
                Some(Err(e)) => put(reply, e.to_string().as_bytes()),
                None => put(reply, b"bad arguments"),
            },
            "release" => match two_numbers(args).map(|(first, count)| memory.release(client, first, count)) {
                Some(Ok(())) => put(reply, b"ok"),
                Some(Err(e)) => put(reply, e.to_string().as_bytes()),
                None => put(reply, b"bad arguments"),
            },
            "resident" => match memory.resident_pages(client) {
                Ok(pages) => put(reply, pages.to_string().as_bytes()),
                Err(e) => put(reply, e.to_string().as_bytes()),
            },
            "connected" => {
                let ids: Vec<String> = self.connected.iter().map(ToString::to_string).collect();
                put(reply, ids.join(",").as_bytes())
            }
            "silent" => 0,
            _ => put(reply, request),
        }
    }

    fn memory(&mut self) -> &mut Windows {
        &mut self.windows
    }

    fn disconnected(&mut self, client: ClientId) {
        self.connected.remove(&client);
    }
}

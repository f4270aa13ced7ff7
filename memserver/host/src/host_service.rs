//! The real [`Service`]: the no_std dispatch and engine over the runner's memfd windows.
//!
//! The engine's [`Platform`] and the dispatch's [`ControlAccess`] are implemented by
//! [`HostPlatform`] over [`Windows`]; every copy into or out of client memory is a bounds-
//! checked copy there (never a reference into shared memory). Admission decodes the `Hello`
//! once to find the client task by name; the dispatch then answers that same `Hello` after the
//! runner has created the client's memory.

use memserver_dispatch::{
    ClientSpec, ControlAccess, InternalError, MagazineSizes, Server, ServerConfig, Session, WindowUsage,
};
use memserver_engine::{Engine, EngineConfig, EngineStorage, Platform};
use memserver_system::System;
use protocol::control::ControlMemory;
use protocol::{ClientId, Error, PAGE_SIZE, PROTOCOL_VERSION, Reply, Request};

use crate::log::{self, Source};
use crate::memory::{PrivateFrames, Windows};
use crate::service::{Admission, Refusal, Service};

/// The client memory of the host, as the engine and the dispatch see it.
pub struct HostPlatform {
    windows: Windows,
    /// The engine's private frames (server memory, never shared).
    private: PrivateFrames,
    /// The client whose control region [`ControlAccess::control`] handed out last; the
    /// platform itself is that region's [`ControlMemory`].
    control_client: ClientId,
}

impl ControlMemory for HostPlatform {
    fn len(&self) -> usize {
        self.windows.control_len(self.control_client).unwrap_or(0)
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let ok = self.windows.control_read(self.control_client, offset as u64, dst);
        if ok { Ok(()) } else { Err(Error::InvalidArgument) }
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let ok = self.windows.control_write(self.control_client, offset as u64, src);
        if ok { Ok(()) } else { Err(Error::InvalidArgument) }
    }
}

/// Every failure of a window access is the server's fault (the engine computed an offset
/// outside the client's window, or the client's memory is gone): `Internal`.
fn internal(done: bool) -> Result<(), Error> {
    if done { Ok(()) } else { Err(Error::Internal) }
}

impl Platform for HostPlatform {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        self.windows.map(client, u64::from(first_page), frames).map_err(|_| Error::Internal)
    }

    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        // A failure reaches the log as an internal error (the engine quarantines the frames).
        self.windows.release(client, u64::from(first_page), frames.len() as u64).map_err(|_| Error::Internal)
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        internal(self.windows.read(client, offset, buf))
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        internal(self.windows.write(client, offset, data))
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        internal(self.windows.fill(client, offset, len as u64, byte))
    }

    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        self.private.frame(frame).map_err(|_| Error::Internal)
    }

    fn private_bytes(&self, frame: u32) -> Result<&[u8; PAGE_SIZE], Error> {
        self.private.bytes(frame).map_err(|_| Error::Internal)
    }

    fn private_bytes_mut(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        self.private.frame(frame).map_err(|_| Error::Internal)
    }

    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        self.private.release(frame).map_err(|_| Error::Internal)
    }
}

impl ControlAccess for HostPlatform {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.windows.control_len(client)?;
        self.control_client = client;
        Some(self)
    }

    fn window_usage(&mut self, client: ClientId) -> Option<WindowUsage> {
        let usage = self.windows.usage(client)?;
        let pages = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Some(WindowUsage {
            granted_pages: pages(usage.granted_pages),
            resident_pages: pages(usage.resident_pages),
            violations: usage.violations,
        })
    }

    /// Through the runner's log: never blocks, rate-limited per client.
    fn internal_error(&mut self, e: &InternalError) {
        let request =
            e.request.map_or("(no request: disconnect or reclaim)".to_string(), |tag| format!("request tag {tag}"));
        let outcome = if e.failed { "failed with Internal" } else { "completed" };
        match e.fault {
            Some(f) => log::line(
                Source::Client(e.client),
                format_args!(
                    "internal error: client {} {request} {outcome}; platform {:?} failed ({}), {} fault(s)",
                    e.client, f.hook, f.error, e.count
                ),
            ),
            None => log::line(
                Source::Client(e.client),
                format_args!("internal error: client {} {request} {outcome} (engine metadata)", e.client),
            ),
        }
    }
}

/// The protocol service of the `memserver` process.
pub struct HostService {
    server: Server<'static, HostPlatform>,
    system: System,
}

impl HostService {
    /// Builds the engine and dispatch for `system`. The engine's tables live for the whole
    /// process (they are allocated once, here, and never freed).
    pub fn new(system: &System) -> Result<HostService, String> {
        let max_clients = u16::try_from(system.clients.len() + 1).map_err(|_| "too many clients".to_string())?;
        let max_window = system.clients.iter().map(|c| c.window_pages).max().unwrap_or(1);
        let mut config = EngineConfig::new(system.server.pool_pages, max_clients, max_window);
        config.max_caches_per_client = system.server.max_caches_per_client.max(14);
        let storage = leak_storage(&config)?;
        let private = PrivateFrames::new(config.pool_frames).map_err(|e| format!("server-private frames: {e}"))?;
        let platform = HostPlatform { windows: Windows::new(), private, control_client: 0 };
        let engine = Engine::new(config, storage, platform).map_err(|e| format!("engine configuration: {e}"))?;
        let sessions: &'static mut [Session] =
            Box::leak(vec![Session::VACANT; usize::from(max_clients)].into_boxed_slice());
        let m = &system.server.magazines;
        let server_config = ServerConfig {
            magazine_slots: system.server.magazine_slots,
            magazine_sizes: MagazineSizes {
                small: m.small.into(),
                medium: m.medium.into(),
                large: m.large.into(),
                huge: m.huge.into(),
            },
        };
        let server = Server::new(engine, sessions, server_config).map_err(|_| {
            format!(
                "server.magazine_slots = {} exceeds the dispatch's limit of {}",
                system.server.magazine_slots,
                memserver_dispatch::MAX_SLOTS
            )
        })?;
        Ok(HostService { server, system: system.clone() })
    }

    /// The dispatch (for a summary at shutdown).
    #[allow(dead_code)]
    pub fn server(&self) -> &Server<'static, HostPlatform> {
        &self.server
    }

    fn refuse(&self, error: Error, reply: &mut [u8]) -> Admission {
        Admission::Refuse { reply_len: encode(&Reply::Error(error), reply) }
    }
}

/// Allocates every engine table for `config`, for the life of the process.
fn leak_storage(config: &EngineConfig) -> Result<EngineStorage<'static>, String> {
    EngineStorage::leak(config).ok_or_else(|| "engine tables overflow the address space".to_owned())
}

fn encode(reply: &Reply, out: &mut [u8]) -> usize {
    protocol::encode_reply(reply, out).map_or(0, |b| b.len())
}

impl Service for HostService {
    fn admit(&mut self, hello: &[u8], reply: &mut [u8]) -> Admission {
        let (version, name) = match protocol::decode_request(hello) {
            Ok(Request::Hello { version, client_name }) => (version, client_name),
            Ok(_) => return self.refuse(Error::PermissionDenied, reply),
            Err(e) => return self.refuse(e, reply),
        };
        if version != PROTOCOL_VERSION {
            // docs/protocol.md: the session stays closed and the client may send another Hello.
            let reply_len = encode(&Reply::Error(Error::VersionMismatch { server: PROTOCOL_VERSION }), reply);
            return Admission::Retry { reply_len };
        }
        let Some((client, task)) = self.system.client_by_name(name.as_str()) else {
            return self.refuse(Error::PermissionDenied, reply);
        };
        // Connected or not is the dispatch's session, nothing kept beside it.
        if self.server.session(client).is_some() {
            return self.refuse(Error::PermissionDenied, reply);
        }
        let spec = ClientSpec {
            name: name.clone(),
            window_pages: task.window_pages,
            quota_pages: task.quota_pages,
            introspect: task.introspect,
            slub_debug: task.slub_debug(),
        };
        if let Err(e) = self.server.admit(client, &spec) {
            return self.refuse(e, reply);
        }
        Admission::Admit { client, control_len: self.server.control_size(task.window_pages), reply_len: 0 }
    }

    fn refusal(&mut self, why: Refusal, reply: &mut [u8]) -> usize {
        let error = match why {
            Refusal::TooManyConnections | Refusal::NotPermitted => Error::PermissionDenied,
            Refusal::OutOfResources => Error::OutOfMemory,
        };
        encode(&Reply::Error(error), reply)
    }

    fn handle(&mut self, client: ClientId, request: &[u8], reply: &mut [u8]) -> usize {
        // The dispatch encodes straight into the runner's reply buffer: nothing is zeroed or
        // copied per request.
        let buf =
            reply.get_mut(..protocol::MAX_MESSAGE_BYTES).and_then(|b| <&mut protocol::MessageBuffer>::try_from(b).ok());
        match buf {
            Some(buf) => self.server.dispatch(client, request, buf),
            None => 0,
        }
    }

    fn disconnected(&mut self, client: ClientId) {
        let frames = self.server.disconnect(client);
        if frames > 0 {
            log::line(Source::Client(client), format_args!("reclaimed {frames} frames of client {client}"));
        }
    }

    fn memory(&mut self) -> &mut Windows {
        &mut self.server.engine_mut().platform_mut().windows
    }
}

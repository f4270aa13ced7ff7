//! One step of the memserver task's serve loop: a message in (badge, label, words), the reply
//! out. The glue loops `seL4_Recv` → [`MemserverTask::handle`] → `seL4_ReplyRecv`.
//!
//! A badge is a client id (the root task minted one endpoint capability per seL4 client),
//! or [`SUPERVISOR_BADGE`], which only the root task holds: its messages are supervisor
//! requests (reclaim a dead client, the frame census), never protocol requests. Admission
//! follows the badge: a `Hello` on a badge whose session is vacant admits that client (its
//! window is reserved, its control region mapped); a `Goodbye` makes it vacant again, with
//! everything it held reclaimed.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use memserver_dispatch::{ClientSpec, Server, Session};
use memserver_engine::{Engine, EngineStorage};
use memserver_sel4_abi::message::{from_words, to_words};
use memserver_sel4_abi::{Census, SUPERVISOR_BADGE, ServerBoot, SupervisorReply, SupervisorRequest};
use protocol::framing::{self, MessageWords};
use protocol::{ClientId, Error, MAX_MESSAGE_BYTES, MessageBuffer, Reply, Request};

use crate::frames::{EngineCount, FrameError, FrameTable};
use crate::kernel::{Kernel, Memory};
use crate::platform::Sel4Platform;
use crate::sizing::{engine_config, server_config};

/// Why the memserver task could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartError {
    /// The frame table or the direct map.
    Frames(FrameError),
    /// The engine or the dispatch refused the configuration.
    Config(Error),
}

/// The memserver task: dispatch, engine and frame table over one kernel.
pub struct MemserverTask<K: Kernel + 'static, M: Memory + 'static> {
    server: Server<'static, Sel4Platform<K, M>>,
    /// Each client id's `system.toml` entry, for admission.
    specs: Vec<Option<ClientSpec>>,
    /// `server.pool_pages`, the census's bound.
    pool_pages: u32,
}

fn leak<T: Clone>(value: T, len: usize) -> &'static mut [T] {
    Box::leak(vec![value; len].into_boxed_slice())
}

/// Builds the memserver task from its boot info: the frame table, the direct map of the pool
/// (tables from the paging reserve), the engine and the dispatch, their tables on the heap
/// for the task's life.
pub fn start<K: Kernel + 'static, M: Memory + 'static>(
    boot: &ServerBoot,
    mut kernel: K,
    memory: M,
) -> Result<MemserverTask<K, M>, StartError> {
    let mut frames = FrameTable::new(boot).map_err(StartError::Frames)?;
    frames.map_direct(&mut kernel).map_err(StartError::Frames)?;
    let platform = Sel4Platform::new(boot, frames, kernel, memory).map_err(StartError::Frames)?;
    let config = engine_config(boot);
    let storage = EngineStorage::leak(&config).ok_or(StartError::Config(Error::InvalidArgument))?;
    let engine = Engine::new(config, storage, platform).map_err(StartError::Config)?;
    let sessions = leak(Session::VACANT, boot.session_count());
    let server = Server::new(engine, sessions, server_config(boot)).map_err(StartError::Config)?;
    let specs = (0..boot.session_count())
        .map(|id| {
            boot.clients.iter().find(|c| usize::from(c.id) == id).map(|c| ClientSpec {
                name: c.name.clone(),
                window_pages: c.window_pages,
                quota_pages: c.quota_pages,
                introspect: c.introspect,
                // Checked when the root task was built; a string that no longer parses
                // debugs nothing rather than keep the client out.
                slub_debug: protocol::slub_debug::SlubDebug::parse(&c.slub_debug).unwrap_or_default(),
            })
        })
        .collect();
    Ok(MemserverTask { server, specs, pool_pages: boot.pool_pages })
}

impl<K: Kernel + 'static, M: Memory + 'static> MemserverTask<K, M> {
    /// The dispatch (tests look at the engine and the platform through it).
    pub fn server(&self) -> &Server<'static, Sel4Platform<K, M>> {
        &self.server
    }

    /// The dispatch, mutably.
    pub fn server_mut(&mut self) -> &mut Server<'static, Sel4Platform<K, M>> {
        &mut self.server
    }

    /// Answers the message with `badge`, `label` and `words` into `reply`: `(label, words)`.
    /// Supervisor requests print onto `log` (the census and slabinfo).
    pub fn handle(
        &mut self,
        badge: u64,
        label: u64,
        words: &[u64],
        reply: &mut MessageWords,
        log: &mut dyn Write,
    ) -> (u64, usize) {
        if badge == SUPERVISOR_BADGE {
            let answer = match from_words::<SupervisorRequest>(label, words) {
                Ok(request) => self.supervise(request, log),
                Err(e) => SupervisorReply::Refused(e),
            };
            return to_words(&answer, reply).unwrap_or((0, 0));
        }
        let mut out: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let len = self.client_message(badge, label, words, &mut out);
        // A reply that cannot be packed goes out empty: the client then sees a malformed
        // message instead of waiting forever.
        framing::pack(out.get(..len).unwrap_or(&[]), reply).unwrap_or((0, 0))
    }

    /// A protocol message from the client whose endpoint carries `badge`; returns the reply length.
    fn client_message(&mut self, badge: u64, label: u64, words: &[u64], reply: &mut MessageBuffer) -> usize {
        let mut request: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let bytes = framing::unpack(label, words, &mut request).map(<[u8]>::len);
        let (Some(client), Ok(len)) = (ClientId::try_from(badge).ok(), bytes) else {
            let error = if bytes.is_err() { Error::Malformed } else { Error::PermissionDenied };
            return protocol::encode_reply(&Reply::Error(error), reply).map_or(0, |b| b.len());
        };
        let request = request.get(..len).unwrap_or(&[]);
        let decoded = protocol::decode_request(request);
        // On seL4 the badge is the client: a Hello on a vacant client's badge admits it. The
        // dispatch then checks the Hello itself (version, name) as on every platform.
        if let Ok(Request::Hello { .. }) = decoded
            && self.server.session(client).is_none()
            && let Some(Some(spec)) = self.specs.get(usize::from(client))
        {
            // A refusal leaves the session vacant; the dispatch answers PermissionDenied.
            let _ = self.server.admit(client, spec);
        }
        let len = self.server.dispatch(client, request, reply);
        if let Ok(Request::Goodbye) = decoded {
            // Also for a session that never opened: the next Hello starts afresh.
            self.server.disconnect(client);
        }
        len
    }

    fn supervise(&mut self, request: SupervisorRequest, log: &mut dyn Write) -> SupervisorReply {
        match request {
            SupervisorRequest::Reclaim { client } => {
                if !matches!(self.specs.get(usize::from(client)), Some(Some(_))) {
                    return SupervisorReply::Refused(Error::InvalidArgument);
                }
                let frames = self.server.disconnect(client);
                SupervisorReply::Reclaimed { frames, free: self.server.engine().pool_stats().free_frames }
            }
            SupervisorRequest::Census => {
                let census = self.census();
                let _ = writeln!(log, "memserver: {census}");
                self.write_slabinfo(log);
                SupervisorReply::Census(census)
            }
        }
    }

    /// The frame census: the frame table's and the kernel's figures beside the engine's.
    pub fn census(&mut self) -> Census {
        let engine = self.server.engine();
        let mut count = EngineCount { pool_pages: self.pool_pages, ..EngineCount::default() };
        for stats in (0..self.specs.len()).filter_map(|id| engine.client_stats(ClientId::try_from(id).ok()?).ok()) {
            let private = stats.tracking_frames + stats.bitmap_frames;
            count.mapped += stats.frames_used.saturating_sub(private);
            count.private += private;
        }
        let pool = engine.pool_stats();
        count.free = pool.free_frames;
        count.quarantined = pool.quarantined_frames;
        let platform = self.server.engine_mut().platform_mut();
        platform.frames.census(&mut platform.kernel, count)
    }

    /// The slabinfo of every client with an open session, one block per client.
    pub fn write_slabinfo(&self, log: &mut dyn Write) {
        for (id, spec) in self.specs.iter().enumerate() {
            let (Some(spec), Ok(client)) = (spec, ClientId::try_from(id)) else { continue };
            let Ok(stats) = self.server.engine().client_stats(client) else { continue };
            let mapped = self.server.engine().platform().frames.mapped_of(client);
            let _ = writeln!(
                log,
                "memserver: client {} ({client}): {} frames, {mapped} mapped, quota {}",
                spec.name, stats.frames_used, stats.quota_frames
            );
            let mut adapter = Adapter(log);
            let _ = self.server.engine().write_slabinfo(Some(client), &mut adapter);
        }
    }
}

/// `core::fmt::Write` through a `&mut dyn Write` (the engine's slabinfo writer is generic).
struct Adapter<'a>(&'a mut dyn Write);

impl Write for Adapter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_str(s)
    }
}

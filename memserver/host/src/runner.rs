//! The event loop: one thread, level-triggered epoll over the listener, the signalfd and every
//! connection, all nonblocking, so no client can stall the others.
//!
//! A connection starts *pending*: waiting for its `Hello` in a pool of its own
//! (`pending_connections` of system.toml), apart from the admitted clients, and closed after
//! `hello_timeout_ms` of silence. When the pool is full, a new connection first gets the pending
//! ones that have sent their `Hello` served, then evicts the oldest silent one, so a process
//! holding (and reopening) many silent connections keeps no client task out. A `Hello` is
//! admitted by the [`Service`] (which client task it names) and by the runner (whether the
//! peer's kernel credentials are that task's [identity](crate::identity)); then the window and
//! control memfds are created and passed with `SCM_RIGHTS`, and the connection exchanges one
//! reply per request. A client that does not read its replies (its socket buffer full) is
//! disconnected rather than waited for; a read of zero bytes is the end of the connection.
//!
//! After every 16th batch of requests from a client, and for every client each
//! `audit.interval_ms` (a timerfd in the same epoll set), the runner [audits](crate::audit) the client's window
//! against the pages it was granted, and disconnects a client that keeps breaking its grant.
//! Which client a connection is admitted as is known in one place: the connection's [`State`].
//!
//! The request path costs the runner no allocation, no clock read and no walk over the
//! connections: the event buffer is kept, the audit timer is a file descriptor, and only while
//! connections wait for their `Hello` are their deadlines looked at (at most
//! `pending_connections` of them). Only a request from a client on another CPU reads the clock:
//! the runner then polls for a while instead of sleeping ([`polling`]).

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use memserver_system::System;
use protocol::{ClientId, PAGE_SIZE};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SocketFlags};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create, timerfd_settime};

use crate::audit::{AuditPolicy, Verdict};
use crate::connection::{self, Connection, State};
use crate::identity::{self, Credentials};
use crate::listener::Listener;
use crate::log::{self, Source};
use crate::memory::ClientMemory;
use crate::service::{Admission, REPLY_MAX, REQUEST_MAX, Refusal, Service};
use crate::signals::Signals;

mod polling;
use polling::Polling;

const LISTENER: u64 = u64::MAX;
const SIGNALS: u64 = u64::MAX - 1;
const AUDIT_TIMER: u64 = u64::MAX - 2;
/// Events taken from one `epoll_wait`.
const EVENTS: usize = 64;
/// Messages taken from one connection per wake-up. One: the protocol has one request in flight
/// per connection, so a wake-up finds one message (a pipelining client's next ones are served
/// on the next wake-ups, epoll being level-triggered), and reading on to `EAGAIN` would cost a
/// system call per request for nothing.
const BATCH: usize = 1;
/// A client's window is audited after every this many batches of its requests (and by the
/// timer): one `fstat` per batch would be a quarter of the runner's cost of a request, and a
/// client that dirties pages it was not granted keeps them at most this many round trips
/// longer (or until the timer pass).
pub(crate) const AUDIT_BATCHES: u32 = 16;
/// Connections accepted per wake-up, so a flood of connects cannot starve the clients.
const ACCEPT_BATCH: usize = 64;

/// Why [`Runner::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT or SIGTERM arrived (the signal number).
    Signal(i32),
}

/// The host runner: owns the sockets and client memory, lends both to the [`Service`].
pub struct Runner<'a, S: Service> {
    system: &'a System,
    service: S,
    epoll: OwnedFd,
    listener: Option<Listener>,
    signals: Option<Signals>,
    connections: Vec<Option<Connection>>,
    /// Connections waiting for their `Hello`, and admitted ones (kept, never counted).
    pending: usize,
    admitted: usize,
    next_generation: u32,
    audit: AuditPolicy,
    audit_every: Duration,
    /// Fires every `audit_every` while any client is admitted.
    audit_timer: OwnedFd,
    /// The buffer `epoll_wait` fills, kept across wake-ups.
    events: Vec<epoll::Event>,
    /// The uid an identity without `uid` stands for: the server's own.
    server_uid: u32,
    request: Vec<u8>,
    reply: Vec<u8>,
    /// Whether to poll rather than sleep, and which clients were told.
    polling: Polling,
}

impl<'a, S: Service> Runner<'a, S> {
    /// A runner for `system`; `listener` and `signals` are optional so tests can drive it with
    /// [`adopt`](Runner::adopt)ed socketpairs.
    pub fn new(
        system: &'a System,
        service: S,
        listener: Option<Listener>,
        signals: Option<Signals>,
    ) -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        if let Some(l) = &listener {
            epoll::add(&epoll, l, EventData::new_u64(LISTENER), EventFlags::IN)?;
        }
        if let Some(s) = &signals {
            epoll::add(&epoll, s, EventData::new_u64(SIGNALS), EventFlags::IN)?;
        }
        let audit_timer = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        epoll::add(&epoll, &audit_timer, EventData::new_u64(AUDIT_TIMER), EventFlags::IN)?;
        Ok(Runner {
            system,
            service,
            epoll,
            listener,
            signals,
            connections: Vec::new(),
            pending: 0,
            admitted: 0,
            next_generation: 0,
            audit: AuditPolicy::of(system),
            audit_every: Duration::from_millis(system.server.audit.interval_ms.max(1).into()),
            audit_timer,
            events: Vec::with_capacity(EVENTS),
            server_uid: rustix::process::geteuid().as_raw(),
            request: vec![0; REQUEST_MAX],
            reply: vec![0; REPLY_MAX],
            polling: Polling::new(Duration::from_micros(system.server.poll_us.into())),
        })
    }

    /// The service (for tests and for printing a summary at shutdown).
    #[allow(dead_code)]
    pub fn service(&self) -> &S {
        &self.service
    }

    /// Runs until a termination signal; then [`shutdown`](Runner::shutdown) is up to the caller.
    pub fn run(&mut self) -> io::Result<Stop> {
        loop {
            let limit = self.polling.timeout(self.service.memory());
            if let Some(stop) = self.poll_once(limit)? {
                return Ok(stop);
            }
        }
    }

    /// Waits for events (at most `limit`, and never past the nearest Hello deadline), handles
    /// them, expires silent connections, and audits every window when the audit timer fired.
    pub fn poll_once(&mut self, limit: Option<Duration>) -> io::Result<Option<Stop>> {
        let timeout = self.nearest_deadline().into_iter().chain(limit).min().map(|d| rustix::time::Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        self.events.clear();
        match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut self.events), timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for i in 0..self.events.len() {
            let Some(token) = self.events.get(i).map(|e| e.data.u64()) else { break };
            match token {
                LISTENER => self.accept_all(),
                SIGNALS => {
                    if let Some(signal) = self.signals.as_ref().and_then(Signals::take) {
                        return Ok(Some(Stop::Signal(signal)));
                    }
                }
                AUDIT_TIMER => {
                    // The expiration count; the timer re-arms itself.
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&self.audit_timer, &mut count);
                    self.audit_all();
                }
                _ => {
                    if let Some(slot) = self.slot_of(token) {
                        self.serve(slot);
                    }
                }
            }
        }
        if self.pending > 0 {
            self.expire_silent();
        }
        Ok(None)
    }

    /// Time left until the nearest Hello deadline, if any connection is waiting for its Hello.
    fn nearest_deadline(&self) -> Option<Duration> {
        if self.pending == 0 {
            return None;
        }
        let now = Instant::now();
        self.connections
            .iter()
            .flatten()
            .filter_map(|c| match c.state {
                State::AwaitingHello { deadline } => Some(deadline.saturating_duration_since(now)),
                State::Admitted(_) => None,
            })
            .min()
    }

    /// Arms the audit timer (every `audit_every`) while a client is admitted, disarms it when
    /// none is.
    fn set_audit_timer(&self) {
        let every = if self.admitted > 0 { self.audit_every } else { Duration::ZERO };
        let spec = rustix::time::Timespec {
            tv_sec: every.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: every.subsec_nanos().into(),
        };
        let value = Itimerspec { it_interval: spec, it_value: spec };
        if let Err(e) = timerfd_settime(&self.audit_timer, TimerfdTimerFlags::empty(), &value) {
            log::line(Source::Server, format_args!("cannot set the audit timer: {e}"));
        }
    }

    /// Connections waiting for their `Hello`.
    pub fn pending(&self) -> usize {
        self.connections.iter().flatten().filter(|c| matches!(c.state, State::AwaitingHello { .. })).count()
    }

    /// The client `slot` is admitted as, if any.
    fn admitted(&self, slot: usize) -> Option<ClientId> {
        match self.connections.get(slot)?.as_ref()?.state {
            State::Admitted(client) => Some(client),
            State::AwaitingHello { .. } => None,
        }
    }

    /// Audits every admitted client's window (the timer pass).
    pub fn audit_all(&mut self) {
        for slot in 0..self.connections.len() {
            if let Some(client) = self.admitted(slot) {
                self.audit_window(slot, client);
            }
        }
    }

    /// Audits `client`'s window; punches what it was not granted, and disconnects it when it
    /// keeps doing so.
    #[inline]
    fn audit_window(&mut self, slot: usize, client: ClientId) {
        let policy = self.audit;
        let verdict = self.service.memory().audit(client, &policy, Instant::now);
        if verdict == Ok(Verdict::Held) {
            return;
        }
        self.audit_reported(slot, client, verdict);
    }

    /// What an audit found beyond a window within its grant: logged, and the client
    /// disconnected when it keeps breaking its grant.
    #[cold]
    fn audit_reported(&mut self, slot: usize, client: ClientId, verdict: Result<Verdict, crate::memory::MemoryError>) {
        let policy = self.audit;
        let name = self.system.client(client).map_or("?", |c| c.name.as_str());
        let (v, reclaim) = match verdict {
            Ok(Verdict::Held) => return,
            Ok(Verdict::Punched(v)) => (v, false),
            Ok(Verdict::Reclaim(v)) => (v, true),
            Err(e) => {
                log::line(Source::Client(client), format_args!("client {client} ({name}): audit failed: {e}"));
                return;
            }
        };
        log::line(
            Source::Client(client),
            format_args!(
                "client {client} ({name}): {} pages resident, {} granted (+{} slack): punched {} ungranted pages \
                 (violation {} of {} within {:?})",
                v.resident,
                v.granted,
                policy.slack_pages,
                v.punched,
                v.recent,
                policy.violations_max,
                policy.violation_window
            ),
        );
        if reclaim {
            self.close(slot, &format!("kept pages it was not granted resident ({} violations)", v.recent));
        }
    }

    /// Closes every connection (the service hears `disconnected` for each admitted client)
    /// and the listener, whose socket file is removed.
    pub fn shutdown(&mut self) {
        for slot in 0..self.connections.len() {
            self.close(slot, "server shutting down");
        }
        self.listener = None;
    }

    /// Takes an already connected socket as a new connection, as if accepted (it joins the
    /// pending pool whatever its size: [`accept_all`](Self::accept_all) makes room first).
    pub fn adopt(&mut self, fd: OwnedFd) -> io::Result<()> {
        let peer = Credentials::of(&fd).ok();
        let timeout = Duration::from_millis(self.system.server.hello_timeout_ms.into());
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = match self.connections.iter().position(Option::is_none) {
            Some(slot) => slot,
            None => {
                self.connections.push(None);
                self.connections.len() - 1
            }
        };
        let token = (u64::from(generation) << 32) | slot as u64;
        epoll::add(&self.epoll, &fd, EventData::new_u64(token), EventFlags::IN | EventFlags::RDHUP)?;
        let deadline = Instant::now() + timeout;
        let state = State::AwaitingHello { deadline };
        self.connections[slot] = Some(Connection { fd, generation, state, peer, unaudited_batches: 0 });
        self.pending += 1;
        Ok(())
    }

    /// Accepts up to [`ACCEPT_BATCH`] connections into the pending pool, making room in it for
    /// each one as needed.
    fn accept_all(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(listener) = &self.listener else { return };
            let fd = match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return,
                Err(e) => {
                    // EMFILE and friends: leave the connection in the backlog for a later try.
                    log::line(Source::Server, format_args!("accept failed: {e}"));
                    return;
                }
            };
            self.make_room();
            if let Err(e) = self.adopt(fd) {
                log::line(Source::Server, format_args!("cannot watch a new connection: {e}"));
            }
        }
    }

    /// While the pending pool is full: serve the pending connections that have sent something
    /// (their `Hello`), then evict the oldest silent one.
    fn make_room(&mut self) {
        let max = usize::try_from(self.system.server.pending_connections).unwrap_or(usize::MAX).max(1);
        if self.pending() < max {
            return;
        }
        for slot in 0..self.connections.len() {
            if self.connections[slot].as_ref().is_some_and(|c| matches!(c.state, State::AwaitingHello { .. })) {
                self.serve(slot);
            }
        }
        while self.pending() >= max {
            let oldest = self
                .connections
                .iter()
                .enumerate()
                .filter_map(|(slot, c)| match c.as_ref()?.state {
                    State::AwaitingHello { deadline } => Some((deadline, slot)),
                    State::Admitted(_) => None,
                })
                .min();
            let Some((_, slot)) = oldest else { return };
            let len = self.service.refusal(Refusal::TooManyConnections, &mut self.reply);
            if let Some(conn) = &self.connections[slot] {
                let _ = connection::send(&conn.fd, self.reply.get(..len).unwrap_or_default());
            }
            self.close(slot, "silent while the pending pool was full (evicted)");
        }
    }

    fn slot_of(&self, token: u64) -> Option<usize> {
        let slot = (token & u64::from(u32::MAX)) as usize;
        let generation = (token >> 32) as u32;
        let conn = self.connections.get(slot)?.as_ref()?;
        (conn.generation == generation).then_some(slot)
    }

    /// Takes up to [`BATCH`] messages from `slot`, then audits the client's window. A read of
    /// zero bytes is the end of the connection (the peer closed or shut down its sending side):
    /// no request of the protocol is empty.
    #[inline]
    fn serve(&mut self, slot: usize) {
        for _ in 0..BATCH {
            let Some(conn) = self.connections[slot].as_ref() else { return };
            let received = rustix::net::recv(&conn.fd, &mut self.request[..], RecvFlags::DONTWAIT | RecvFlags::TRUNC);
            match received {
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return self.close(slot, &format!("receive failed: {e}")),
                Ok((_, 0)) => return self.close(slot, "end of connection"),
                Ok((_, len)) if len > REQUEST_MAX => {
                    return self.close(slot, &format!("message of {len} bytes exceeds {REQUEST_MAX}"));
                }
                Ok((_, len)) => {
                    if !self.message(slot, len) {
                        return;
                    }
                }
            }
        }
        let Some(conn) = self.connections[slot].as_mut() else { return };
        conn.unaudited_batches += 1;
        let State::Admitted(client) = conn.state else { return };
        let batches = conn.unaudited_batches;
        if batches >= AUDIT_BATCHES {
            conn.unaudited_batches = 0;
            self.audit_window(slot, client);
        }
        if batches.is_multiple_of(polling::HINT_BATCHES) || self.polling.active() {
            self.polling.served(self.service.memory(), client);
        }
    }

    /// Handles the message in `self.request[..len]`; `false` if the connection was closed.
    #[inline]
    fn message(&mut self, slot: usize, len: usize) -> bool {
        let Some(conn) = self.connections[slot].as_ref() else { return false };
        match conn.state {
            State::AwaitingHello { .. } => self.hello(slot, len),
            State::Admitted(client) => {
                let request = &self.request[..len];
                let reply_len = self.service.handle(client, request, &mut self.reply);
                if reply_len == 0 {
                    return true;
                }
                let reply = self.reply.get(..reply_len).unwrap_or(&self.reply[..]);
                match connection::send(&conn.fd, reply) {
                    Ok(()) => true,
                    Err(Errno::AGAIN) => {
                        self.close(slot, "not reading its replies (socket buffer full)");
                        false
                    }
                    // The client closed its end without waiting for this reply.
                    Err(Errno::PIPE | Errno::CONNRESET) => {
                        self.close(slot, "end of connection (before its last reply)");
                        false
                    }
                    Err(e) => {
                        self.close(slot, &format!("send failed: {e}"));
                        false
                    }
                }
            }
        }
    }

    fn hello(&mut self, slot: usize, len: usize) -> bool {
        let admission = self.service.admit(&self.request[..len], &mut self.reply);
        let (client, control_len, reply_len) = match admission {
            Admission::Refuse { reply_len } => {
                if let Some(conn) = &self.connections[slot] {
                    let _ = connection::send(&conn.fd, self.reply.get(..reply_len).unwrap_or_default());
                }
                self.close(slot, "refused by the service");
                return false;
            }
            Admission::Retry { reply_len } => {
                let Some(conn) = &self.connections[slot] else { return false };
                return match connection::send(&conn.fd, self.reply.get(..reply_len).unwrap_or_default()) {
                    Ok(()) => true,
                    Err(e) => {
                        self.close(slot, &format!("cannot answer its Hello: {e}"));
                        false
                    }
                };
            }
            Admission::Admit { client, control_len, reply_len } => (client, control_len, reply_len),
        };
        let system = self.system;
        let taken = self.connections.iter().flatten().any(|c| c.state == State::Admitted(client));
        let known = system.client(client).filter(|_| !taken);
        let Some(config) = known else {
            // The service broke its contract (unknown or already connected id): refuse without
            // telling it, since the id may belong to a live connection.
            log::line(
                Source::Server,
                format_args!("service admitted client {client}, which is unknown or already connected"),
            );
            self.close(slot, "bad admission");
            return false;
        };
        let identity = config.identity(&system.server);
        let verdict = match self.connections[slot].as_ref() {
            Some(Connection { peer: Some(peer), fd, .. }) => identity::check(&identity, self.server_uid, peer, fd),
            _ => Err(identity::Mismatch::NoCredentials),
        };
        if let Err(mismatch) = verdict {
            self.service.disconnected(client);
            let len = self.service.refusal(Refusal::NotPermitted, &mut self.reply);
            if let Some(conn) = &self.connections[slot] {
                let _ = connection::send(&conn.fd, self.reply.get(..len).unwrap_or_default());
            }
            self.close(slot, &format!("not client {client} ({}): {mismatch}", config.name));
            return false;
        }
        let control_len = control_len.max(1).div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        let memory = usize::try_from(config.window_bytes())
            .map_err(|_| crate::memory::MemoryError::OutOfRange)
            .and_then(|window_len| ClientMemory::create(&config.name, window_len, control_len));
        let memory = match memory {
            Ok(memory) => memory,
            Err(e) => {
                log::line(
                    Source::Server,
                    format_args!("cannot create memory for client {client} ({}): {e}", config.name),
                );
                self.service.disconnected(client);
                let len = self.service.refusal(Refusal::OutOfResources, &mut self.reply);
                if let Some(conn) = &self.connections[slot] {
                    let _ = connection::send(&conn.fd, self.reply.get(..len).unwrap_or_default());
                }
                self.close(slot, "out of resources");
                return false;
            }
        };
        let name = config.name.clone();
        if let Some(conn) = self.connections[slot].as_mut() {
            conn.state = State::Admitted(client);
            self.pending -= 1;
            self.admitted += 1;
            if self.admitted == 1 {
                self.set_audit_timer();
            }
        }
        self.service.memory().insert(client, memory);
        let mut reply_len = reply_len;
        if reply_len == 0 {
            // The service answers the Hello once the client's memory exists.
            reply_len = self.service.handle(client, &self.request[..len], &mut self.reply);
        }
        let sent =
            match (self.connections[slot].as_ref(), self.reply.get(..reply_len), self.service.memory().get(client)) {
                (Some(conn), Some(reply), Some(memory)) => connection::send_with_fds(&conn.fd, reply, memory),
                _ => Err(Errno::INVAL),
            };
        if let Err(e) = sent {
            self.close(slot, &format!("cannot send the Hello reply: {e}"));
            return false;
        }
        log::line(Source::Client(client), format_args!("client {client} ({name}) admitted"));
        true
    }

    fn expire_silent(&mut self) {
        let now = Instant::now();
        for slot in 0..self.connections.len() {
            let expired = matches!(
                &self.connections[slot],
                Some(Connection { state: State::AwaitingHello { deadline }, .. }) if *deadline <= now
            );
            if expired {
                self.close(slot, "no Hello in time");
            }
        }
    }

    fn close(&mut self, slot: usize, reason: &str) {
        let Some(conn) = self.connections.get_mut(slot).and_then(Option::take) else { return };
        let _ = epoll::delete(&self.epoll, &conn.fd);
        drop(conn.fd);
        match conn.state {
            State::AwaitingHello { .. } => self.pending -= 1,
            State::Admitted(_) => {
                self.admitted -= 1;
                if self.admitted == 0 {
                    self.set_audit_timer();
                }
            }
        }
        if let State::Admitted(client) = conn.state {
            self.polling.forget(client);
            self.service.disconnected(client);
            drop(self.service.memory().remove(client));
            let name = self.system.client(client).map_or("?", |c| c.name.as_str());
            log::line(Source::Client(client), format_args!("client {client} ({name}) disconnected: {reason}"));
        } else {
            let source = conn.peer.map_or(Source::Others, |p| Source::Uid(p.uid));
            let who = conn.peer.map_or_else(|| "unknown peer".to_string(), |p| format!("pid {} uid {}", p.pid, p.uid));
            log::line(source, format_args!("connection of {who} closed before admission: {reason}"));
        }
    }
}

#[cfg(test)]
mod tests;

//! The event loop: one thread, level-triggered epoll over the listener, the signalfd and every
//! connection, all nonblocking, so no client can stall the others.
//!
//! A connection starts waiting for its `Hello` (closed after `hello_timeout_ms` of silence),
//! is admitted by the [`Service`] (window and control memfds created and passed with
//! `SCM_RIGHTS`), then exchanges one reply per request. A client that does not read its
//! replies (its socket buffer full) is disconnected rather than waited for.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use memserver_system::System;
use protocol::PAGE_SIZE;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SocketFlags};

use crate::connection::{self, Connection, State};
use crate::listener::Listener;
use crate::memory::ClientMemory;
use crate::service::{Admission, REPLY_MAX, REQUEST_MAX, Refusal, Service};
use crate::signals::Signals;

const LISTENER: u64 = u64::MAX;
const SIGNALS: u64 = u64::MAX - 1;
/// Messages taken from one connection per wake-up, so a busy client cannot starve the rest.
const BATCH: usize = 32;

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
    next_generation: u32,
    open: usize,
    connected: Vec<bool>,
    request: Vec<u8>,
    reply: Vec<u8>,
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
        Ok(Runner {
            system,
            service,
            epoll,
            listener,
            signals,
            connections: Vec::new(),
            next_generation: 0,
            open: 0,
            connected: vec![false; system.clients.len() + 1],
            request: vec![0; REQUEST_MAX],
            reply: vec![0; REPLY_MAX],
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
            if let Some(stop) = self.poll_once(None)? {
                return Ok(stop);
            }
        }
    }

    /// Waits for events (at most `limit`, and never past the nearest Hello deadline), handles
    /// them and expires silent connections.
    pub fn poll_once(&mut self, limit: Option<Duration>) -> io::Result<Option<Stop>> {
        let now = Instant::now();
        let deadline = self
            .connections
            .iter()
            .flatten()
            .filter_map(|c| match c.state {
                State::AwaitingHello { deadline } => Some(deadline.saturating_duration_since(now)),
                State::Admitted(_) => None,
            })
            .chain(limit)
            .min();
        let timeout = deadline.map(|d| rustix::time::Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
        match epoll::wait(&self.epoll, rustix::buffer::spare_capacity(&mut events), timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for event in &events {
            let (token, flags) = (event.data.u64(), event.flags);
            match token {
                LISTENER => self.accept_all(),
                SIGNALS => {
                    if let Some(signal) = self.signals.as_ref().and_then(Signals::take) {
                        return Ok(Some(Stop::Signal(signal)));
                    }
                }
                _ => self.readable(token, flags),
            }
        }
        self.expire_silent();
        Ok(None)
    }

    /// Closes every connection (the service hears `disconnected` for each admitted client)
    /// and the listener, whose socket file is removed.
    pub fn shutdown(&mut self) {
        for slot in 0..self.connections.len() {
            self.close(slot, "server shutting down");
        }
        self.listener = None;
    }

    /// Takes an already connected socket as a new connection, as if accepted.
    pub fn adopt(&mut self, fd: OwnedFd) -> io::Result<()> {
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
        self.connections[slot] = Some(Connection { fd, generation, state: State::AwaitingHello { deadline } });
        self.open += 1;
        Ok(())
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            let fd = match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => fd,
                Err(Errno::INTR) | Err(Errno::CONNABORTED) => continue,
                Err(Errno::AGAIN) => return,
                Err(e) => {
                    // EMFILE and friends: leave the connection in the backlog for a later try.
                    log(format_args!("accept failed: {e}"));
                    return;
                }
            };
            if self.open >= self.system.clients.len() {
                let len = self.service.refusal(Refusal::TooManyConnections, &mut self.reply);
                let _ = connection::send(&fd, self.reply.get(..len).unwrap_or_default());
                log(format_args!("refused a connection: {} already open", self.open));
                continue;
            }
            if let Err(e) = self.adopt(fd) {
                log(format_args!("cannot watch a new connection: {e}"));
            }
        }
    }

    fn slot_of(&self, token: u64) -> Option<usize> {
        let slot = (token & u64::from(u32::MAX)) as usize;
        let generation = (token >> 32) as u32;
        let conn = self.connections.get(slot)?.as_ref()?;
        (conn.generation == generation).then_some(slot)
    }

    fn readable(&mut self, token: u64, flags: EventFlags) {
        let Some(slot) = self.slot_of(token) else { return };
        let hung_up = flags.intersects(EventFlags::HUP | EventFlags::RDHUP | EventFlags::ERR);
        for _ in 0..BATCH {
            let Some(conn) = self.connections[slot].as_ref() else { return };
            let received = rustix::net::recv(&conn.fd, &mut self.request[..], RecvFlags::DONTWAIT | RecvFlags::TRUNC);
            match received {
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => continue,
                Err(e) => return self.close(slot, &format!("receive failed: {e}")),
                Ok((_, 0)) if hung_up => return self.close(slot, "end of connection"),
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
    }

    /// Handles the message in `self.request[..len]`; `false` if the connection was closed.
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
            Admission::Admit { client, control_len, reply_len } => (client, control_len, reply_len),
        };
        let system = self.system;
        let known = system.client(client);
        let Some(config) = known.filter(|_| !self.connected.get(usize::from(client)).copied().unwrap_or(true)) else {
            // The service broke its contract (unknown or already connected id): refuse without
            // telling it, since the id may belong to a live connection.
            log(format_args!("service admitted client {client}, which is unknown or already connected"));
            self.close(slot, "bad admission");
            return false;
        };
        let control_len = control_len.max(1).div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
        let memory = usize::try_from(config.window_bytes())
            .map_err(|_| crate::memory::MemoryError::OutOfRange)
            .and_then(|window_len| ClientMemory::create(&config.name, window_len, control_len));
        let memory = match memory {
            Ok(memory) => memory,
            Err(e) => {
                log(format_args!("cannot create memory for client {client} ({}): {e}", config.name));
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
        }
        self.connected[usize::from(client)] = true;
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
        log(format_args!("client {client} ({name}) admitted"));
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
        self.open = self.open.saturating_sub(1);
        let _ = epoll::delete(&self.epoll, &conn.fd);
        drop(conn.fd);
        if let State::Admitted(client) = conn.state {
            self.service.disconnected(client);
            drop(self.service.memory().remove(client));
            if let Some(flag) = self.connected.get_mut(usize::from(client)) {
                *flag = false;
            }
            let name = self.system.client(client).map_or("?", |c| c.name.as_str());
            log(format_args!("client {client} ({name}) disconnected: {reason}"));
        } else {
            log(format_args!("connection closed before admission: {reason}"));
        }
    }
}

fn log(args: std::fmt::Arguments<'_>) {
    eprintln!("memserver: {args}");
}

#[cfg(test)]
mod tests;

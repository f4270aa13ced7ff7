//! The memserver conformance suite as seL4 client tasks.
//!
//! Design: every client with `image = "conformance"` is a task of its own, with its own
//! VSpace, window and control region. The first (`instance` 0, client `conformance`) runs
//! the same `conformance` scenarios that run in-process and against the Linux server, over
//! `seL4_Call`. The others (client `conformance-peer`) are *agents*: the isolation scenarios'
//! second client is a task with a separate VSpace, so the suite cannot touch its window
//! directly: it sends each step to the agent over an endpoint (the agent protocol of
//! `memserver-sel4-abi`), which performs it as its own client, window and control region
//! included. On seL4 the badge is fixed, so a "new session" is the same endpoint: the server
//! admits a vacant client again on its next `Hello`, and dropping a session sends `Goodbye`.
//! The suite prints a line per scenario and the summary, tells its agents to finish and
//! reports its failures to the root task, which prints `TEST_PASS` / `TEST_FAIL` at the end.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use conformance::{Harness, Session, TransportError};
use memserver_sel4_abi::agent::Area;
use memserver_sel4_abi::start::{SLOT_AGENT, SLOT_MEMSERVER};
use memserver_sel4_abi::{ClientBoot, ClientSession, Peer};
use memserver_sel4_client::agent::{AgentMemory, RemoteClient, serve};
use memserver_task_client::{Console, EndpointLink, Shared};
use protocol::framing::MessageWords;
use protocol::{Handle, MAX_MESSAGE_WORDS, Request};

memserver_task_client::client_task!(task_main, stack = 256 * 1024);

fn task_main(boot: ClientBoot, root: sel4::cap::Endpoint) -> ! {
    if boot.instance == 0 { run_suite(&boot, root) } else { serve_as_agent(&boot, root) }
}

/// Runs every scenario, then finishes the agents and reports.
fn run_suite(boot: &ClientBoot, root: sel4::cap::Endpoint) -> ! {
    let peers: Vec<&str> = boot.peers.iter().map(|p| p.name.as_str()).collect();
    sel4::debug_println!(
        "conformance: seL4 client task {:?} (client {}), peers in their own tasks: {peers:?}",
        boot.session.name.as_str(),
        boot.session.id
    );
    // Scenarios count the pool's free pages between their steps, and the suite's own heap
    // draws on the same pool: its slabs are made now, so they do not grow in a measurement.
    match memserver_task_client::heap::grow_every_class() {
        Ok(pages) => sel4::debug_println!("conformance: heap client holds {pages} page(s) before the scenarios"),
        Err(why) => sel4::debug_println!("conformance: no heap slabs made before the scenarios: {why}"),
    }
    let mut harness = Sel4Harness { own: boot.session.clone(), peers: boot.peers.iter().cloned().collect() };
    let summary = conformance::run_all(&mut harness, "", &mut Console);
    let mut failures = if summary.ok() { 0 } else { summary.failed.max(1) as u64 };
    for peer in &boot.peers {
        if RemoteClient::new(EndpointLink::at(peer.endpoint_slot)).finish().is_err() {
            sel4::debug_println!("conformance: agent {} did not finish", peer.name);
            failures += 1;
        }
    }
    memserver_task_client::report(root, failures)
}

/// The agent's own window and control region.
struct OwnRegions {
    window: Shared,
    control: Shared,
}

impl AgentMemory for OwnRegions {
    fn read(&mut self, area: Area, offset: u64, buf: &mut [u8]) -> bool {
        match area {
            Area::Window => self.window.read(offset, buf),
            Area::Control => self.control.read(offset, buf),
        }
    }

    fn write(&mut self, area: Area, offset: u64, data: &[u8]) -> bool {
        match area {
            Area::Window => self.window.write(offset, data),
            Area::Control => self.control.write(offset, data),
        }
    }
}

/// Serves agent requests until the suite says `Finish`, then reports.
fn serve_as_agent(boot: &ClientBoot, root: sel4::cap::Endpoint) -> ! {
    if boot.agent_slot != Some(SLOT_AGENT) {
        sel4::debug_println!("conformance: instance {} has no agent endpoint", boot.instance);
        memserver_task_client::report(root, 1)
    }
    sel4::debug_println!("{}: agent task up (client {})", boot.session.name, boot.session.id);
    let endpoint = sel4::cap::Endpoint::from_bits(SLOT_AGENT);
    let mut memserver = EndpointLink::at(SLOT_MEMSERVER);
    let mut regions = OwnRegions { window: Shared(boot.session.window), control: Shared(boot.session.control) };
    let mut requests = 0u64;
    let (mut info, _) = endpoint.recv(());
    loop {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let length = info.length().min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer(|buf| words[..length].copy_from_slice(&buf.msg_regs()[..length]));
        let mut reply: MessageWords = [0; MAX_MESSAGE_WORDS];
        let answer = serve(info.label(), &words[..length], &mut memserver, &mut regions, &mut reply);
        requests += 1;
        let len = answer.len.min(MAX_MESSAGE_WORDS);
        sel4::with_ipc_buffer_mut(|buf| buf.msg_regs_mut()[..len].copy_from_slice(&reply[..len]));
        let reply_info = sel4::MessageInfoBuilder::default().label(answer.label).length(len).build();
        if answer.finished {
            sel4::with_ipc_buffer_mut(|buf| sel4::reply(buf, reply_info));
            sel4::debug_println!("{}: agent done after {requests} requests", boot.session.name);
            memserver_task_client::report(root, 0)
        }
        (info, _) = endpoint.reply_recv(reply_info, ());
    }
}

/// The scenarios' platform: this task's own client, and its peers through their agents.
struct Sel4Harness {
    own: ClientSession,
    peers: Vec<Peer>,
}

impl Harness for Sel4Harness {
    fn open(&mut self, name: &str) -> Result<Box<dyn Session>, TransportError> {
        if self.own.name == name {
            return Ok(Box::new(LocalSession {
                memserver: EndpointLink::at(SLOT_MEMSERVER),
                window: Shared(self.own.window),
                control: Shared(self.own.control),
            }));
        }
        let peer = self
            .peers
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| TransportError(format!("no seL4 task for client {name:?} (image = \"conformance\")")))?;
        Ok(Box::new(RemoteSession(RemoteClient::new(EndpointLink::at(peer.endpoint_slot)))))
    }

    /// The memserver holds the pool's frame capabilities: it knows their physical addresses.
    fn knows_bus_addresses(&self) -> bool {
        true
    }
}

fn transport(e: impl core::fmt::Debug) -> TransportError {
    TransportError(format!("{e:?}"))
}

fn outside(what: &str, offset: u64, len: usize) -> TransportError {
    TransportError(format!("{what} {offset:#x}+{len} outside the region"))
}

/// This task's own client: the memserver endpoint plus copies in and out of its regions.
struct LocalSession {
    memserver: EndpointLink,
    window: Shared,
    control: Shared,
}

impl Session for LocalSession {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        memserver_sel4_client::call(&mut self.memserver, request, reply).map_err(transport)
    }

    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let at = handle.0.saturating_add(offset as u64);
        if self.window.read(at, buf) { Ok(()) } else { Err(outside("window", at, buf.len())) }
    }

    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let at = handle.0.saturating_add(offset as u64);
        if self.window.write(at, data) { Ok(()) } else { Err(outside("window", at, data.len())) }
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        if self.control.read(offset as u64, buf) { Ok(()) } else { Err(outside("control", offset as u64, buf.len())) }
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        if self.control.write(offset as u64, data) {
            Ok(())
        } else {
            Err(outside("control", offset as u64, data.len()))
        }
    }

    /// The client library's scenarios run on the same memory.
    fn mapped(&self) -> Option<(memclient::Window, memclient::Control)> {
        let (window, control) = (self.window.0, self.control.0);
        let window_base = core::ptr::NonNull::new(window.addr as *mut u8)?;
        let control_base = core::ptr::NonNull::new(control.addr as *mut u8)?;
        let (window_len, control_len) = (usize::try_from(window.len).ok()?, usize::try_from(control.len).ok()?);
        // SAFETY: the control region is mapped read-write into this task for its whole life
        // (page aligned: the root task maps whole pages); the window is reserved in this
        // task's VSpace for the memserver's mappings, and the library only touches the pages
        // the server granted it (mapped before the grant's reply), as any client does.
        unsafe {
            Some((memclient::Window::new(window_base, window_len), memclient::Control::new(control_base, control_len)))
        }
    }
}

impl Drop for LocalSession {
    /// The badge outlives the session: `Goodbye` makes the server reclaim the client and
    /// admit it afresh on its next `Hello` (an error reply, when the session never opened,
    /// changes nothing).
    fn drop(&mut self) {
        goodbye(|request, reply| {
            memserver_sel4_client::call(&mut self.memserver, request, reply).map(|_| ()).map_err(transport)
        });
    }
}

/// A peer's client, through its agent in its own task.
struct RemoteSession(RemoteClient<EndpointLink>);

impl Session for RemoteSession {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        self.0.call(request, reply).map_err(transport)
    }

    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        self.0.read(Area::Window, handle.0.saturating_add(offset as u64), buf).map_err(transport)
    }

    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.0.write(Area::Window, handle.0.saturating_add(offset as u64), data).map_err(transport)
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        self.0.read(Area::Control, offset as u64, buf).map_err(transport)
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.0.write(Area::Control, offset as u64, data).map_err(transport)
    }
}

impl Drop for RemoteSession {
    /// As for [`LocalSession`], performed by the agent.
    fn drop(&mut self) {
        goodbye(|request, reply| self.0.call(request, reply).map(|_| ()).map_err(transport));
    }
}

/// Sends `Goodbye` through `call`, ignoring the answer.
fn goodbye(call: impl FnOnce(&[u8], &mut [u8]) -> Result<(), TransportError>) {
    let mut request = [0u8; protocol::MAX_MESSAGE_BYTES];
    if let Ok(bytes) = protocol::encode_request(&Request::Goodbye, &mut request) {
        let len = bytes.len();
        let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
        let _ = call(&request[..len], &mut reply);
    }
}

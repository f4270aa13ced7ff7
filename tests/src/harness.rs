//! What a platform provides to the scenarios: sessions that carry request bytes to a server
//! and touch object memory.

use alloc::boxed::Box;
use alloc::string::String;

use protocol::Handle;

/// A transport failure (not a protocol error: those come back inside replies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(pub String);

/// One client's connection to the server.
pub trait Session {
    /// Send `request` (already encoded) and write the reply into `reply`, returning its length.
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError>;
    /// Copy `buf.len()` bytes of object memory at `handle + offset` out of the window.
    fn read(&mut self, handle: Handle, offset: usize, buf: &mut [u8]) -> Result<(), TransportError>;
    /// Copy `data` into object memory at `handle + offset`.
    fn write(&mut self, handle: Handle, offset: usize, data: &[u8]) -> Result<(), TransportError>;
    /// Copy bytes of the control region (magazines) out.
    fn control_read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError>;
    /// Copy bytes into the control region.
    fn control_write(&mut self, offset: usize, data: &[u8]) -> Result<(), TransportError>;
    /// Whether the server's connection is still usable (a fault may close it on some
    /// transports; the in-process one never closes).
    fn is_open(&self) -> bool {
        true
    }

    /// The client's window and control region as mapped into this process, once `Hello` has
    /// been answered: what the client library (`memclient`) works on, for the scenarios of its
    /// own rules. `None` where the platform does not map them into the suite (a peer that is
    /// a task of its own on seL4); those scenarios then fail saying so.
    fn mapped(&self) -> Option<(memclient::Window, memclient::Control)> {
        None
    }
}

/// A platform: opens sessions as client tasks of the system description.
pub trait Harness {
    /// A session for the client task named `name` (a fresh session per call; the scenario
    /// sends `Hello` itself). Names used by the suite: `conformance`, `conformance-peer`.
    /// Dropping a session disconnects it: the server reclaims everything it held.
    fn open(&mut self, name: &str) -> Result<Box<dyn Session>, TransportError>;

    /// Whether the server under test knows the physical addresses of its frames (seL4), so
    /// `DmaAddr` answers an address; elsewhere it answers `NotSupported`.
    fn knows_bus_addresses(&self) -> bool {
        false
    }
}

//! [`ServerPlatform`]: a [`VecPlatform`] plus a control region per client, for tests of the
//! dispatch layer.

extern crate std;

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use protocol::control::ControlMemory;
use protocol::{ClientId, Error, PAGE_SIZE};

use super::VecPlatform;
use crate::{ControlAccess, InternalError};
use memserver_engine::Platform;

/// Windows in `Vec`s (through [`VecPlatform`]) and control regions in `Vec`s.
#[derive(Debug, Default)]
pub struct ServerPlatform {
    /// The windows.
    pub windows: VecPlatform,
    /// Control region bytes of each client.
    pub controls: BTreeMap<ClientId, ControlBytes>,
    /// Every internal error the dispatch logged.
    pub internal_errors: Vec<InternalError>,
}

/// A control region in a `Vec` (a sized [`ControlMemory`]).
#[derive(Debug, Default)]
pub struct ControlBytes(pub Vec<u8>);

impl ControlMemory for ControlBytes {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        self.0.as_slice().read(offset, dst)
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        self.0.as_mut_slice().write(offset, src)
    }
}

impl ServerPlatform {
    /// Gives `client` a zeroed control region of `size` bytes (replacing any earlier one), as
    /// a runner does before admitting it.
    pub fn create_control(&mut self, client: ClientId, size: usize) {
        self.controls.insert(client, ControlBytes(vec![0; size]));
    }

    /// The control region of `client`, as the client sees it (empty if it has none).
    pub fn control_bytes(&mut self, client: ClientId) -> &mut Vec<u8> {
        &mut self.controls.entry(client).or_default().0
    }
}

impl Platform for ServerPlatform {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        self.windows.map(client, first_page, frames)
    }

    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        self.windows.release(client, first_page, frames)
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.windows.read(client, offset, buf)
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.windows.write(client, offset, data)
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        self.windows.fill(client, offset, len, byte)
    }

    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        self.windows.private_frame(frame)
    }

    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        self.windows.private_release(frame)
    }
}

impl ControlAccess for ServerPlatform {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.controls.get_mut(&client).map(|v| v as &mut dyn ControlMemory)
    }

    fn internal_error(&mut self, error: &InternalError) {
        self.internal_errors.push(*error);
    }
}

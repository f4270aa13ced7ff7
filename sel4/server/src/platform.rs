//! The engine's [`Platform`] and the dispatch's [`ControlAccess`] on seL4: the frame table
//! plus the kernel and the memserver's own memory.
//!
//! Object memory is reached through the direct map of the pool, by copying only; a client's
//! control region is the one piece of client memory mapped here outright (the root task
//! maps it into both tasks), also copied in and out, bounds-checked.

use alloc::vec::Vec;

use memserver_dispatch::{ControlAccess, InternalError};
use memserver_engine::Platform;
use memserver_sel4_abi::{Region, ServerBoot};
use protocol::control::ControlMemory;
use protocol::{ClientId, Error, PAGE_SIZE};

use crate::frames::{FrameError, FrameTable};
use crate::kernel::{Kernel, Memory};

/// The memserver's platform on seL4.
pub struct Sel4Platform<K: Kernel, M: Memory> {
    /// The frame table.
    pub frames: FrameTable,
    /// The kernel.
    pub kernel: K,
    /// The memserver's own mapped memory.
    pub memory: M,
    /// Each client's control region in this task, by client id.
    controls: Vec<Option<Region>>,
    /// The client whose control region [`ControlAccess::control`] handed out last.
    control_client: ClientId,
    /// Platform operations that failed, and the first failure (the engine records each as a
    /// fault and the dispatch reports it through [`ControlAccess::internal_error`]).
    failures: u32,
    first_failure: Option<FrameError>,
}

impl<K: Kernel, M: Memory> Sel4Platform<K, M> {
    /// The platform for the clients of `boot`, over `frames`.
    pub fn new(boot: &ServerBoot, frames: FrameTable, kernel: K, memory: M) -> Result<Self, FrameError> {
        let mut controls = Vec::new();
        controls.try_reserve_exact(boot.session_count()).map_err(|_| FrameError::Memory)?;
        controls.resize(boot.session_count(), None);
        for c in &boot.clients {
            *controls.get_mut(usize::from(c.id)).ok_or(FrameError::OutOfRange)? = Some(c.control);
        }
        Ok(Sel4Platform { frames, kernel, memory, controls, control_client: 0, failures: 0, first_failure: None })
    }

    /// Platform operations that failed so far, and the first failure.
    pub fn failures(&self) -> (u32, Option<FrameError>) {
        (self.failures, self.first_failure)
    }

    /// Counts a failure and turns it into the engine's error.
    fn note<T>(&mut self, result: Result<T, FrameError>) -> Result<T, Error> {
        result.map_err(|e| {
            self.failures = self.failures.saturating_add(1);
            self.first_failure.get_or_insert(e);
            Error::from(e)
        })
    }

    fn control_region(&self) -> Option<Region> {
        self.controls.get(usize::from(self.control_client)).copied().flatten()
    }
}

impl<K: Kernel, M: Memory> Platform for Sel4Platform<K, M> {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        let result = self.frames.map(&mut self.kernel, &mut self.memory, client, first_page, frames);
        self.note(result)
    }

    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        let count = u32::try_from(frames.len()).map_err(|_| Error::Internal)?;
        let result = self.frames.release(&mut self.kernel, &mut self.memory, client, first_page, count, Some(frames));
        self.note(result)
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.frames.read(&self.memory, client, offset, buf).map_err(Error::from)
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        let result = self.frames.write(&mut self.memory, client, offset, data);
        self.note(result)
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        let result = self.frames.fill(&mut self.memory, client, offset, len, byte);
        self.note(result)
    }

    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        match self.frames.private_frame(&mut self.memory, frame) {
            Ok(page) => Ok(page),
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.first_failure.get_or_insert(e);
                Err(Error::from(e))
            }
        }
    }

    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        let result = self.frames.private_release(&mut self.memory, frame);
        self.note(result)
    }
}

impl<K: Kernel, M: Memory> ControlMemory for Sel4Platform<K, M> {
    fn len(&self) -> usize {
        self.control_region().map_or(0, |r| usize::try_from(r.len).unwrap_or(0))
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let region = self.control_region().ok_or(Error::InvalidArgument)?;
        let at = region.place(offset as u64, dst.len()).ok_or(Error::InvalidArgument)?;
        if self.memory.read(at, dst) { Ok(()) } else { Err(Error::InvalidArgument) }
    }

    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let region = self.control_region().ok_or(Error::InvalidArgument)?;
        let at = region.place(offset as u64, src.len()).ok_or(Error::InvalidArgument)?;
        if self.memory.write(at, src) { Ok(()) } else { Err(Error::InvalidArgument) }
    }
}

impl<K: Kernel, M: Memory> ControlAccess for Sel4Platform<K, M> {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.controls.get(usize::from(client)).copied().flatten()?;
        self.control_client = client;
        Some(self)
    }

    /// From the frames behind the object's pages (`seL4_ARM_Page_GetAddress`).
    fn bus_address(&mut self, client: ClientId, offset: u64, len: u32) -> Result<protocol::DmaAddress, Error> {
        let result = self.frames.bus_address(&mut self.kernel, client, offset, len);
        self.note(result)
    }

    /// One line on the serial log (the kernel's debug console never blocks the server).
    fn internal_error(&mut self, error: &InternalError) {
        let first = self.first_failure;
        self.kernel
            .debug_line(format_args!("memserver: internal error: {error:?} (frame table: first failure {first:?})"));
    }
}

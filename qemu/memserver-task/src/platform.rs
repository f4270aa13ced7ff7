//! The engine's [`Platform`] and the dispatch's [`ControlAccess`] on seL4.
//!
//! Every client's window and control region are frames the root task mapped
//! into this task's VSpace at boot (and into the client's). Object memory and
//! the control region are only ever copied in and out here, bounds-checked
//! against the mapping: never a reference into memory a client can write.
//! `map` has nothing to do (the whole window is mapped); `release` zeroes the
//! pages, so memory handed out again reads as fresh memory does on the host
//! (where the runner punches a hole into the memfd).

use alloc::vec::Vec;

use memserver_engine::Platform;
use memserver_dispatch::ControlAccess;
use memserver_task_abi::{Region, ServerBoot};
use protocol::control::ControlMemory;
use protocol::{ClientId, Error, PAGE_SIZE};

/// Where one client's memory is mapped in this task.
#[derive(Clone, Copy)]
struct Mapped {
    window: Region,
    control: Region,
}

/// The client memory of the memserver task.
pub struct Sel4Platform {
    /// By client id; `None` for ids that do not run on seL4.
    clients: Vec<Option<Mapped>>,
    /// The client whose control region [`ControlAccess::control`] handed out last.
    control_client: ClientId,
}

impl Sel4Platform {
    pub fn new(boot: &ServerBoot) -> Self {
        let mut clients = alloc::vec![None; boot.session_count()];
        for c in &boot.clients {
            if let Some(slot) = clients.get_mut(usize::from(c.id)) {
                *slot = Some(Mapped { window: c.window, control: c.control });
            }
        }
        Sel4Platform { clients, control_client: 0 }
    }

    fn mapped(&self, client: ClientId) -> Option<Mapped> {
        self.clients.get(usize::from(client)).copied().flatten()
    }

    /// The address of `len` bytes at `offset` of `region`, if they lie inside it.
    fn place(region: Region, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(u64::try_from(len).ok()?)?;
        (end <= region.len).then(|| (region.addr + offset) as *mut u8)
    }

    fn window_place(&self, client: ClientId, offset: u64, len: usize) -> Option<*mut u8> {
        Self::place(self.mapped(client)?.window, offset, len)
    }
}

impl Platform for Sel4Platform {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        let offset = u64::from(first_page) * PAGE_SIZE as u64;
        let len = frames.len().checked_mul(PAGE_SIZE).ok_or(Error::OutOfMemory)?;
        self.window_place(client, offset, len).map(|_| ()).ok_or(Error::OutOfMemory)
    }

    fn release(&mut self, client: ClientId, first_page: u32, count: u32) {
        let offset = u64::from(first_page) * PAGE_SIZE as u64;
        self.fill(client, offset, count as usize * PAGE_SIZE, 0);
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) {
        match self.window_place(client, offset, buf.len()) {
            // SAFETY: `at .. at + len` lies inside the client's window, mapped
            // read-write here for the task's life; a byte copy needs no
            // alignment, and a client writing concurrently only changes the
            // bytes copied, which the engine validates after the copy.
            Some(at) => unsafe { core::ptr::copy_nonoverlapping(at, buf.as_mut_ptr(), buf.len()) },
            None => buf.fill(0),
        }
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) {
        if let Some(at) = self.window_place(client, offset, data.len()) {
            // SAFETY: as in `read`.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at, data.len()) }
        }
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) {
        if let Some(at) = self.window_place(client, offset, len) {
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_bytes(at, byte, len) }
        }
    }
}

impl ControlMemory for Sel4Platform {
    fn len(&self) -> usize {
        self.mapped(self.control_client).map_or(0, |m| m.control.len as usize)
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let region = self.mapped(self.control_client).ok_or(Error::InvalidArgument)?.control;
        let at = Self::place(region, offset as u64, dst.len()).ok_or(Error::InvalidArgument)?;
        // SAFETY: `at .. at + len` lies inside the client's control region,
        // mapped read-write here for the task's life; the dispatch validates
        // the copy before acting on it.
        unsafe { core::ptr::copy_nonoverlapping(at, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let region = self.mapped(self.control_client).ok_or(Error::InvalidArgument)?.control;
        let at = Self::place(region, offset as u64, src.len()).ok_or(Error::InvalidArgument)?;
        // SAFETY: as in `read`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), at, src.len()) };
        Ok(())
    }
}

impl ControlAccess for Sel4Platform {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.mapped(client)?;
        self.control_client = client;
        Some(self)
    }
}

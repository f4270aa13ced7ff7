//! The frame table: the state of every pool frame and the page → frame map of every client
//! window, kept in step with the kernel's capabilities and mappings.
//!
//! Pool frame `f` has its original capability in slot `pool + f`, mapped for the task's life
//! in the memserver's direct map. While the engine has given it to a client, a copy (a child
//! of the original) in slot `derived + f` maps it into that client's window; one frame is in
//! at most one window. Giving a frame back is, in this order: unmap the copy from the client,
//! delete the copy, revoke the original (no child may survive), zero the frame through the
//! direct map; only then is it free for the next client. A frame whose release the kernel
//! refused half way is `Lost`: never handed out again, and the census shows it.

use alloc::vec::Vec;

use memserver_sel4_abi::layout::Paging;
use memserver_sel4_abi::{Census, ServerBoot, ServerSlots};
use protocol::{ClientId, DmaAddress, PAGE_SIZE};

use crate::kernel::{Kernel, KernelError, Memory};
use crate::space::{Space, SpaceError, Tables};

/// A window page with no frame.
const NO_FRAME: u32 = u32::MAX;
const PAGE: u64 = PAGE_SIZE as u64;

/// Where one pool frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameState {
    /// Zeroed, unmapped from every client, no derived capability.
    Free,
    /// Mapped at `page` of window `window` (an index into the table's windows).
    Mapped {
        /// The window's index.
        window: u16,
        /// The window page.
        page: u32,
    },
    /// Server-private memory (engine metadata), never mapped into a client.
    Private,
    /// Its release failed half way: kept out of use.
    Lost,
}

/// Why a frame-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// No seL4 client with that id.
    NoSuchClient,
    /// Pages or bytes outside the client's window, or a frame outside the pool.
    OutOfRange,
    /// The frame is not free (mapping it twice would share it between windows).
    FrameInUse(u32),
    /// The window page has a frame already.
    PageInUse(u32),
    /// The window page has no frame.
    NotMapped(u32),
    /// The engine named other frames than the table holds for those pages.
    Mismatch,
    /// A table could not be made.
    Space(SpaceError),
    /// The kernel refused.
    Kernel(KernelError),
    /// The direct map refused a copy.
    Memory,
}

impl From<SpaceError> for FrameError {
    fn from(e: SpaceError) -> Self {
        FrameError::Space(e)
    }
}

impl From<FrameError> for protocol::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::NoSuchClient | FrameError::OutOfRange | FrameError::NotMapped(_) => {
                protocol::Error::InvalidArgument
            }
            FrameError::Space(SpaceError::ReserveExhausted | SpaceError::NoMemory) => protocol::Error::OutOfMemory,
            _ => protocol::Error::OutOfMemory,
        }
    }
}

/// What the engine counts, to set beside the frame table in the census.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCount {
    /// Frames its clients hold in their windows (`frames_used - tracking_frames`, all clients).
    pub mapped: u32,
    /// Its free frames.
    pub free: u32,
    /// Private frames it holds (the clients' STORE_USER record frames).
    pub private: u32,
    /// Frames it quarantined.
    pub quarantined: u32,
    /// `server.pool_pages`.
    pub pool_pages: u32,
}

/// One client's window.
#[derive(Debug)]
struct Window {
    id: ClientId,
    space: Space,
    /// Page → frame, [`NO_FRAME`] where unmapped.
    pages: Vec<u32>,
    mapped: u32,
}

/// The frame table of the memserver task.
#[derive(Debug)]
pub struct FrameTable {
    slots: ServerSlots,
    paging: Paging,
    direct_map: u64,
    frames: Vec<FrameState>,
    windows: Vec<Window>,
    /// Client id → window index + 1 (0: no seL4 client with that id).
    by_client: Vec<u16>,
    /// The direct map's range of the memserver's own VSpace.
    server: Space,
    tables: Tables,
}

fn set_state(frames: &mut [FrameState], frame: u32, state: FrameState) {
    if let Some(s) = frames.get_mut(frame as usize) {
        *s = state;
    }
}

fn vec_of<T: Clone>(value: T, len: usize) -> Result<Vec<T>, FrameError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| FrameError::Space(SpaceError::NoMemory))?;
    v.resize(len, value);
    Ok(v)
}

impl FrameTable {
    /// Every frame free, every window empty, no table made: as the root task hands over.
    pub fn new(boot: &ServerBoot) -> Result<FrameTable, FrameError> {
        let paging = boot.paging;
        let mut windows = Vec::new();
        windows.try_reserve_exact(boot.clients.len()).map_err(|_| FrameError::Space(SpaceError::NoMemory))?;
        let mut by_client = vec_of(0u16, boot.session_count())?;
        for (i, c) in boot.clients.iter().enumerate() {
            let space = Space::new(&paging, boot.slots.client_vspaces + i as u64, c.window_base, c.window_pages)?;
            let pages = vec_of(NO_FRAME, usize::try_from(c.window_pages).map_err(|_| FrameError::OutOfRange)?)?;
            windows.push(Window { id: c.id, space, pages, mapped: 0 });
            *by_client.get_mut(usize::from(c.id)).ok_or(FrameError::OutOfRange)? = i as u16 + 1;
        }
        let frames = vec_of(FrameState::Free, usize::try_from(boot.pool_frames).map_err(|_| FrameError::OutOfRange)?)?;
        let server = Space::new(&paging, boot.slots.own_vspace, boot.direct_map, boot.pool_frames)?;
        let tables = Tables::new(boot.slots.paging_untyped, &boot.paging_untyped_bits, boot.slots.tables)?;
        Ok(FrameTable {
            slots: boot.slots,
            paging,
            direct_map: boot.direct_map,
            frames,
            windows,
            by_client,
            server,
            tables,
        })
    }

    /// Frames in the pool.
    pub fn pool_frames(&self) -> u32 {
        self.frames.len() as u32
    }

    /// Where frame `f` is in the memserver's direct map.
    fn direct_addr(&self, frame: u32) -> u64 {
        self.direct_map + u64::from(frame) * PAGE
    }

    /// Maps every pool frame (its original capability) into the memserver's direct map, with
    /// the tables that needs. Done once, at start-up.
    pub fn map_direct(&mut self, kernel: &mut impl Kernel) -> Result<(), FrameError> {
        for frame in 0..self.pool_frames() {
            let vaddr = self.direct_addr(frame);
            self.server.ensure_tables(&self.paging, &mut self.tables, kernel, vaddr)?;
            kernel
                .map_frame(self.slots.pool + u64::from(frame), self.slots.own_vspace, vaddr)
                .map_err(FrameError::Kernel)?;
        }
        Ok(())
    }

    fn window_index(&self, client: ClientId) -> Result<usize, FrameError> {
        match self.by_client.get(usize::from(client)) {
            Some(&i) if i > 0 => Ok(usize::from(i) - 1),
            _ => Err(FrameError::NoSuchClient),
        }
    }

    fn state(&self, frame: u32) -> Result<FrameState, FrameError> {
        self.frames.get(frame as usize).copied().ok_or(FrameError::OutOfRange)
    }

    /// Maps `frames` at window pages `first_page..` of `client`: per frame a derived
    /// capability, mapped read-write into the client's VSpace (tables made on demand). All or
    /// nothing: on a failure the frames mapped by this call are released again (and zeroed:
    /// the client may have written to them meanwhile).
    pub fn map(
        &mut self,
        kernel: &mut impl Kernel,
        memory: &mut impl Memory,
        client: ClientId,
        first_page: u32,
        frames: &[u32],
    ) -> Result<(), FrameError> {
        let w = self.window_index(client)?;
        for (i, &frame) in frames.iter().enumerate() {
            let page = first_page.checked_add(i as u32).ok_or(FrameError::OutOfRange)?;
            if let Err(e) = self.map_one(kernel, w, page, frame) {
                if i > 0 {
                    // Best effort: what cannot be undone is Lost and the census says so.
                    let _ = self.release_pages(kernel, memory, w, first_page, i as u32, None);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn map_one(&mut self, kernel: &mut impl Kernel, w: usize, page: u32, frame: u32) -> Result<(), FrameError> {
        if self.state(frame)? != FrameState::Free {
            return Err(FrameError::FrameInUse(frame));
        }
        let window = self.windows.get_mut(w).ok_or(FrameError::NoSuchClient)?;
        let vaddr = window.space.page_addr(page).ok_or(FrameError::OutOfRange)?;
        match window.pages.get(page as usize) {
            Some(&NO_FRAME) => {}
            Some(_) => return Err(FrameError::PageInUse(page)),
            None => return Err(FrameError::OutOfRange),
        }
        window.space.ensure_tables(&self.paging, &mut self.tables, kernel, vaddr)?;
        let derived = self.slots.derived + u64::from(frame);
        kernel.copy_cap(self.slots.pool + u64::from(frame), derived).map_err(FrameError::Kernel)?;
        if let Err(e) = kernel.map_frame(derived, window.space.vspace, vaddr) {
            // The copy was never mapped: deleting it is all there is to undo.
            if kernel.delete_cap(derived).is_err() {
                set_state(&mut self.frames, frame, FrameState::Lost);
            }
            return Err(FrameError::Kernel(e));
        }
        if let Some(slot) = window.pages.get_mut(page as usize) {
            *slot = frame;
        }
        window.mapped += 1;
        set_state(&mut self.frames, frame, FrameState::Mapped { window: w as u16, page });
        Ok(())
    }

    /// Gives back window pages `first_page..first_page + count` of `client`: unmapped from
    /// the client, derived capabilities deleted, originals revoked, frames zeroed and free.
    /// `expected`, when given, are the frames the engine believes back those pages. Every
    /// page is attempted; the first failure is returned.
    pub fn release(
        &mut self,
        kernel: &mut impl Kernel,
        memory: &mut impl Memory,
        client: ClientId,
        first_page: u32,
        count: u32,
        expected: Option<&[u32]>,
    ) -> Result<(), FrameError> {
        let w = self.window_index(client)?;
        self.release_pages(kernel, memory, w, first_page, count, expected)
    }

    fn release_pages(
        &mut self,
        kernel: &mut impl Kernel,
        memory: &mut impl Memory,
        w: usize,
        first_page: u32,
        count: u32,
        expected: Option<&[u32]>,
    ) -> Result<(), FrameError> {
        let mut result = Ok(());
        for i in 0..count {
            let Some(page) = first_page.checked_add(i) else { return Err(FrameError::OutOfRange) };
            let step = self.release_page(kernel, memory, w, page, expected.and_then(|e| e.get(i as usize).copied()));
            if result.is_ok() {
                result = step;
            }
        }
        result
    }

    fn release_page(
        &mut self,
        kernel: &mut impl Kernel,
        memory: &mut impl Memory,
        w: usize,
        page: u32,
        expected: Option<u32>,
    ) -> Result<(), FrameError> {
        let window = self.windows.get_mut(w).ok_or(FrameError::NoSuchClient)?;
        let slot = window.pages.get_mut(page as usize).ok_or(FrameError::OutOfRange)?;
        let frame = *slot;
        if frame == NO_FRAME {
            return Err(FrameError::NotMapped(page));
        }
        *slot = NO_FRAME;
        window.mapped = window.mapped.saturating_sub(1);
        let derived = self.slots.derived + u64::from(frame);
        let steps = kernel
            .unmap_frame(derived)
            .and_then(|()| kernel.delete_cap(derived))
            .and_then(|()| kernel.revoke_cap(self.slots.pool + u64::from(frame)))
            .map_err(FrameError::Kernel)
            .and_then(|()| {
                if memory.fill(self.direct_map + u64::from(frame) * PAGE, PAGE_SIZE, 0) {
                    Ok(())
                } else {
                    Err(FrameError::Memory)
                }
            });
        set_state(&mut self.frames, frame, if steps.is_ok() { FrameState::Free } else { FrameState::Lost });
        steps?;
        match expected {
            Some(e) if e != frame => Err(FrameError::Mismatch),
            _ => Ok(()),
        }
    }

    /// Calls `f(address in the direct map, range in the buffer)` for each page piece of
    /// `len` bytes at `offset` of `client`'s window; every page must have a frame.
    fn for_each_piece(
        &self,
        client: ClientId,
        offset: u64,
        len: usize,
        mut f: impl FnMut(u64, core::ops::Range<usize>) -> bool,
    ) -> Result<(), FrameError> {
        let window = self.windows.get(self.window_index(client)?).ok_or(FrameError::NoSuchClient)?;
        let mut done = 0usize;
        while done < len {
            let at = offset.checked_add(done as u64).ok_or(FrameError::OutOfRange)?;
            let page = u32::try_from(at / PAGE).map_err(|_| FrameError::OutOfRange)?;
            let frame = *window.pages.get(page as usize).ok_or(FrameError::OutOfRange)?;
            if frame == NO_FRAME {
                return Err(FrameError::NotMapped(page));
            }
            let in_page = (at % PAGE) as usize;
            let n = (PAGE_SIZE - in_page).min(len - done);
            if !f(self.direct_addr(frame) + in_page as u64, done..done + n) {
                return Err(FrameError::Memory);
            }
            done += n;
        }
        Ok(())
    }

    /// Copies object memory of `client` at window `offset` out, through the direct map.
    pub fn read(&self, memory: &impl Memory, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), FrameError> {
        let len = buf.len();
        self.for_each_piece(client, offset, len, |addr, range| buf.get_mut(range).is_some_and(|b| memory.read(addr, b)))
    }

    /// Copies `data` into object memory of `client` at window `offset`.
    pub fn write(
        &self,
        memory: &mut impl Memory,
        client: ClientId,
        offset: u64,
        data: &[u8],
    ) -> Result<(), FrameError> {
        self.for_each_piece(client, offset, data.len(), |addr, range| {
            data.get(range).is_some_and(|d| memory.write(addr, d))
        })
    }

    /// Sets `len` bytes of object memory of `client` at window `offset` to `byte`.
    pub fn fill(
        &self,
        memory: &mut impl Memory,
        client: ClientId,
        offset: u64,
        len: usize,
        byte: u8,
    ) -> Result<(), FrameError> {
        self.for_each_piece(client, offset, len, |addr, range| memory.fill(addr, range.len(), byte))
    }

    /// Pool frame `frame` as server-private memory: a free frame becomes private (the
    /// engine's own metadata) until [`private_release`](Self::private_release); a mapped one
    /// is refused.
    pub fn private_frame<'m>(
        &mut self,
        memory: &'m mut impl Memory,
        frame: u32,
    ) -> Result<&'m mut [u8; PAGE_SIZE], FrameError> {
        match self.state(frame)? {
            FrameState::Free | FrameState::Private => {}
            _ => return Err(FrameError::FrameInUse(frame)),
        }
        set_state(&mut self.frames, frame, FrameState::Private);
        memory.private_page(self.direct_addr(frame)).ok_or(FrameError::Memory)
    }

    /// A private frame goes back: zeroed through the direct map, free. Refused for a frame
    /// that is not private.
    pub fn private_release(&mut self, memory: &mut impl Memory, frame: u32) -> Result<(), FrameError> {
        if self.state(frame)? != FrameState::Private {
            return Err(FrameError::FrameInUse(frame));
        }
        if !memory.fill(self.direct_addr(frame), PAGE_SIZE, 0) {
            set_state(&mut self.frames, frame, FrameState::Lost);
            return Err(FrameError::Memory);
        }
        set_state(&mut self.frames, frame, FrameState::Free);
        Ok(())
    }

    /// The frame behind window page `page` of `client`.
    fn frame_at(&self, client: ClientId, page: u64) -> Result<u32, FrameError> {
        let window = self.windows.get(self.window_index(client)?).ok_or(FrameError::NoSuchClient)?;
        let page = u32::try_from(page).map_err(|_| FrameError::OutOfRange)?;
        match window.pages.get(page as usize) {
            Some(&NO_FRAME) => Err(FrameError::NotMapped(page)),
            Some(&frame) => Ok(frame),
            None => Err(FrameError::OutOfRange),
        }
    }

    /// The physical address of `len` bytes at window `offset` of `client` (every page must
    /// have a frame): `seL4_ARM_Page_GetAddress` of the first page's frame plus the offset in
    /// the page, and how many bytes from there are physically contiguous (up to `len`: the
    /// run stops at the first page whose frame does not follow the previous one).
    pub fn bus_address(
        &self,
        kernel: &mut impl Kernel,
        client: ClientId,
        offset: u64,
        len: u32,
    ) -> Result<DmaAddress, FrameError> {
        let first = offset / PAGE;
        let last = offset.checked_add(u64::from(len.max(1)) - 1).ok_or(FrameError::OutOfRange)? / PAGE;
        let address = |kernel: &mut _, page| -> Result<u64, FrameError> {
            let frame = self.frame_at(client, page)?;
            Kernel::frame_address(kernel, self.slots.pool + u64::from(frame)).map_err(FrameError::Kernel)
        };
        let base = address(kernel, first)?;
        let mut end = base + PAGE;
        for page in first + 1..=last {
            if address(kernel, page)? != end {
                break;
            }
            end += PAGE;
        }
        let addr = base + offset % PAGE;
        let contiguous = u32::try_from((end - addr).min(u64::from(len))).unwrap_or(len);
        Ok(DmaAddress { addr, contiguous })
    }

    /// Frames mapped into `client`'s window.
    pub fn mapped_of(&self, client: ClientId) -> u32 {
        self.window_index(client).ok().and_then(|w| self.windows.get(w)).map_or(0, |w| w.mapped)
    }

    /// The census from this table, checking with the kernel that each mapped frame's derived
    /// capability exists, beside the engine's own figures.
    pub fn census(&self, kernel: &mut impl Kernel, engine: EngineCount) -> Census {
        let mut census = Census {
            accounted: engine.mapped,
            engine_free: engine.free,
            engine_private: engine.private,
            engine_quarantined: engine.quarantined,
            pool_pages: engine.pool_pages,
            pool: self.pool_frames(),
            tables: self.tables.made(),
            tables_reserved: u32::try_from(self.tables.capacity()).unwrap_or(u32::MAX),
            ..Census::default()
        };
        for (f, state) in self.frames.iter().enumerate() {
            match state {
                FrameState::Free => census.free += 1,
                FrameState::Private => census.private += 1,
                FrameState::Lost => census.lost += 1,
                FrameState::Mapped { .. } => {
                    census.mapped += 1;
                    if kernel.frame_address(self.slots.derived + f as u64).is_ok() {
                        census.derived_caps += 1;
                    }
                }
            }
        }
        census
    }

    /// Tables made so far: (for client windows, for the direct map).
    pub fn tables_made(&self) -> (u32, u32) {
        (self.windows.iter().map(|w| w.space.tables()).sum(), self.server.tables())
    }

    /// Checks that the windows and the frame states describe the same mappings.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut mapped = 0u32;
        for (w, window) in self.windows.iter().enumerate() {
            let mut count = 0u32;
            for (page, &frame) in window.pages.iter().enumerate() {
                if frame == NO_FRAME {
                    continue;
                }
                count += 1;
                if self.frames.get(frame as usize) != Some(&FrameState::Mapped { window: w as u16, page: page as u32 })
                {
                    return Err("a window page's frame does not point back to it");
                }
            }
            if count != window.mapped {
                return Err("a window's mapped count is off");
            }
            mapped += count;
        }
        let states = self.frames.iter().filter(|s| matches!(s, FrameState::Mapped { .. })).count();
        if states != mapped as usize {
            return Err("a frame is mapped into no window page");
        }
        if self.windows.iter().any(|w| self.by_client.get(usize::from(w.id)).is_none()) {
            return Err("a window's client id has no entry");
        }
        Ok(())
    }
}

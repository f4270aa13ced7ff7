//! Client memory on the host: each client's window and control region are `memfd`s, mapped
//! `MAP_SHARED` here and (after `SCM_RIGHTS`) in the client.
//!
//! Everything the client can write is reached only through [`PeerMemory`] (volatile copies,
//! the project's one type for distrusted shared memory): no Rust reference ever points into
//! shared memory, so the compiler never assumes the peer cannot change it. Every access is
//! bounds-checked; out of range is `false` / an error, never a panic. The memfds are
//! sealed against shrinking, so a client cannot `ftruncate` its window under the server's
//! mapping (which would turn a server read into `SIGBUS`).
//!
//! Beside each window the runner keeps the pages the engine granted ([`Grants`], fed by
//! [`Windows::map`] and [`Windows::release`], i.e. by the engine's `Platform::map`/`release`)
//! and what the [`audit`](crate::audit) of that window found. When a client's memory is
//! dropped the whole window and control region are punched out, so everything a client left
//! there goes back to the OS even if the client still maps it.

use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};

use peer_memory::PeerMemory;
use protocol::{ClientId, PAGE_SIZE};

use crate::audit::{AuditPolicy, AuditRecord, Verdict};
use crate::grants::Grants;
use rustix::fs::{FallocateFlags, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// Why a window operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryError {
    /// No client with that id is connected.
    NoSuchClient,
    /// The pages or bytes named lie (partly) outside the client's window or control region.
    OutOfRange,
    /// The OS refused (memfd_create, ftruncate, mmap, fallocate).
    Os(Errno),
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::NoSuchClient => f.write_str("no such client"),
            MemoryError::OutOfRange => f.write_str("out of the client's window"),
            MemoryError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl From<Errno> for MemoryError {
    fn from(e: Errno) -> Self {
        MemoryError::Os(e)
    }
}

/// One shared memory object: a sealed memfd and its `MAP_SHARED` mapping in this process.
pub struct SharedRegion {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
    /// The mapping as distrusted memory: every read and write of it.
    peer: PeerMemory,
}

impl SharedRegion {
    /// Creates a zero-filled memfd of `len` bytes (pages committed only when touched), seals its
    /// size and maps it read-write.
    pub fn create(name: &str, len: usize) -> Result<SharedRegion, MemoryError> {
        // PAGE_SIZE is a power of two (and `is_multiple_of` is newer than our MSRV).
        if len == 0 || len & (PAGE_SIZE - 1) != 0 {
            return Err(MemoryError::OutOfRange);
        }
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        // SAFETY: a fresh mapping chosen by the kernel (null hint, no MAP_FIXED) overlaps no
        // existing Rust object; `fd` is a memfd of exactly `len` bytes that can no longer shrink.
        let base = unsafe {
            rustix::mm::mmap(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, &fd, 0)?
        };
        let base = NonNull::new(base.cast::<u8>()).ok_or(MemoryError::Os(Errno::NOMEM))?;
        // SAFETY: `base .. base + len` is the mapping just made, read-write, unmapped only when
        // this SharedRegion drops (the PeerMemory lives inside it); nothing here ever forms a
        // reference into it.
        let peer = unsafe { PeerMemory::new(base, len) };
        Ok(SharedRegion { fd, base, len, peer })
    }

    /// The memfd, to pass to the client.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes (never, once created).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `offset .. offset + len` as a `usize` range inside the region, or `None`.
    fn range(&self, offset: u64, len: usize) -> Option<usize> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.len).then_some(start)
    }

    /// Copies `buf.len()` bytes at `offset` out of the region; `false` (and `buf` untouched) if
    /// out of range. The peer may write the source concurrently: a volatile copy, validated by
    /// the caller.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        usize::try_from(offset).is_ok_and(|offset| self.peer.read(offset, buf))
    }

    /// Copies `data` into the region at `offset`; `false` (nothing written) if out of range.
    pub fn write(&self, offset: u64, data: &[u8]) -> bool {
        usize::try_from(offset).is_ok_and(|offset| self.peer.write(offset, data))
    }

    /// The aligned u32 at `offset` (one volatile load; the peer may be writing it); `None` if
    /// out of range or misaligned.
    #[inline]
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        self.peer.load_u32(offset)
    }

    /// Stores `value` into the aligned u32 at `offset`; `false` if out of range or misaligned.
    #[inline]
    pub fn store_u32(&self, offset: usize, value: u32) -> bool {
        self.peer.store_u32(offset, value)
    }

    /// Sets `len` bytes at `offset` to `byte`; `false` (nothing written) if out of range.
    pub fn fill(&self, offset: u64, len: u64, byte: u8) -> bool {
        let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else { return false };
        self.peer.fill(offset, len, byte)
    }

    /// Gives pages `first_page .. first_page + count` back to the OS: they read as zero
    /// afterwards, here and in the client, and stop counting as resident anywhere.
    pub fn release(&self, first_page: u64, count: u64) -> Result<(), MemoryError> {
        let (offset, len) = page_range(first_page, count).ok_or(MemoryError::OutOfRange)?;
        self.range(offset, usize::try_from(len).map_err(|_| MemoryError::OutOfRange)?)
            .ok_or(MemoryError::OutOfRange)?;
        if len == 0 {
            return Ok(());
        }
        rustix::fs::fallocate(&self.fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, len)?;
        Ok(())
    }

    /// Pages of the memfd that hold memory right now (from `st_blocks`), in 4 KiB pages.
    #[inline]
    pub fn resident_pages(&self) -> Result<u64, MemoryError> {
        let stat = rustix::fs::fstat(&self.fd)?;
        Ok(u64::try_from(stat.st_blocks).unwrap_or(0) * 512 / PAGE_SIZE as u64)
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // Everything back to the OS, even if a peer keeps the memfd mapped after we are gone.
        let _ =
            rustix::fs::fallocate(&self.fd, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, 0, self.len as u64);
        // SAFETY: `base .. base + len` is the mapping made in `create`, owned by this value and
        // unmapped only here; no reference into it exists (all access goes through raw copies).
        // A failure leaves a leaked mapping, which is harmless.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// `(byte offset, byte length)` of a page range, or `None` on overflow.
fn page_range(first_page: u64, count: u64) -> Option<(u64, u64)> {
    let page = PAGE_SIZE as u64;
    Some((first_page.checked_mul(page)?, count.checked_mul(page)?))
}

/// The server's private pool frames (engine metadata such as STORE_USER records, never mapped
/// into a client): one anonymous `MAP_PRIVATE | MAP_NORESERVE` mapping of one page per pool
/// frame (no transparent huge pages), committed by the kernel only where touched; a frame
/// going back to the pool is given back to the OS (`madvise(MADV_DONTNEED)`), so only frames
/// in use cost memory.
pub struct PrivateFrames {
    base: NonNull<u8>,
    frames: u32,
}

impl PrivateFrames {
    /// Reserves address space for `frames` pool frames (no memory is committed yet).
    pub fn new(frames: u32) -> Result<PrivateFrames, MemoryError> {
        let len = Self::span(frames.max(1)).ok_or(MemoryError::OutOfRange)?;
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
        // SAFETY: a fresh anonymous mapping chosen by the kernel (null hint, no MAP_FIXED)
        // overlaps no existing Rust object; it is owned by the value built here.
        let base =
            unsafe { rustix::mm::mmap_anonymous(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, flags)? };
        let base = NonNull::new(base.cast::<u8>()).ok_or(MemoryError::Os(Errno::NOMEM))?;
        let private = PrivateFrames { base, frames };
        // Frames are used and given back one page at a time: a transparent huge page would
        // make a whole 2 MiB resident for one frame. (The distinct flag also keeps the mapping
        // its own in /proc/self/smaps, where its resident size is the frames in use.)
        // SAFETY: the range is exactly the mapping just made; the advice changes no contents.
        unsafe { rustix::mm::madvise(base.as_ptr().cast::<c_void>(), len, rustix::mm::Advice::LinuxNoHugepage)? };
        Ok(private)
    }

    fn span(frames: u32) -> Option<usize> {
        usize::try_from(frames).ok()?.checked_mul(PAGE_SIZE)
    }

    /// The bytes of frame `frame` (zero the first time, and after [`release`](Self::release)).
    pub fn frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], MemoryError> {
        if frame >= self.frames {
            return Err(MemoryError::OutOfRange);
        }
        let offset = Self::span(frame).ok_or(MemoryError::OutOfRange)?;
        // SAFETY: `frame < self.frames`, so `offset .. offset + PAGE_SIZE` lies inside the
        // mapping made in `new`, which lives as long as `self`. The mapping is private and
        // anonymous: no other process and no other Rust reference can reach these bytes, and
        // the `&mut self` borrow keeps this the only reference until it ends. Anonymous memory
        // is always initialised (zero-filled), and `[u8; N]` has alignment 1.
        Ok(unsafe { &mut *self.base.as_ptr().add(offset).cast::<[u8; PAGE_SIZE]>() })
    }

    /// The bytes of frame `frame`, to read.
    pub fn bytes(&self, frame: u32) -> Result<&[u8; PAGE_SIZE], MemoryError> {
        if frame >= self.frames {
            return Err(MemoryError::OutOfRange);
        }
        let offset = Self::span(frame).ok_or(MemoryError::OutOfRange)?;
        // SAFETY: as in `frame`: inside the private anonymous mapping, which lives as long as
        // `self`; the `&self` borrow excludes every `&mut` handed out by `frame`, and nothing
        // else can write these bytes.
        Ok(unsafe { &*self.base.as_ptr().add(offset).cast::<[u8; PAGE_SIZE]>() })
    }

    /// Gives frame `frame`'s memory back to the OS; it reads as zero next time.
    pub fn release(&mut self, frame: u32) -> Result<(), MemoryError> {
        if frame >= self.frames {
            return Err(MemoryError::OutOfRange);
        }
        let offset = Self::span(frame).ok_or(MemoryError::OutOfRange)?;
        // SAFETY: the page lies inside the mapping (checked above); no reference into it is
        // alive (`frame` hands out references tied to `&mut self`, which this call holds), so
        // discarding its contents invalidates nothing Rust can see.
        unsafe {
            rustix::mm::madvise(
                self.base.as_ptr().add(offset).cast::<c_void>(),
                PAGE_SIZE,
                rustix::mm::Advice::LinuxDontNeed,
            )?
        };
        Ok(())
    }
}

impl Drop for PrivateFrames {
    fn drop(&mut self) {
        if let Some(len) = Self::span(self.frames.max(1)) {
            // SAFETY: `base .. base + len` is the mapping made in `new`, owned by this value and
            // unmapped only here; no reference into it outlives the `&mut self` borrows of
            // `frame`. A failure leaves a leaked mapping, which is harmless.
            let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast::<c_void>(), len) };
        }
    }
}

/// A connected client's memory: its window (slab memory, handles are offsets into it) and its
/// control region (the magazines, layout owned by the protocol crate).
pub struct ClientMemory {
    /// The window.
    pub window: SharedRegion,
    /// The control region.
    pub control: SharedRegion,
    /// The window pages the engine granted.
    pub grants: Grants,
    /// What the audits of the window found.
    pub audit: AuditRecord,
}

impl ClientMemory {
    /// Creates both memfds for `name`, `window_len` and `control_len` bytes (page multiples).
    pub fn create(name: &str, window_len: usize, control_len: usize) -> Result<ClientMemory, MemoryError> {
        Ok(ClientMemory {
            window: SharedRegion::create(&format!("memserver-window-{name}"), window_len)?,
            control: SharedRegion::create(&format!("memserver-control-{name}"), control_len)?,
            grants: Grants::new((window_len / PAGE_SIZE) as u64),
            audit: AuditRecord::default(),
        })
    }
}

/// One window's grant as the runner knows it (for `Stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowUsage {
    /// Pages the engine granted.
    pub granted_pages: u64,
    /// Pages the memfd holds now (`st_blocks`).
    pub resident_pages: u64,
    /// Audits that found more resident than granted plus slack, since admission.
    pub violations: u32,
}

/// The memory of every connected client, indexed by [`ClientId`]; what the engine's platform
/// layer reaches client memory through.
#[derive(Default)]
pub struct Windows {
    clients: Vec<Option<ClientMemory>>,
}

impl Windows {
    /// An empty table.
    pub fn new() -> Windows {
        Windows::default()
    }

    /// Installs `client`'s memory (replacing and unmapping any earlier one).
    pub fn insert(&mut self, client: ClientId, memory: ClientMemory) {
        let index = usize::from(client);
        if self.clients.len() <= index {
            self.clients.resize_with(index + 1, || None);
        }
        self.clients[index] = Some(memory);
    }

    /// Removes `client`'s memory; dropping the result unmaps it and closes the memfds.
    pub fn remove(&mut self, client: ClientId) -> Option<ClientMemory> {
        self.clients.get_mut(usize::from(client))?.take()
    }

    /// `client`'s memory, if connected.
    pub fn get(&self, client: ClientId) -> Option<&ClientMemory> {
        self.clients.get(usize::from(client))?.as_ref()
    }

    fn window(&self, client: ClientId) -> Result<&SharedRegion, MemoryError> {
        self.get(client).map(|m| &m.window).ok_or(MemoryError::NoSuchClient)
    }

    /// Window size in bytes, if connected.
    #[allow(dead_code)]
    pub fn window_len(&self, client: ClientId) -> Option<u64> {
        self.get(client).map(|m| m.window.len() as u64)
    }

    /// Control region size in bytes, if connected.
    pub fn control_len(&self, client: ClientId) -> Option<usize> {
        self.get(client).map(|m| m.control.len())
    }

    fn get_mut(&mut self, client: ClientId) -> Result<&mut ClientMemory, MemoryError> {
        self.clients.get_mut(usize::from(client)).and_then(Option::as_mut).ok_or(MemoryError::NoSuchClient)
    }

    /// Grants window pages `first_page ..` (backed by pool `frames`) to the client. On the host
    /// the memfd commits pages when first touched, so this records the grant the audit holds
    /// the client to; on seL4 the same call maps the frames.
    pub fn map(&mut self, client: ClientId, first_page: u64, frames: &[u32]) -> Result<(), MemoryError> {
        let memory = self.get_mut(client)?;
        memory.grants.grant(first_page, frames.len() as u64).map_err(|_| MemoryError::OutOfRange)
    }

    /// Returns window pages `first_page .. first_page + count` to the OS
    /// (`fallocate(PUNCH_HOLE | KEEP_SIZE)`: resident memory really falls, and the pages read as
    /// zero, here and in the client) and takes back their grant.
    pub fn release(&mut self, client: ClientId, first_page: u64, count: u64) -> Result<(), MemoryError> {
        let memory = self.get_mut(client)?;
        memory.grants.range_check(first_page, count).map_err(|_| MemoryError::OutOfRange)?;
        memory.window.release(first_page, count)?;
        memory.grants.revoke(first_page, count).map_err(|_| MemoryError::OutOfRange)
    }

    /// Audits `client`'s window against its grant ([`audit`](crate::audit::audit)).
    #[inline]
    pub fn audit(
        &mut self,
        client: ClientId,
        policy: &AuditPolicy,
        now: impl FnOnce() -> std::time::Instant,
    ) -> Result<Verdict, MemoryError> {
        let memory = self.get_mut(client)?;
        crate::audit::audit(&memory.window, &memory.grants, &mut memory.audit, policy, now)
    }

    /// `client`'s granted and resident pages and violations, if connected.
    pub fn usage(&self, client: ClientId) -> Option<WindowUsage> {
        let memory = self.get(client)?;
        Some(WindowUsage {
            granted_pages: memory.grants.granted(),
            resident_pages: memory.window.resident_pages().unwrap_or(0),
            violations: memory.audit.violations,
        })
    }

    /// The ids of every client with memory, in order.
    pub fn clients(&self) -> impl Iterator<Item = ClientId> + '_ {
        self.clients.iter().enumerate().filter(|(_, m)| m.is_some()).filter_map(|(i, _)| ClientId::try_from(i).ok())
    }

    /// Copies bytes out of `client`'s window; `false` if not connected or out of range.
    pub fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> bool {
        self.window(client).is_ok_and(|w| w.read(offset, buf))
    }

    /// Copies bytes into `client`'s window; `false` if not connected or out of range.
    pub fn write(&self, client: ClientId, offset: u64, data: &[u8]) -> bool {
        self.window(client).is_ok_and(|w| w.write(offset, data))
    }

    /// Fills window bytes (poisoning, zeroing); `false` if not connected or out of range.
    pub fn fill(&self, client: ClientId, offset: u64, len: u64, byte: u8) -> bool {
        self.window(client).is_ok_and(|w| w.fill(offset, len, byte))
    }

    /// Copies bytes out of `client`'s control region; `false` if not connected or out of range.
    pub fn control_read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> bool {
        self.get(client).is_some_and(|m| m.control.read(offset, buf))
    }

    /// The aligned u32 at `offset` of `client`'s control region; `None` if not connected, out
    /// of range or misaligned.
    #[inline]
    pub fn control_load_u32(&self, client: ClientId, offset: usize) -> Option<u32> {
        self.get(client)?.control.load_u32(offset)
    }

    /// Stores `value` into the aligned u32 at `offset` of `client`'s control region; `false` if
    /// not connected, out of range or misaligned.
    pub fn control_store_u32(&self, client: ClientId, offset: usize, value: u32) -> bool {
        self.get(client).is_some_and(|m| m.control.store_u32(offset, value))
    }

    /// Copies bytes into `client`'s control region; `false` if not connected or out of range.
    pub fn control_write(&self, client: ClientId, offset: u64, data: &[u8]) -> bool {
        self.get(client).is_some_and(|m| m.control.write(offset, data))
    }

    /// Pages of `client`'s window that hold memory now (for statistics and tests).
    pub fn resident_pages(&self, client: ClientId) -> Result<u64, MemoryError> {
        self.window(client)?.resident_pages()
    }
}

#[cfg(test)]
mod tests;

//! The shared control region: per-cache magazines that client and server both map, and the
//! two tables the server writes for the client's own use (the cache table and the page-owner
//! table, [`tables`]).
//!
//! Layout (native byte order, little-endian on every supported target; byte-by-byte table in
//! `docs/protocol.md`): a 64-byte [`ControlHeader`] at offset 0, then `slots` ×
//! [`MagazineSlot`] of [`SLOT_SIZE`] bytes each, then the cache table (one
//! [`CacheEntry`] per cache slot of the client), then the page-owner table (one [`PageOwner`]
//! per window page); the region is rounded up to whole pages ([`ControlLayout`]).
//!
//! The client can write every byte of the region at any time, so the server never holds a
//! reference into it (STYLE rule 6): it copies a [`Magazine`] out by value through
//! [`ControlMemory`], validates the copy ([`Magazine::checked_handles`]), acts, and writes back. The
//! runners implement [`ControlMemory`] over their mapping with volatile copies; `[u8]`
//! implements it for private copies and tests.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::{Error, PAGE_SIZE, PROTOCOL_VERSION};

mod stride;
pub mod tables;

pub use stride::ObjectIndex;

pub use tables::{
    CACHE_ENTRY_SIZE, CacheEntry, NO_SLOT, NOT_KMALLOC, PAGE_OWNER_SIZE, PageOwner, PageOwnerKind, read_cache_entry,
    read_page_owner, write_cache_entry, write_page_owner,
};

/// Handles one magazine can hold at most (a `fresh_mask` has one bit per handle).
pub const MAGAZINE_MAX: usize = 64;

/// Magazine slots a control region has at most: the 13 kmalloc classes take the first ones at
/// `Hello`, the client's own caches the rest (`system.toml` `server.magazine_slots` is checked
/// against it).
pub const SLOTS_MAX: u16 = 64;

/// The header's `magic`: the bytes `MEMS` in memory (`u32` `0x534d_454d`).
pub const CONTROL_MAGIC: u32 = u32::from_le_bytes(*b"MEMS");

/// `MagazineSlot::state` of a slot bound to no cache.
pub const SLOT_FREE: u16 = 0;
/// `MagazineSlot::state` of a slot bound to the cache in `MagazineSlot::cache`.
pub const SLOT_BOUND: u16 = 1;

/// The first bytes of the control region. Written by the server when it creates the region;
/// the client checks it once after mapping ([`ControlHeader::check`]). The server never reads
/// the fields it wrote back; the three counters after `slot_size` are the client library's
/// ([`ClientCounters`]), which the server only copies into `Stats`. The four fields after them
/// say where the server's two tables are ([`ControlLayout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ControlHeader {
    /// [`CONTROL_MAGIC`].
    pub magic: u32,
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// The client the region belongs to.
    pub client: u16,
    /// Number of magazine slots after the header.
    pub slots: u16,
    /// The largest per-slot magazine capacity (at most [`MAGAZINE_MAX`]).
    pub capacity: u16,
    /// [`SLOT_SIZE`], so a reader can check it agrees on the layout.
    pub slot_size: u32,
    /// Client-written: allocations served from a magazine (see [`ClientCounters`]).
    pub alloc_hits: u64,
    /// Client-written: frees absorbed by a magazine.
    pub free_hits: u64,
    /// Client-written: allocations and frees that needed an IPC.
    pub magazine_misses: u64,
    /// Offset of the cache table ([`CacheEntry`] per cache slot).
    pub caches_offset: u32,
    /// Entries of the cache table (the client's cache slots, kmalloc caches included).
    pub caches: u16,
    /// [`CACHE_ENTRY_SIZE`], so a reader can check it agrees on the layout.
    pub cache_entry_size: u16,
    /// Offset of the page-owner table ([`PageOwner`] per window page).
    pub page_owners_offset: u32,
    /// Entries of the page-owner table (the client's window pages).
    pub page_owners: u32,
    /// Server-written hint: [`cpu_hint`] of the CPU the server last served this client on, with
    /// [`SERVER_POLLING`] while it polls for requests instead of sleeping (0: not known; the
    /// seL4 server writes none). A host client waiting for a reply spins briefly while the
    /// server polls on another CPU, instead of sleeping until a cross-CPU wake-up.
    pub server_cpu: u32,
    /// Client-written hint: [`cpu_hint`] of the CPU the client last sent a request from (0: not
    /// known). **Untrusted**: the host server uses it only to decide whether to poll for a
    /// while before it sleeps (the client then runs on another CPU); a false hint costs the
    /// server at most that while of polling, during which it serves every client as usual.
    pub client_cpu: u32,
}

/// Byte offset of [`ControlHeader::server_cpu`] in the control region.
pub const SERVER_CPU_OFFSET: usize = core::mem::offset_of!(ControlHeader, server_cpu);
/// Byte offset of [`ControlHeader::client_cpu`] in the control region.
pub const CLIENT_CPU_OFFSET: usize = core::mem::offset_of!(ControlHeader, client_cpu);
/// [`ControlHeader::server_cpu`]'s flag: the server is polling for requests, not sleeping.
pub const SERVER_POLLING: u32 = 1 << 31;

/// The CPU hint of CPU number `cpu`: `cpu + 1` (0 means "not known"), below [`SERVER_POLLING`].
pub const fn cpu_hint(cpu: usize) -> u32 {
    if cpu < (SERVER_POLLING - 1) as usize { cpu as u32 + 1 } else { 0 }
}

/// The client library's magazine counters, kept in the control-region header so the server
/// can report them (it cannot see a hit: a hit is a pop or push in shared memory).
///
/// The client increments them in place (atomic adds on the mapped header, on its fast path);
/// the server copies them out with [`read_client_counters`] and passes them on in `Stats`
/// verbatim. They are **untrusted and informational**: a client can write anything there,
/// and nothing the server decides depends on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Allocations served from a magazine without IPC.
    pub alloc_hits: u64,
    /// Frees absorbed by a magazine without IPC.
    pub free_hits: u64,
    /// Allocations and frees that needed an IPC.
    pub magazine_misses: u64,
}

/// Offset of `ControlHeader::alloc_hits` in the region (8-byte aligned).
pub const ALLOC_HITS_OFFSET: usize = 16;
/// Offset of `ControlHeader::free_hits`.
pub const FREE_HITS_OFFSET: usize = 24;
/// Offset of `ControlHeader::magazine_misses`.
pub const MAGAZINE_MISSES_OFFSET: usize = 32;

/// A stack of object handles. `handles[..count]` are valid; the top is `handles[count - 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Magazine {
    /// Handles in the magazine (trusted only after [`Magazine::checked_handles`] checked it).
    pub count: u32,
    /// Zero (keeps `handles` 8-byte aligned).
    pub pad: u32,
    /// The handles (window offsets).
    pub handles: [u64; MAGAZINE_MAX],
}

/// The magazines of one cache: Bonwick's *loaded* and *previous*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MagazineSlot {
    /// The cache the slot is bound to (`CacheId.0`); written by the server, informational.
    pub cache: u32,
    /// Handles per magazine in this slot; written by the server, informational (the client
    /// takes it from `Reply::Created`).
    pub capacity: u16,
    /// [`SLOT_FREE`] or [`SLOT_BOUND`]; written by the server.
    pub state: u16,
    /// Alloc pops from and free pushes to this one.
    pub loaded: Magazine,
    /// The spare: swapped with `loaded` when that runs empty (alloc) or full (free).
    pub previous: Magazine,
}

/// Bytes of the [`ControlHeader`].
pub const HEADER_SIZE: usize = size_of::<ControlHeader>();
/// Bytes of one [`Magazine`].
pub const MAGAZINE_SIZE: usize = size_of::<Magazine>();
/// Bytes of one [`MagazineSlot`].
pub const SLOT_SIZE: usize = size_of::<MagazineSlot>();
/// Offset of slot 0 in the region.
pub const SLOTS_OFFSET: usize = HEADER_SIZE;
/// Offset of `loaded` in a slot.
pub const LOADED_OFFSET: usize = 8;
/// Offset of `previous` in a slot.
pub const PREVIOUS_OFFSET: usize = LOADED_OFFSET + MAGAZINE_SIZE;
/// Offset of `handles` in a magazine.
pub const HANDLES_OFFSET: usize = 8;

const _: () = assert!(HEADER_SIZE == 64);
const _: () = assert!(core::mem::offset_of!(ControlHeader, alloc_hits) == ALLOC_HITS_OFFSET);
const _: () = assert!(core::mem::offset_of!(ControlHeader, free_hits) == FREE_HITS_OFFSET);
const _: () = assert!(core::mem::offset_of!(ControlHeader, magazine_misses) == MAGAZINE_MISSES_OFFSET);
const _: () = assert!(MAGAZINE_SIZE == 8 + 8 * MAGAZINE_MAX);
const _: () = assert!(SLOT_SIZE == 8 + 2 * MAGAZINE_SIZE);
const _: () = assert!(MAGAZINE_MAX <= u64::BITS as usize);

/// Which magazine of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MagazineRole {
    /// The magazine alloc and free work on.
    Loaded,
    /// The spare.
    Previous,
}

/// Offset of slot `slot` in the region.
pub const fn slot_offset(slot: u16) -> usize {
    SLOTS_OFFSET + slot as usize * SLOT_SIZE
}

/// Offset of one magazine in the region.
pub const fn magazine_offset(slot: u16, role: MagazineRole) -> usize {
    slot_offset(slot)
        + match role {
            MagazineRole::Loaded => LOADED_OFFSET,
            MagazineRole::Previous => PREVIOUS_OFFSET,
        }
}

/// Where everything lies in one client's control region: `slots` magazine slots, a cache
/// table of `caches` entries (the client's cache slots: `max_caches_per_client`), a page-owner
/// table of `window_pages` entries. Server and client compute the same offsets from these
/// three numbers (the client reads them from the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLayout {
    /// Magazine slots.
    pub slots: u16,
    /// Cache-table entries.
    pub caches: u16,
    /// Page-owner entries (window pages).
    pub window_pages: u32,
}

impl ControlLayout {
    /// Offset of the cache table: right after the last slot (slots are 8-byte multiples).
    pub const fn caches_offset(&self) -> usize {
        slot_offset(self.slots)
    }

    /// Offset of the page-owner table: right after the cache table.
    pub const fn page_owners_offset(&self) -> usize {
        self.caches_offset() + self.caches as usize * CACHE_ENTRY_SIZE
    }

    /// Offset of the cache-table entry `index`.
    pub const fn cache_entry_offset(&self, index: u16) -> usize {
        self.caches_offset() + index as usize * CACHE_ENTRY_SIZE
    }

    /// Offset of the page-owner entry of window page `page`.
    pub const fn page_owner_offset(&self, page: u32) -> usize {
        self.page_owners_offset() + page as usize * PAGE_OWNER_SIZE
    }

    /// Bytes of the region, rounded up to whole pages.
    pub const fn size(&self) -> usize {
        (self.page_owners_offset() + self.window_pages as usize * PAGE_OWNER_SIZE).div_ceil(PAGE_SIZE) * PAGE_SIZE
    }
}

/// Bytes of a control region with `slots` slots, `caches` cache-table entries and a window of
/// `window_pages` pages, rounded up to whole pages ([`ControlLayout::size`]).
pub const fn control_region_size(slots: u16, caches: u16, window_pages: u32) -> usize {
    ControlLayout { slots, caches, window_pages }.size()
}

impl ControlHeader {
    /// The header the server writes for `client`.
    pub const fn new(client: u16, layout: &ControlLayout, capacity: u16) -> Self {
        ControlHeader {
            magic: CONTROL_MAGIC,
            version: PROTOCOL_VERSION,
            client,
            slots: layout.slots,
            capacity,
            slot_size: SLOT_SIZE as u32,
            alloc_hits: 0,
            free_hits: 0,
            magazine_misses: 0,
            caches_offset: layout.caches_offset() as u32,
            caches: layout.caches,
            cache_entry_size: CACHE_ENTRY_SIZE as u16,
            page_owners_offset: layout.page_owners_offset() as u32,
            page_owners: layout.window_pages,
            server_cpu: 0,
            client_cpu: 0,
        }
    }

    /// The layout the header describes (valid once [`ControlHeader::check`] accepted it).
    pub const fn layout(&self) -> ControlLayout {
        ControlLayout { slots: self.slots, caches: self.caches, window_pages: self.page_owners }
    }

    /// Checks magic, version, slot and entry sizes, capacity, that the table offsets are the
    /// ones the counts give, and that everything fits in `region_len` bytes. `VersionMismatch`
    /// for another version, `Malformed` otherwise.
    pub fn check(&self, region_len: usize) -> Result<(), Error> {
        if self.magic != CONTROL_MAGIC
            || self.slot_size as usize != SLOT_SIZE
            || usize::from(self.cache_entry_size) != CACHE_ENTRY_SIZE
        {
            return Err(Error::Malformed);
        }
        if self.version != PROTOCOL_VERSION {
            return Err(Error::VersionMismatch { server: self.version });
        }
        let layout = self.layout();
        if usize::from(self.capacity) > MAGAZINE_MAX
            || self.caches_offset as usize != layout.caches_offset()
            || self.page_owners_offset as usize != layout.page_owners_offset()
            || layout.size() > region_len
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }
}

impl Magazine {
    /// A magazine with no handles.
    pub const EMPTY: Magazine = Magazine { count: 0, pad: 0, handles: [0; MAGAZINE_MAX] };

    /// A magazine holding `handles`; `InvalidArgument` if there are more than
    /// [`MAGAZINE_MAX`].
    pub fn from_handles(handles: &[u64]) -> Result<Magazine, Error> {
        let mut magazine = Magazine::EMPTY;
        let dst = magazine.handles.get_mut(..handles.len()).ok_or(Error::InvalidArgument)?;
        dst.copy_from_slice(handles);
        magazine.count = handles.len() as u32;
        Ok(magazine)
    }

    /// [`Magazine::from_handles`] of [`Handle`]s (the same words, copied straight in).
    pub fn from_handle_slice(handles: &[crate::Handle]) -> Result<Magazine, Error> {
        let words = <[u64]>::ref_from_bytes(handles.as_bytes()).map_err(|_| Error::Internal)?;
        Self::from_handles(words)
    }

    /// The valid handles, after checking `count` against the slot's `capacity` (the server's
    /// private value, never the one in shared memory). A count above it — a tampered
    /// magazine — is `InvalidArgument`.
    pub fn checked_handles(&self, capacity: u16) -> Result<&[u64], Error> {
        let count = usize::try_from(self.count).map_err(|_| Error::InvalidArgument)?;
        if count > usize::from(capacity) {
            return Err(Error::InvalidArgument);
        }
        self.handles.get(..count).ok_or(Error::InvalidArgument)
    }
}

/// Byte access to a control region by copying only, never by reference.
///
/// An implementation over shared memory copies with volatile reads and writes (the peer may
/// change the bytes at any moment; a torn copy is only ever validated, never trusted).
pub trait ControlMemory {
    /// Length of the region in bytes.
    fn len(&self) -> usize;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `dst.len()` bytes starting at `offset` into `dst`; `InvalidArgument` if the range
    /// is outside the region.
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error>;
    /// Copies `src` into the region at `offset`; `InvalidArgument` if the range is outside
    /// the region.
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error>;
}

impl ControlMemory for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let end = offset.checked_add(dst.len()).ok_or(Error::InvalidArgument)?;
        dst.copy_from_slice(self.get(offset..end).ok_or(Error::InvalidArgument)?);
        Ok(())
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let end = offset.checked_add(src.len()).ok_or(Error::InvalidArgument)?;
        self.get_mut(offset..end).ok_or(Error::InvalidArgument)?.copy_from_slice(src);
        Ok(())
    }
}

/// Zeroes the region and writes a fresh header (the server, when it creates the region): every
/// slot free, every cache-table entry empty, every page-owner entry [`PageOwnerKind::None`].
/// `InvalidArgument` if `capacity` is above [`MAGAZINE_MAX`] or the layout does not fit.
pub fn init_region<M: ControlMemory + ?Sized>(
    mem: &mut M,
    client: u16,
    layout: &ControlLayout,
    capacity: u16,
) -> Result<(), Error> {
    if usize::from(capacity) > MAGAZINE_MAX || layout.size() > mem.len() {
        return Err(Error::InvalidArgument);
    }
    let zeros = [0u8; PAGE_SIZE];
    let mut offset = 0;
    while offset < mem.len() {
        let n = (mem.len() - offset).min(PAGE_SIZE);
        mem.write(offset, &zeros[..n])?;
        offset += n;
    }
    mem.write(0, ControlHeader::new(client, layout, capacity).as_bytes())
}

/// Copies the header out and checks it ([`ControlHeader::check`]).
pub fn read_header<M: ControlMemory + ?Sized>(mem: &M) -> Result<ControlHeader, Error> {
    let mut bytes = [0u8; HEADER_SIZE];
    mem.read(0, &mut bytes)?;
    let header = ControlHeader::read_from_bytes(&bytes).map_err(|_| Error::Malformed)?;
    header.check(mem.len())?;
    Ok(header)
}

/// Copies the client library's counters out of the header (the server, for `Stats`). The
/// values are whatever the client wrote: informational, never trusted.
pub fn read_client_counters<M: ControlMemory + ?Sized>(mem: &M) -> Result<ClientCounters, Error> {
    let mut bytes = [0u8; 8];
    let mut word = |offset| mem.read(offset, &mut bytes).map(|()| u64::from_ne_bytes(bytes));
    Ok(ClientCounters {
        alloc_hits: word(ALLOC_HITS_OFFSET)?,
        free_hits: word(FREE_HITS_OFFSET)?,
        magazine_misses: word(MAGAZINE_MISSES_OFFSET)?,
    })
}

/// Copies one magazine out by value. Its count is not checked yet: call
/// [`Magazine::checked_handles`] with the slot's capacity.
pub fn read_magazine<M: ControlMemory + ?Sized>(mem: &M, slot: u16, role: MagazineRole) -> Result<Magazine, Error> {
    let mut bytes = [0u8; MAGAZINE_SIZE];
    mem.read(magazine_offset(slot, role), &mut bytes)?;
    Magazine::read_from_bytes(&bytes).map_err(|_| Error::InvalidArgument)
}

/// Writes a whole magazine (count and all handles).
pub fn write_magazine<M: ControlMemory + ?Sized>(
    mem: &mut M,
    slot: u16,
    role: MagazineRole,
    magazine: &Magazine,
) -> Result<(), Error> {
    mem.write(magazine_offset(slot, role), magazine.as_bytes())
}

/// Writes only a magazine's count (after a drain: the handles left behind are stale).
pub fn write_count<M: ControlMemory + ?Sized>(
    mem: &mut M,
    slot: u16,
    role: MagazineRole,
    count: u32,
) -> Result<(), Error> {
    mem.write(magazine_offset(slot, role), &count.to_ne_bytes())
}

/// Binds a slot to a cache (`state` [`SLOT_BOUND`]) or frees it (`cache` 0, `capacity` 0,
/// `state` [`SLOT_FREE`]), and empties both its magazines.
pub fn write_slot_binding<M: ControlMemory + ?Sized>(
    mem: &mut M,
    slot: u16,
    binding: Option<(crate::CacheId, u16)>,
) -> Result<(), Error> {
    let fresh = MagazineSlot {
        cache: binding.map_or(0, |(cache, _)| cache.0),
        capacity: binding.map_or(0, |(_, capacity)| capacity),
        state: if binding.is_some() { SLOT_BOUND } else { SLOT_FREE },
        loaded: Magazine::EMPTY,
        previous: Magazine::EMPTY,
    };
    mem.write(slot_offset(slot), fresh.as_bytes())
}

#[cfg(test)]
mod tests;

//! `SLAB_STORE_USER` records: one 20-byte record per object (last allocation and last free:
//! client and sequence number) in server-private pool frames ([`Platform::private_frame`])
//! taken with each slab of such a cache and charged to the slab's client like its pages (quota,
//! `frames_used`, `tracking_frames`). A client that tracks much pays with its own quota; no
//! table shared by all clients exists. The frames of one slab are chained through their frame
//! descriptors (`FRAME_TRACK`, `page` = the slab descriptor, `link` = the next frame).

use protocol::{ClientId, Error, PAGE_SIZE};

use super::storage::{FRAME_TRACK, FrameDesc, MAX_OBJS_PER_SLAB, NIL};
use super::{BROKEN, Engine, Hook, Platform};

/// Bytes of one record in a private frame: allocation sequence, free sequence (both `u64`,
/// 0 = never), allocating client, freeing client (both `u16`), then the requested size of a
/// red-zoned kmalloc object (`u16`: a kmalloc class is at most 8 KiB; Linux's `orig_size`),
/// little-endian.
pub(crate) const TRACK_RECORD_BYTES: usize = 22;
/// Records per private frame.
pub(crate) const TRACKS_PER_FRAME: u32 = (PAGE_SIZE / TRACK_RECORD_BYTES) as u32;
/// Most record frames one slab needs.
pub(crate) const MAX_TRACK_FRAMES: u32 = MAX_OBJS_PER_SLAB.div_ceil(TRACKS_PER_FRAME);

/// Private frames the STORE_USER records of a slab of `objs` objects take.
pub(crate) const fn track_frames_for(objs: u32) -> u32 {
    objs.div_ceil(TRACKS_PER_FRAME)
}

/// One record: last allocation and last free of an object (sequence 0 = never), kept for
/// STORE_USER caches, and the requested size, kept for red-zoned kmalloc caches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TrackRecord {
    pub(crate) alloc_seq: u64,
    pub(crate) free_seq: u64,
    pub(crate) alloc_client: ClientId,
    pub(crate) free_client: ClientId,
    /// Bytes the allocation asked for (`kmalloc(size)`, `krealloc`), at most the object size.
    pub(crate) orig_size: u16,
}

impl TrackRecord {
    fn decode(b: &[u8; TRACK_RECORD_BYTES]) -> Self {
        let [a0, a1, a2, a3, a4, a5, a6, a7, f0, f1, f2, f3, f4, f5, f6, f7, ac0, ac1, fc0, fc1, o0, o1] = *b;
        TrackRecord {
            alloc_seq: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            free_seq: u64::from_le_bytes([f0, f1, f2, f3, f4, f5, f6, f7]),
            alloc_client: u16::from_le_bytes([ac0, ac1]),
            free_client: u16::from_le_bytes([fc0, fc1]),
            orig_size: u16::from_le_bytes([o0, o1]),
        }
    }

    fn encode(&self) -> [u8; TRACK_RECORD_BYTES] {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = self.alloc_seq.to_le_bytes();
        let [f0, f1, f2, f3, f4, f5, f6, f7] = self.free_seq.to_le_bytes();
        let [ac0, ac1] = self.alloc_client.to_le_bytes();
        let [fc0, fc1] = self.free_client.to_le_bytes();
        let [o0, o1] = self.orig_size.to_le_bytes();
        [a0, a1, a2, a3, a4, a5, a6, a7, f0, f1, f2, f3, f4, f5, f6, f7, ac0, ac1, fc0, fc1, o0, o1]
    }
}

/// Whether slabs of cache `c` carry records: `SLAB_STORE_USER` (owners), or a red-zoned
/// kmalloc cache (requested sizes).
pub(crate) fn has_records(c: &super::storage::CacheDesc) -> bool {
    c.flags & protocol::flags::SLAB_STORE_USER != 0 || super::kmalloc::tracks_orig_size(c)
}

impl<P: Platform> Engine<'_, P> {
    /// Give slab `s`'s record frames back (`Platform::private_release` each; a frame whose
    /// release fails is quarantined and the failure recorded) and uncharge `client`.
    pub(crate) fn track_frames_give(&mut self, client: ClientId, s: u32) -> Result<(), Error> {
        let mut f = self.slab(s)?.track_frame;
        let mut n = 0u32;
        while f != NIL {
            let next = self.frame(f)?.link;
            match self.platform.private_release(f) {
                Ok(()) => self.frame_push(f)?,
                Err(e) => {
                    self.hook_failed(Hook::PrivateRelease, client, e);
                    self.frame_quarantine(f)?;
                }
            }
            n += 1;
            if n > MAX_TRACK_FRAMES {
                return Err(BROKEN);
            }
            f = next;
        }
        self.slab_mut(s)?.track_frame = NIL;
        let c = self.client_mut(client)?;
        c.frames_used = c.frames_used.checked_sub(n).ok_or(BROKEN)?;
        c.tracking_frames = c.tracking_frames.checked_sub(n).ok_or(BROKEN)?;
        Ok(())
    }

    /// Take `n` frames for slab `s`'s records, each initialised through
    /// `Platform::private_frame` (every record "never"), and charge them to `client` (the
    /// caller checked quota and pool). On a failure every frame taken goes back and nothing is
    /// charged.
    pub(crate) fn track_frames_take(&mut self, client: ClientId, s: u32, n: u32) -> Result<(), Error> {
        for _ in 0..n {
            let f = self.frame_pop()?;
            if let Err(e) = self.platform.private_frame(f).map(|bytes| bytes.fill(0)) {
                self.frame_push(f)?;
                let failed = self.hook_failed(Hook::PrivateFrame, client, e);
                self.track_frames_give(client, s)?;
                return Err(failed);
            }
            let next = self.slab(s)?.track_frame;
            *self.frame_mut(f)? = FrameDesc { kind: FRAME_TRACK, client, page: s, link: next };
            self.slab_mut(s)?.track_frame = f;
            let c = self.client_mut(client)?;
            c.frames_used = c.frames_used.saturating_add(1);
            c.tracking_frames = c.tracking_frames.saturating_add(1);
        }
        Ok(())
    }

    /// The private frame and byte offset of object `idx`'s record in slab `s`.
    fn track_place(&self, s: u32, idx: u32) -> Result<(u32, usize), Error> {
        let mut f = self.slab(s)?.track_frame;
        for _ in 0..idx / TRACKS_PER_FRAME {
            f = self.frame(f)?.link;
        }
        if f == NIL || self.frame(f)?.kind != FRAME_TRACK {
            return Err(BROKEN);
        }
        Ok((f, (idx % TRACKS_PER_FRAME) as usize * TRACK_RECORD_BYTES))
    }

    /// The record bytes of object `idx` of slab `s`.
    fn track_bytes(&mut self, s: u32, idx: u32) -> Result<&mut [u8; TRACK_RECORD_BYTES], Error> {
        let (f, at) = self.track_place(s, idx)?;
        let client = self.frame(f)?.client;
        let log = &self.fault_log;
        let frame = self.platform.private_frame(f).map_err(|e| log.record(Hook::PrivateFrame, client, e))?;
        frame.get_mut(at..at + TRACK_RECORD_BYTES).and_then(|b| b.try_into().ok()).ok_or(BROKEN)
    }

    /// Object `idx` of slab `s` was allocated (`alloc`) or freed by `client` at `seq`.
    pub(crate) fn track_stamp(
        &mut self,
        s: u32,
        idx: u32,
        alloc: bool,
        client: ClientId,
        seq: u64,
    ) -> Result<(), Error> {
        let bytes = self.track_bytes(s, idx)?;
        let mut t = TrackRecord::decode(bytes);
        if alloc {
            (t.alloc_client, t.alloc_seq) = (client, seq);
        } else {
            (t.free_client, t.free_seq) = (client, seq);
        }
        *bytes = t.encode();
        Ok(())
    }

    /// The record of object `idx` of slab `s`.
    pub(crate) fn track_record(&mut self, s: u32, idx: u32) -> Result<TrackRecord, Error> {
        Ok(TrackRecord::decode(self.track_bytes(s, idx)?))
    }

    /// Keep `size` (at most a kmalloc class's 8 KiB) as the requested size of object `idx` of
    /// slab `s`.
    pub(crate) fn track_orig_size(&mut self, s: u32, idx: u32, size: u32) -> Result<(), Error> {
        let size = u16::try_from(size).map_err(|_| BROKEN)?;
        let bytes = self.track_bytes(s, idx)?;
        let mut t = TrackRecord::decode(bytes);
        t.orig_size = size;
        *bytes = t.encode();
        Ok(())
    }
}

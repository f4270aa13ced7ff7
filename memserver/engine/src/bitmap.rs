//! Object bitmaps: two bits per object, in server-private pool frames charged to the client
//! whose slabs they describe, so the server's own tables do not grow with the pool for them.
//!
//! Each slab has one *record*: its owner (the slab descriptor) and two bitmaps of
//! `ceil(objs / 64)` words each, *allocated* (bit set: the object is allocated; bits past the
//! last object are set too, so they are never handed out) and *parked* (bit set: an allocated
//! object the server's magazine depot holds, not the client). A bitmap frame holds records of
//! one client and one record size (the slabs of all its caches of that bitmap length), after
//! an 8-byte header (`prev` frame, `free_head` record, `used` records); a free record's owner
//! field links to the next free record. A client keeps, per record size, its bitmap frames
//! that have a free record on a doubly linked list (`bitmap_free`, through the frame
//! descriptors' links and the headers' `prev`): taking a record pops from the first frame,
//! giving one back pushes onto its frame, and a frame whose last record goes back is released
//! at once. Every step is O(1); a slab that needs a new bitmap frame is charged one frame more
//! (quota and pool checks count it). A client with a thousand small caches pays for the
//! records its slabs use, not a frame per cache.
//!
//! The bytes are reached through `Platform::private_bytes{,_mut}`, which cannot fail for a
//! frame the engine holds; a failure there is a broken platform (`Internal`).

use protocol::{ClientId, Error, PAGE_SIZE};

use super::storage::{FRAME_BITMAP, FrameDesc, NIL};
use super::{BROKEN, Engine, Hook, Platform};

/// Bytes of a bitmap frame's header.
const HEADER: usize = 8;
/// `free_head` of a frame with no free record.
const NO_RECORD: u16 = u16::MAX;

/// Words of one bitmap of a slab of `objs` objects.
pub(crate) const fn bitmap_words(objs: u16) -> usize {
    (objs as usize).div_ceil(64)
}

/// Bytes of one record: owner (`u32`), padding, then both bitmaps.
const fn record_bytes(words: usize) -> usize {
    8 + 16 * words
}

/// Records per bitmap frame.
pub(crate) const fn records_per_frame(words: usize) -> usize {
    (PAGE_SIZE - HEADER) / record_bytes(words)
}

/// Where one slab's bitmaps are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bits {
    pub(crate) frame: u32,
    /// Byte offset of the allocated bitmap in the frame.
    pub(crate) allocated: usize,
    /// Byte offset of the parked bitmap.
    pub(crate) parked: usize,
    pub(crate) words: usize,
}

impl Bits {
    /// Byte offset of word `w` of the allocated bitmap (`parked`: of the parked one).
    #[inline]
    fn word_at(&self, parked: bool, w: usize) -> Result<usize, Error> {
        if w >= self.words {
            return Err(BROKEN);
        }
        Ok(if parked { self.parked } else { self.allocated } + 8 * w)
    }
}

#[inline]
pub(crate) fn get_u64(bytes: &[u8; PAGE_SIZE], at: usize) -> Result<u64, Error> {
    let b: [u8; 8] = bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).ok_or(BROKEN)?;
    Ok(u64::from_ne_bytes(b))
}

#[inline]
pub(crate) fn put_u64(bytes: &mut [u8; PAGE_SIZE], at: usize, v: u64) -> Result<(), Error> {
    bytes.get_mut(at..at + 8).ok_or(BROKEN)?.copy_from_slice(&v.to_ne_bytes());
    Ok(())
}

#[inline]
fn get_u32(bytes: &[u8; PAGE_SIZE], at: usize) -> Result<u32, Error> {
    let b: [u8; 4] = bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).ok_or(BROKEN)?;
    Ok(u32::from_ne_bytes(b))
}

#[inline]
fn put_u32(bytes: &mut [u8; PAGE_SIZE], at: usize, v: u32) -> Result<(), Error> {
    bytes.get_mut(at..at + 4).ok_or(BROKEN)?.copy_from_slice(&v.to_ne_bytes());
    Ok(())
}

/// A bitmap frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// The previous frame on the cache's list of frames with a free record (`NIL`: first or
    /// not on the list).
    pub(crate) prev: u32,
    pub(crate) free_head: u16,
    pub(crate) used: u16,
}

impl FrameHeader {
    pub(crate) fn read(bytes: &[u8; PAGE_SIZE]) -> Result<Self, Error> {
        let word = get_u64(bytes, 0)?;
        Ok(FrameHeader { prev: word as u32, free_head: (word >> 32) as u16, used: (word >> 48) as u16 })
    }

    fn write(&self, bytes: &mut [u8; PAGE_SIZE]) -> Result<(), Error> {
        put_u64(bytes, 0, u64::from(self.prev) | u64::from(self.free_head) << 32 | u64::from(self.used) << 48)
    }
}

/// Byte offset of record `r` for records of `words` words.
#[inline]
pub(crate) fn record_at(words: usize, r: usize) -> usize {
    HEADER + r * record_bytes(words)
}

/// The owner field of record `r` (a slab descriptor, or the next free record).
pub(crate) fn record_owner(bytes: &[u8; PAGE_SIZE], words: usize, r: usize) -> Result<u32, Error> {
    get_u32(bytes, record_at(words, r))
}

impl<P: Platform> Engine<'_, P> {
    /// Where slab `s`'s bitmaps are.
    #[inline]
    pub(crate) fn bits(&self, s: u32) -> Result<Bits, Error> {
        let words = bitmap_words(self.cache(self.slab(s)?.cache)?.objs);
        self.slab_bits(s, words)
    }

    /// Where slab `s`'s bitmaps are, for a cache of `words`-word bitmaps.
    #[inline]
    pub(crate) fn slab_bits(&self, s: u32, words: usize) -> Result<Bits, Error> {
        let d = self.slab(s)?;
        let base = record_at(words, usize::from(d.bitmap_record)) + 8;
        Ok(Bits { frame: d.bitmap_frame, allocated: base, parked: base + 8 * words, words })
    }

    /// Word `w` of the allocated bitmap at `b` (`parked`: of the parked bitmap).
    #[inline]
    pub(crate) fn word(&self, b: &Bits, parked: bool, w: usize) -> Result<u64, Error> {
        get_u64(self.platform.private_bytes(b.frame)?, b.word_at(parked, w)?)
    }

    /// Word `w` of slab `s`'s allocated bitmap (`parked`: of its parked bitmap).
    pub(crate) fn bitmap_word(&self, s: u32, parked: bool, w: usize) -> Result<u64, Error> {
        self.word(&self.bits(s)?, parked, w)
    }

    /// Whether object `idx` of slab `s` is allocated (held by the client or parked).
    pub(crate) fn obj_allocated(&self, s: u32, idx: u32) -> Result<bool, Error> {
        Ok(self.bitmap_word(s, false, (idx / 64) as usize)? & (1u64 << (idx % 64)) != 0)
    }

    /// Whether object `idx` of slab `s` is held by its client (allocated, not parked).
    pub(crate) fn obj_held(&self, s: u32, idx: u32) -> Result<bool, Error> {
        let (allocated, parked, bit) = self.obj_words(&self.bits(s)?, idx)?;
        Ok(allocated & !parked & bit != 0)
    }

    /// The allocated and parked words holding object `idx` at `b`, and its bit in them.
    #[inline]
    pub(crate) fn obj_words(&self, b: &Bits, idx: u32) -> Result<(u64, u64, u64), Error> {
        let w = (idx / 64) as usize;
        let bytes = self.platform.private_bytes(b.frame)?;
        Ok((get_u64(bytes, b.word_at(false, w)?)?, get_u64(bytes, b.word_at(true, w)?)?, 1u64 << (idx % 64)))
    }

    /// Marks object `idx` at `b` parked or not (the parked bit only; counts are the caller's).
    #[inline]
    pub(crate) fn obj_set_parked(&mut self, b: &Bits, idx: u32, parked: bool) -> Result<(), Error> {
        let at = b.word_at(true, (idx / 64) as usize)?;
        let bit = 1u64 << (idx % 64);
        let bytes = self.platform.private_bytes_mut(b.frame)?;
        let word = get_u64(bytes, at)?;
        put_u64(bytes, at, if parked { word | bit } else { word & !bit })
    }

    /// Sets the allocated bit of object `idx` at `b`; returns the word's new value.
    #[inline]
    pub(crate) fn obj_set_allocated(&mut self, b: &Bits, idx: u32, allocated: bool) -> Result<u64, Error> {
        let at = b.word_at(false, (idx / 64) as usize)?;
        let bit = 1u64 << (idx % 64);
        let bytes = self.platform.private_bytes_mut(b.frame)?;
        let word = get_u64(bytes, at)?;
        let new = if allocated { word | bit } else { word & !bit };
        put_u64(bytes, at, new)?;
        Ok(new)
    }

    /// A fresh slab's bitmaps: nothing allocated (but the bits past its last object) and
    /// nothing parked. Returns the summary (bit `w`: word `w` has a free object).
    pub(crate) fn bitmap_clear(&mut self, s: u32, objs: u16) -> Result<u8, Error> {
        let b = self.bits(s)?;
        let bytes = self.platform.private_bytes_mut(b.frame)?;
        let mut summary = 0u8;
        for w in 0..b.words {
            let valid = u32::from(objs).saturating_sub(w as u32 * 64).min(64);
            let word = if valid == 64 { 0 } else { u64::MAX.checked_shl(valid).unwrap_or(0) };
            put_u64(bytes, b.word_at(false, w)?, word)?;
            put_u64(bytes, b.word_at(true, w)?, 0)?;
            if word != u64::MAX {
                summary |= 1u8 << w;
            }
        }
        Ok(summary)
    }

    /// Whether a new slab of cache `gi` needs a new bitmap frame (1) or not (0).
    pub(crate) fn bitmap_frames_needed(&self, gi: u32) -> Result<u32, Error> {
        let head = self.bitmap_head(gi)?;
        Ok(u32::from(head == NIL))
    }

    /// The first bitmap frame with a free record of the size cache `gi`'s slabs use.
    fn bitmap_head(&self, gi: u32) -> Result<u32, Error> {
        let class = bitmap_words(self.cache(gi)?.objs).checked_sub(1).ok_or(BROKEN)?;
        self.client(self.cache_client(gi))?.bitmap_free.get(class).copied().ok_or(BROKEN)
    }

    /// Sets it.
    fn bitmap_set_head(&mut self, client: ClientId, words: usize, f: u32) -> Result<(), Error> {
        let class = words.checked_sub(1).ok_or(BROKEN)?;
        *self.client_mut(client)?.bitmap_free.get_mut(class).ok_or(BROKEN)? = f;
        Ok(())
    }

    /// Gives slab `s` of cache `gi` (of `client`) a bitmap record, taking a bitmap frame for
    /// the client if it has none of that record size with a free record (the caller checked
    /// quota and pool for [`Self::bitmap_frames_needed`]). The record's bits are the caller's
    /// to initialise.
    pub(crate) fn bitmap_record_take(&mut self, client: ClientId, gi: u32, s: u32) -> Result<(), Error> {
        let words = bitmap_words(self.cache(gi)?.objs);
        let mut f = self.bitmap_head(gi)?;
        if f == NIL {
            f = self.bitmap_frame_take(client, words)?;
        }
        let bytes = self.platform.private_bytes_mut(f)?;
        let mut header = FrameHeader::read(bytes)?;
        let r = header.free_head;
        if r == NO_RECORD {
            return Err(BROKEN);
        }
        let at = record_at(words, usize::from(r));
        let next = get_u32(bytes, at)?;
        put_u32(bytes, at, s)?;
        header.free_head = u16::try_from(next).unwrap_or(NO_RECORD);
        header.used = header.used.checked_add(1).ok_or(BROKEN)?;
        if header.free_head == NO_RECORD {
            // Full: off the list (it was its first frame).
            header.prev = NIL;
            header.write(bytes)?;
            let next_frame = self.frame(f)?.link;
            self.frame_mut(f)?.link = NIL;
            self.bitmap_list_set_prev(next_frame, NIL)?;
            self.bitmap_set_head(client, words, next_frame)?;
        } else {
            header.write(bytes)?;
        }
        let d = self.slab_mut(s)?;
        d.bitmap_frame = f;
        d.bitmap_record = u8::try_from(r).map_err(|_| BROKEN)?;
        Ok(())
    }

    /// Takes a pool frame as a bitmap frame of `client` for records of `words` words, all
    /// records free, first on the client's list; charged to `client`.
    fn bitmap_frame_take(&mut self, client: ClientId, words: usize) -> Result<u32, Error> {
        let f = self.frame_pop()?;
        let records = records_per_frame(words);
        let initialised = self.platform.private_frame(f).and_then(|bytes| {
            FrameHeader { prev: NIL, free_head: 0, used: 0 }.write(bytes)?;
            for r in 0..records {
                let next = if r + 1 < records { r as u32 + 1 } else { u32::from(NO_RECORD) };
                put_u32(bytes, record_at(words, r), next)?;
            }
            Ok(())
        });
        if let Err(e) = initialised {
            self.frame_push(f)?;
            return Err(self.hook_failed(Hook::PrivateFrame, client, e));
        }
        let class = words.checked_sub(1).ok_or(BROKEN)?;
        let head = self.client(client)?.bitmap_free.get(class).copied().ok_or(BROKEN)?;
        *self.frame_mut(f)? = FrameDesc { kind: FRAME_BITMAP, client, page: words as u32, link: head };
        self.bitmap_list_set_prev(head, f)?;
        self.bitmap_set_head(client, words, f)?;
        let cl = self.client_mut(client)?;
        cl.frames_used = cl.frames_used.saturating_add(1);
        cl.bitmap_frames = cl.bitmap_frames.saturating_add(1);
        Ok(f)
    }

    /// Sets the `prev` of bitmap frame `f` (nothing for `NIL`).
    fn bitmap_list_set_prev(&mut self, f: u32, prev: u32) -> Result<(), Error> {
        if f == NIL {
            return Ok(());
        }
        let bytes = self.platform.private_bytes_mut(f)?;
        let mut header = FrameHeader::read(bytes)?;
        header.prev = prev;
        header.write(bytes)
    }

    /// Slab `s` of cache `gi` (of `client`) gives its bitmap record back; a bitmap frame left
    /// without records goes back to the pool (`Platform::private_release`; quarantined if
    /// that fails) and is uncharged.
    pub(crate) fn bitmap_record_give(&mut self, client: ClientId, gi: u32, s: u32) -> Result<(), Error> {
        let words = bitmap_words(self.cache(gi)?.objs);
        let d = self.slab(s)?;
        let (f, r) = (d.bitmap_frame, d.bitmap_record);
        if f == NIL {
            return Ok(());
        }
        let bytes = self.platform.private_bytes_mut(f)?;
        let mut header = FrameHeader::read(bytes)?;
        let was_full = header.free_head == NO_RECORD;
        put_u32(bytes, record_at(words, usize::from(r)), u32::from(header.free_head))?;
        header.free_head = u16::from(r);
        header.used = header.used.checked_sub(1).ok_or(BROKEN)?;
        header.write(bytes)?;
        self.slab_mut(s)?.bitmap_frame = NIL;
        if header.used == 0 {
            if !was_full {
                self.bitmap_list_unlink(client, words, f, header.prev)?;
            }
            match self.platform.private_release(f) {
                Ok(()) => self.frame_push(f)?,
                Err(e) => {
                    self.hook_failed(Hook::PrivateRelease, client, e);
                    self.frame_quarantine(f)?;
                }
            }
            let cl = self.client_mut(client)?;
            cl.frames_used = cl.frames_used.checked_sub(1).ok_or(BROKEN)?;
            cl.bitmap_frames = cl.bitmap_frames.checked_sub(1).ok_or(BROKEN)?;
        } else if was_full {
            // It has a free record again: first on the list.
            let head = self.bitmap_head(gi)?;
            self.frame_mut(f)?.link = head;
            self.bitmap_list_set_prev(head, f)?;
            self.bitmap_list_set_prev(f, NIL)?;
            self.bitmap_set_head(client, words, f)?;
        }
        Ok(())
    }

    /// Takes bitmap frame `f` (whose `prev` is `prev`) off `client`'s list for `words`.
    fn bitmap_list_unlink(&mut self, client: ClientId, words: usize, f: u32, prev: u32) -> Result<(), Error> {
        let next = self.frame(f)?.link;
        if prev == NIL {
            self.bitmap_set_head(client, words, next)?;
        } else {
            self.frame_mut(prev)?.link = next;
        }
        self.bitmap_list_set_prev(next, prev)?;
        self.frame_mut(f)?.link = NIL;
        Ok(())
    }

    /// Slab `s`'s bitmap record: in a bitmap frame of its cache and client, in range, and
    /// naming the slab as its owner.
    pub(crate) fn check_bitmap_record(&self, gi: u32, s: u32) -> Result<(), super::InvariantViolation> {
        let v = |what| super::debug::violation(what, s, gi);
        let d = self.slab(s).map_err(|_| v("slab index out of range"))?;
        let c = self.cache(gi).map_err(|_| v("cache index out of range"))?;
        let words = bitmap_words(c.objs);
        match self.frame(d.bitmap_frame) {
            Ok(fd) if fd.kind == FRAME_BITMAP && fd.page as usize == words && fd.client == self.cache_client(gi) => {}
            _ => {
                return Err(super::debug::violation(
                    "slab's bitmap frame is no bitmap frame of its client and size",
                    s,
                    d.bitmap_frame,
                ));
            }
        }
        if usize::from(d.bitmap_record) >= records_per_frame(words) {
            return Err(super::debug::violation("bitmap record out of its frame", s, d.bitmap_record));
        }
        let bytes = self.platform.private_bytes(d.bitmap_frame).map_err(|_| v("bitmap frame unreachable"))?;
        if record_owner(bytes, words, usize::from(d.bitmap_record)) != Ok(s) {
            return Err(super::debug::violation("bitmap record owned by another slab", s, d.bitmap_record));
        }
        Ok(())
    }
}

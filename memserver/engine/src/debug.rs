//! Debug flags: `POISON` (0x6b…0xa5 in free objects, checked when handed out), `RED_ZONE`
//! (0xbb / 0xcc guards, checked on free and on alloc) and the per-slab consistency check behind
//! `CONSISTENCY_CHECKS`; `STORE_USER` records live in `track`.
//!
//! Policy on corruption: the failing operation does not happen (a poisoned object stays free,
//! a red-zoned object stays allocated), the damage is reported with cache, object and offset
//! and then repaired, so retrying the same operation succeeds. Linux likewise reports and
//! restores the bytes ("Restoring …"), though it leaks an object whose free failed its checks.

use protocol::flags::{POISON_END, POISON_FREE, RED_ACTIVE, RED_INACTIVE};
use protocol::{ClientId, Corruption, Error, Handle};

use super::storage::{LIST_EMPTY, LIST_FULL, LIST_PARTIAL, LIST_RELEASING, NIL};
use super::{BROKEN, Engine, Hook, Platform};

/// A broken engine invariant: what, and two numbers to locate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvariantViolation {
    pub what: &'static str,
    pub a: u64,
    pub b: u64,
}

pub(crate) fn violation(what: &'static str, a: impl Into<u64>, b: impl Into<u64>) -> InvariantViolation {
    InvariantViolation { what, a: a.into(), b: b.into() }
}

/// Where the first byte of `[start, start + len)` differs from the expected bytes: `fill`
/// everywhere except the very last byte, which must be `end`. Returns (offset, found, expected);
/// a failed read is the platform's error.
pub(crate) fn first_mismatch<P: Platform>(
    p: &P,
    client: ClientId,
    start: u64,
    len: u32,
    fill: u8,
    end: u8,
) -> Result<Option<(u32, u8, u8)>, Error> {
    let mut buf = [0u8; 512];
    let mut done = 0u32;
    while done < len {
        let n = (len - done).min(buf.len() as u32) as usize;
        let chunk = buf.get_mut(..n).ok_or(BROKEN)?;
        p.read(client, start + u64::from(done), chunk)?;
        let last_chunk = done + n as u32 == len;
        let body = if last_chunk { n - 1 } else { n };
        // Fast path (vectorises): the whole chunk is as expected.
        let body_ok = chunk.get(..body).ok_or(BROKEN)?.iter().all(|&b| b == fill);
        let end_ok = !last_chunk || chunk.get(n - 1) == Some(&end);
        if !(body_ok && end_ok) {
            for (i, &b) in chunk.iter().enumerate() {
                let want = if last_chunk && i == n - 1 { end } else { fill };
                if b != want {
                    return Ok(Some((done + i as u32, b, want)));
                }
            }
        }
        done += n as u32;
    }
    Ok(None)
}

impl<P: Platform> Engine<'_, P> {
    /// Object geometry: (handle offset, size, stride start, obj_offset, stride).
    fn obj_geometry(&self, gi: u32, s: u32, idx: u32) -> Result<(u64, u32, u64, u32, u32), Error> {
        let start = self.obj_stride_start(gi, s, idx)?;
        let c = self.cache(gi)?;
        Ok((start + u64::from(c.obj_offset), c.size, start, c.obj_offset, c.stride))
    }

    /// Fill object `idx` with the free poison: 0x6b, last byte 0xa5.
    pub(crate) fn poison_object(&mut self, client: ClientId, gi: u32, s: u32, idx: u32) -> Result<(), Error> {
        let (obj, size, ..) = self.obj_geometry(gi, s, idx)?;
        let last = size.saturating_sub(1);
        self.fill(client, obj, last as usize, POISON_FREE)?;
        self.fill(client, obj + u64::from(last), 1, POISON_END)
    }

    /// Check the free poison of object `idx`; on a mismatch, the corruption.
    pub(crate) fn poison_check(
        &self,
        client: ClientId,
        gi: u32,
        s: u32,
        idx: u32,
    ) -> Result<Option<Corruption>, Error> {
        let (obj, size, ..) = self.obj_geometry(gi, s, idx)?;
        let bad = first_mismatch(&self.platform, client, obj, size, POISON_FREE, POISON_END)
            .map_err(|e| self.hook_failed(Hook::Read, client, e))?;
        Ok(match bad {
            Some((at, found, expected)) => {
                Some(Corruption { cache: self.cache_id(gi)?, object: Handle(obj), offset: at as i32, found, expected })
            }
            None => None,
        })
    }

    /// Fill both red zones of object `idx` with `byte`.
    pub(crate) fn red_zone_fill(&mut self, client: ClientId, gi: u32, s: u32, idx: u32, byte: u8) -> Result<(), Error> {
        let (obj, size, start, left, stride) = self.obj_geometry(gi, s, idx)?;
        self.fill(client, start, left as usize, byte)?;
        let right = stride.saturating_sub(left).saturating_sub(size);
        self.fill(client, obj + u64::from(size), right as usize, byte)
    }

    /// Check both red zones of object `idx` hold `byte`; on a mismatch, the corruption
    /// (offset relative to the object: negative in the left zone).
    pub(crate) fn red_zone_check(
        &self,
        client: ClientId,
        gi: u32,
        s: u32,
        idx: u32,
        byte: u8,
    ) -> Result<Option<Corruption>, Error> {
        let (obj, size, start, left, stride) = self.obj_geometry(gi, s, idx)?;
        let right = stride.saturating_sub(left).saturating_sub(size);
        let read_failed = |e| self.hook_failed(Hook::Read, client, e);
        let found = match first_mismatch(&self.platform, client, start, left, byte, byte).map_err(read_failed)? {
            Some((at, f, e)) => Some((at as i32 - left as i32, f, e)),
            None => first_mismatch(&self.platform, client, obj + u64::from(size), right, byte, byte)
                .map_err(read_failed)?
                .map(|(at, f, e)| ((size + at) as i32, f, e)),
        };
        Ok(match found {
            Some((offset, found, expected)) => {
                Some(Corruption { cache: self.cache_id(gi)?, object: Handle(obj), offset, found, expected })
            }
            None => None,
        })
    }

    /// [`first_mismatch`] in `client`'s window, a failed read recorded as a fault.
    pub(crate) fn mismatch(
        &self,
        client: ClientId,
        start: u64,
        len: u32,
        fill: u8,
        end: u8,
    ) -> Result<Option<(u32, u8, u8)>, Error> {
        first_mismatch(&self.platform, client, start, len, fill, end)
            .map_err(|e| self.hook_failed(Hook::Read, client, e))
    }

    /// `Platform::read`, a failure recorded as a fault.
    pub(crate) fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.platform.read(client, offset, buf).map_err(|e| self.hook_failed(Hook::Read, client, e))
    }

    /// `Platform::write`, a failure recorded as a fault.
    pub(crate) fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        self.platform.write(client, offset, data).map_err(|e| self.hook_failed(Hook::Write, client, e))
    }

    /// `Platform::fill`, a failure recorded as a fault (the operation fails with `Internal`).
    pub(crate) fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        self.platform.fill(client, offset, len, byte).map_err(|e| self.hook_failed(Hook::Fill, client, e))
    }

    /// After a platform failure half-way through preparing object `idx`: put its debug bytes
    /// back as its (unchanged) state calls for, as far as the platform lets us. The failure
    /// itself is already recorded and reported; a second one changes nothing about that.
    pub(crate) fn debug_bytes_restore(&mut self, client: ClientId, gi: u32, s: u32, idx: u32, allocated: bool) {
        let Ok(c) = self.cache(gi) else { return };
        let (flags, poisoned) = (c.flags, super::cache::poisons(c));
        if flags & protocol::flags::SLAB_RED_ZONE != 0 {
            let _ = self.red_zone_fill(client, gi, s, idx, Self::red_zone_expected(allocated));
        }
        if !allocated && poisoned {
            let _ = self.poison_object(client, gi, s, idx);
        }
    }

    /// Red zones of a free object must be inactive (0xbb), of an allocated one active (0xcc).
    pub(crate) fn red_zone_expected(allocated: bool) -> u8 {
        if allocated { RED_ACTIVE } else { RED_INACTIVE }
    }

    // ---- CONSISTENCY_CHECKS ----

    /// The slab part of the invariant checker: bitmap count = `inuse`, summary exact, padding
    /// bits set, list tag matches the count and the links are mutual, never-constructed
    /// objects are free, frames map back to this slab.
    pub(crate) fn check_slab(&self, gi: u32, s: u32) -> Result<(), InvariantViolation> {
        let v = |what| violation(what, s, gi);
        let d = self.slab(s).map_err(|_| v("slab index out of range"))?;
        let c = self.cache(gi).map_err(|_| v("cache index out of range"))?;
        if d.cache != gi || d.order != c.order {
            return Err(v("slab cache/order mismatch"));
        }
        let bm = self.bitmap(s).map_err(|_| v("bitmap out of range"))?;
        let mut count = 0u32;
        for (w, &word) in bm.iter().enumerate() {
            let valid = u32::from(c.objs).saturating_sub(w as u32 * 64).min(64);
            let pad = if valid == 64 { 0 } else { u64::MAX.checked_shl(valid).unwrap_or(0) };
            if word & pad != pad {
                return Err(v("bitmap padding bit clear"));
            }
            count += (word & !pad).count_ones();
            if ((d.summary >> w) & 1 == 1) != (word != u64::MAX) {
                return Err(v("bitmap summary wrong"));
            }
        }
        if count != u32::from(d.inuse) {
            return Err(violation("bitmap count != inuse", count, d.inuse));
        }
        let want = match d.inuse {
            0 => LIST_EMPTY,
            n if n >= c.objs => LIST_FULL,
            _ => LIST_PARTIAL,
        };
        let releasing = d.list == LIST_RELEASING && d.inuse == 0 && c.release_token != 0;
        if (d.list != want && !releasing) || d.inuse > c.objs {
            return Err(v("slab on the wrong list"));
        }
        if d.prev == NIL {
            if c.heads.get(d.list as usize) != Some(&s) {
                return Err(v("list head does not point at first slab"));
            }
        } else if self.slab(d.prev).map(|p| p.next) != Ok(s) {
            return Err(v("prev.next is not this slab"));
        }
        if d.next != NIL && self.slab(d.next).map(|n| n.prev) != Ok(s) {
            return Err(v("next.prev is not this slab"));
        }
        for idx in u32::from(d.constructed)..u32::from(c.objs) {
            if self.obj_allocated(s, idx).unwrap_or(true) {
                return Err(violation("allocated object above constructed mark", s, idx));
            }
        }
        let client = self.cache_client(gi);
        for page in d.first_page..d.first_page + (1u32 << d.order) {
            let f = self.page_map_get(client, page).map_err(|_| v("slab page outside window"))?;
            match self.frame(f) {
                Ok(fd)
                    if fd.kind == super::storage::FRAME_SLAB
                        && fd.link == s
                        && fd.page == page
                        && fd.client == client => {}
                _ => return Err(violation("slab page not backed by its frame", s, page)),
            }
        }
        Ok(())
    }
}

//! Slabs: descriptors (an intrusive free stack), the private two-level object bitmap, the
//! per-cache empty / partial / full lists (intrusive index links, O(1) moves), and slab
//! creation and destruction.
//!
//! Bitmap: `BITMAP_WORDS` words per slab, bit set = object allocated (bits past the last
//! object are set too, so they are never handed out). The slab's `summary` byte has bit `w`
//! set while word `w` has a free object, so finding the lowest free object is two
//! `trailing_zeros`: O(1).

use protocol::flags::SLAB_RED_ZONE;
use protocol::{ClientId, Error, PAGE_SIZE};

use super::storage::{BITMAP_WORDS, FRAME_SLAB, LIST_EMPTY, LIST_FULL, LIST_NONE, LIST_PARTIAL, NIL, SlabDesc};
use super::track::track_frames_for;
use super::{BROKEN, Engine, Platform};

impl<P: Platform> Engine<'_, P> {
    pub(crate) fn slab_desc_push(&mut self, s: u32) -> Result<(), Error> {
        let head = self.free_slab_head;
        *self.slab_mut(s)? = SlabDesc { next: head, ..SlabDesc::EMPTY };
        self.free_slab_head = s;
        self.free_slabs = self.free_slabs.saturating_add(1);
        Ok(())
    }

    fn slab_desc_pop(&mut self) -> Result<u32, Error> {
        let s = self.free_slab_head;
        if s == NIL {
            return Err(Error::OutOfMemory);
        }
        self.free_slab_head = self.slab(s)?.next;
        self.free_slabs = self.free_slabs.saturating_sub(1);
        Ok(s)
    }

    pub(crate) fn bitmap(&self, s: u32) -> Result<&[u64], Error> {
        let base = (s as usize).checked_mul(BITMAP_WORDS).ok_or(BROKEN)?;
        self.st.bitmaps.get(base..base + BITMAP_WORDS).ok_or(BROKEN)
    }

    fn bitmap_mut(&mut self, s: u32) -> Result<&mut [u64], Error> {
        let base = (s as usize).checked_mul(BITMAP_WORDS).ok_or(BROKEN)?;
        self.st.bitmaps.get_mut(base..base + BITMAP_WORDS).ok_or(BROKEN)
    }

    /// Whether object `idx` of slab `s` is allocated.
    pub(crate) fn obj_allocated(&self, s: u32, idx: u32) -> Result<bool, Error> {
        let w = self.bitmap(s)?.get((idx / 64) as usize).ok_or(BROKEN)?;
        Ok(w & (1u64 << (idx % 64)) != 0)
    }

    /// Set or clear the bitmap bit of object `idx` only (no counts, no summary): used by the
    /// bulk free's duplicate detection, always restored.
    pub(crate) fn obj_bit_toggle(&mut self, s: u32, idx: u32) -> Result<(), Error> {
        let w = self.bitmap_mut(s)?.get_mut((idx / 64) as usize).ok_or(BROKEN)?;
        *w ^= 1u64 << (idx % 64);
        Ok(())
    }

    /// The lowest free object of slab `s` (without taking it).
    pub(crate) fn slab_peek_free(&self, s: u32) -> Result<u32, Error> {
        let summary = self.slab(s)?.summary;
        let w = summary.trailing_zeros();
        let word = self.bitmap(s)?.get(w as usize).copied().ok_or(BROKEN)?;
        let b = (!word).trailing_zeros();
        if b >= 64 {
            return Err(BROKEN);
        }
        Ok(w * 64 + b)
    }

    /// Mark object `idx` allocated or free, keeping the summary and `inuse` exact.
    pub(crate) fn slab_set_obj(&mut self, s: u32, idx: u32, allocated: bool) -> Result<(), Error> {
        let wi = idx / 64;
        let bm = self.bitmap_mut(s)?;
        let w = bm.get_mut(wi as usize).ok_or(BROKEN)?;
        if allocated {
            *w |= 1u64 << (idx % 64);
        } else {
            *w &= !(1u64 << (idx % 64));
        }
        let full = *w == u64::MAX;
        let d = self.slab_mut(s)?;
        if full {
            d.summary &= !(1u8 << wi);
        } else {
            d.summary |= 1u8 << wi;
        }
        d.inuse = if allocated { d.inuse.checked_add(1) } else { d.inuse.checked_sub(1) }.ok_or(BROKEN)?;
        Ok(())
    }

    fn list_unlink(&mut self, gi: u32, s: u32) -> Result<(), Error> {
        let d = *self.slab(s)?;
        let list = d.list as usize;
        if d.prev != NIL {
            self.slab_mut(d.prev)?.next = d.next;
        } else {
            *self.cache_mut(gi)?.heads.get_mut(list).ok_or(BROKEN)? = d.next;
        }
        if d.next != NIL {
            self.slab_mut(d.next)?.prev = d.prev;
        }
        let c = self.cache_mut(gi)?;
        let n = c.counts.get_mut(list).ok_or(BROKEN)?;
        *n = n.checked_sub(1).ok_or(BROKEN)?;
        let d = self.slab_mut(s)?;
        d.prev = NIL;
        d.next = NIL;
        d.list = LIST_NONE;
        Ok(())
    }

    fn list_push(&mut self, gi: u32, s: u32, list: u8) -> Result<(), Error> {
        let c = self.cache_mut(gi)?;
        let head = *c.heads.get(list as usize).ok_or(BROKEN)?;
        *c.heads.get_mut(list as usize).ok_or(BROKEN)? = s;
        let n = c.counts.get_mut(list as usize).ok_or(BROKEN)?;
        *n = n.saturating_add(1);
        if head != NIL {
            self.slab_mut(head)?.prev = s;
        }
        let d = self.slab_mut(s)?;
        d.prev = NIL;
        d.next = head;
        d.list = list;
        Ok(())
    }

    /// Move slab `s` to `list` (O(1)); the two-phase shrink parks empty slabs on
    /// `LIST_RELEASING`, where no allocation finds them.
    pub(crate) fn slab_move(&mut self, gi: u32, s: u32, list: u8) -> Result<(), Error> {
        if self.slab(s)?.list != LIST_NONE {
            self.list_unlink(gi, s)?;
        }
        self.list_push(gi, s, list)
    }

    /// Put slab `s` on the list its in-use count calls for (O(1)).
    pub(crate) fn slab_relist(&mut self, gi: u32, s: u32) -> Result<(), Error> {
        let objs = self.cache(gi)?.objs;
        let d = self.slab(s)?;
        let want = match d.inuse {
            0 => LIST_EMPTY,
            n if n >= objs => LIST_FULL,
            _ => LIST_PARTIAL,
        };
        if d.list != want {
            if d.list != LIST_NONE {
                self.list_unlink(gi, s)?;
            }
            self.list_push(gi, s, want)?;
        }
        Ok(())
    }

    /// Window offset of the start of object `idx`'s stride (red zone included).
    pub(crate) fn obj_stride_start(&self, gi: u32, s: u32, idx: u32) -> Result<u64, Error> {
        let c = self.cache(gi)?;
        let base = u64::from(self.slab(s)?.first_page) * PAGE_SIZE as u64;
        Ok(base + u64::from(idx) * u64::from(c.stride))
    }

    /// A new empty slab for cache `gi` of `client`, or an error with nothing changed. A slab
    /// of a STORE_USER cache (or of a red-zoned kmalloc cache, for its requested sizes) also
    /// takes the private frames for its records, charged to the client like its pages. Its
    /// objects count as constructed at once: the client that gets the first of them constructs
    /// them all (Linux runs the ctor over a new slab).
    pub(crate) fn slab_create(&mut self, client: ClientId, gi: u32) -> Result<u32, Error> {
        let c = self.cache(gi)?;
        let (order, objs, flags, poisoned) = (c.order, c.objs, c.flags, super::cache::poisons(c));
        let records = super::track::has_records(c);
        let pages = 1u32 << order;
        let tracks = if records { track_frames_for(u32::from(objs)) } else { 0 };
        // Every check first, the client's own limits before the shared ones.
        self.quota_check(client, pages, tracks)?;
        let first = self.window_find(client, pages, pages)?;
        self.pool_check(client, pages.saturating_add(tracks))?;
        if self.free_slab_head == NIL {
            return Err(self.short(client, super::ShortageKind::SlabDescriptors, 1));
        }
        let s = self.slab_desc_pop()?;
        *self.slab_mut(s)? = SlabDesc { cache: gi, first_page: first, order, constructed: objs, ..SlabDesc::EMPTY };
        if let Err(e) = self.track_frames_take(client, s, tracks) {
            self.slab_desc_push(s)?;
            return Err(e);
        }
        if let Err(e) = self.pages_take(client, first, pages, |_| (FRAME_SLAB, s)) {
            self.track_frames_give(client, s)?;
            self.slab_desc_push(s)?;
            return Err(e);
        }
        let mut summary = 0u8;
        let bm = self.bitmap_mut(s)?;
        for (w, word) in bm.iter_mut().enumerate() {
            let valid = u32::from(objs).saturating_sub(w as u32 * 64).min(64);
            *word = if valid == 64 { 0 } else { u64::MAX.checked_shl(valid).unwrap_or(0) };
            if *word != u64::MAX {
                summary |= 1u8 << w;
            }
        }
        self.slab_mut(s)?.summary = summary;
        self.slab_relist(gi, s)?;
        // Fresh debug state: every object free (poisoned) with inactive red zones. A platform
        // failure gives the slab back: nothing changed.
        if let Err(e) = self.slab_debug_init(client, gi, s, u32::from(objs), flags, poisoned) {
            self.slab_destroy(gi, s)?;
            return Err(e);
        }
        Ok(s)
    }

    fn slab_debug_init(
        &mut self,
        client: ClientId,
        gi: u32,
        s: u32,
        objs: u32,
        flags: u32,
        poisoned: bool,
    ) -> Result<(), Error> {
        if poisoned {
            for idx in 0..objs {
                self.poison_object(client, gi, s, idx)?;
            }
        }
        if flags & SLAB_RED_ZONE != 0 {
            for idx in 0..objs {
                self.red_zone_fill(client, gi, s, idx, protocol::flags::RED_INACTIVE)?;
            }
        }
        Ok(())
    }

    /// Give slab `s` of cache `gi` back to the pool: pages released, record frames and
    /// descriptor freed. Returns the pages released.
    pub(crate) fn slab_destroy(&mut self, gi: u32, s: u32) -> Result<u32, Error> {
        let client = self.cache_client(gi);
        let d = *self.slab(s)?;
        if d.list != LIST_NONE {
            self.list_unlink(gi, s)?;
        }
        let pages = 1u32 << d.order;
        self.pages_release(client, d.first_page, pages)?;
        self.track_frames_give(client, s)?;
        self.slab_desc_push(s)?;
        Ok(pages)
    }
}

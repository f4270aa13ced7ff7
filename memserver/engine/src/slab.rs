//! Slabs: descriptors (an intrusive free stack), the two-level object bitmap, the per-cache
//! empty / partial / full lists (intrusive index links, O(1) moves), and slab creation and
//! destruction.
//!
//! Lists: a slab with free and allocated objects is partial, one without free objects full,
//! one without allocated objects empty; one exception, as SLUB keeps empty slabs on its
//! partial list: the first partial slab stays there when it empties, so an allocation and a
//! free in turn (the commonest pattern) move no slab between lists. It goes to the empty list
//! as soon as another slab is put first on the partial list, and before any shrink
//! ([`Engine::slab_settle_partial_head`]), so the empty list is every empty slab whenever a
//! shrink (plain, reclaim, or the first step of a two-phase one) looks at it. A fourth list,
//! `LIST_RELEASING`, holds the empty slabs a two-phase shrink named (`release`).
//!
//! Bitmap: `ceil(objs / 64)` words per slab in a private frame (`bitmap`), bit set = object
//! allocated (bits past the last object are set too, so they are never handed out). The
//! slab's `summary` byte has bit `w` set while word `w` has a free object, so finding the
//! lowest free object is two `trailing_zeros`: O(1).

use protocol::flags::SLAB_RED_ZONE;
use protocol::{ClientId, Error, PAGE_SIZE};

use super::bitmap::Bits;
use super::storage::{FRAME_SLAB, LIST_EMPTY, LIST_FULL, LIST_NONE, LIST_PARTIAL, NIL, SlabDesc};
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

    /// The lowest free object of slab `s`, whose bitmaps are at `b` (without taking it).
    #[inline]
    pub(crate) fn slab_peek_free(&self, s: u32, b: &Bits) -> Result<u32, Error> {
        let w = self.slab(s)?.summary.trailing_zeros();
        let word = self.word(b, false, w as usize)?;
        let b = (!word).trailing_zeros();
        if b >= 64 {
            return Err(BROKEN);
        }
        Ok(w * 64 + b)
    }

    /// Mark object `idx` of slab `s` (bitmaps at `b`) allocated or free, keeping the summary
    /// and `inuse` exact. Returns the new `inuse`.
    #[inline]
    pub(crate) fn slab_set_obj(&mut self, s: u32, b: &Bits, idx: u32, allocated: bool) -> Result<u16, Error> {
        let wi = idx / 64;
        let full = self.obj_set_allocated(b, idx, allocated)? == u64::MAX;
        let d = self.slab_mut(s)?;
        if full {
            d.summary &= !(1u8 << wi);
        } else {
            d.summary |= 1u8 << wi;
        }
        d.inuse = if allocated { d.inuse.checked_add(1) } else { d.inuse.checked_sub(1) }.ok_or(BROKEN)?;
        Ok(d.inuse)
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
        if list == LIST_PARTIAL {
            self.slab_settle_partial_head(gi)?;
        }
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

    /// Put slab `s` on the list its in-use count calls for (O(1); an emptied first partial
    /// slab stays first, see the module documentation).
    #[inline]
    pub(crate) fn slab_relist(&mut self, gi: u32, s: u32) -> Result<(), Error> {
        let objs = self.cache(gi)?.objs;
        let d = self.slab(s)?;
        let want = list_for(d, objs);
        if d.list != want {
            self.slab_move(gi, s, want)?;
        }
        Ok(())
    }

    /// Moves an empty first partial slab of cache `gi` to the empty list (before another slab
    /// goes first, and before a shrink).
    pub(crate) fn slab_settle_partial_head(&mut self, gi: u32) -> Result<(), Error> {
        let head = self.cache(gi)?.heads.get(usize::from(LIST_PARTIAL)).copied().unwrap_or(NIL);
        if head != NIL && self.slab(head)?.inuse == 0 {
            self.list_unlink(gi, head)?;
            self.list_push(gi, head, LIST_EMPTY)?;
        }
        Ok(())
    }

    /// Window offset of the start of object `idx`'s stride (red zone included).
    pub(crate) fn obj_stride_start(&self, gi: u32, s: u32, idx: u32) -> Result<u64, Error> {
        let c = self.cache(gi)?;
        let base = u64::from(self.slab(s)?.first_page) * PAGE_SIZE as u64;
        Ok(base + u64::from(idx) * u64::from(c.stride))
    }

    /// A new empty slab for cache `gi` of `client`, or an error with nothing changed. Its
    /// bitmaps take a record in a private bitmap frame (a new frame when the cache has none
    /// with room), and a slab of a STORE_USER cache (or of a red-zoned kmalloc cache, for its
    /// requested sizes) the private frames for its records: both charged to the client like
    /// its pages. Its objects count as constructed at once: the client that gets the first of
    /// them constructs them all (Linux runs the ctor over a new slab).
    pub(crate) fn slab_create(&mut self, client: ClientId, gi: u32) -> Result<u32, Error> {
        let c = self.cache(gi)?;
        let (order, objs, flags, poisoned) = (c.order, c.objs, c.flags, super::cache::poisons(c));
        let records = super::track::has_records(c);
        let pages = 1u32 << order;
        let tracks = if records { track_frames_for(u32::from(objs)) } else { 0 };
        let private = tracks.saturating_add(self.bitmap_frames_needed(gi)?);
        // Every check first, the client's own limits before the shared ones.
        self.quota_check(client, pages, private)?;
        let first = self.window_find(client, pages, pages)?;
        self.pool_check(client, pages.saturating_add(private))?;
        if self.free_slab_head == NIL {
            return Err(self.short(client, super::ShortageKind::SlabDescriptors, 1));
        }
        let s = self.slab_desc_pop()?;
        *self.slab_mut(s)? = SlabDesc { cache: gi, first_page: first, order, constructed: objs, ..SlabDesc::EMPTY };
        if let Err(e) = self.bitmap_record_take(client, gi, s) {
            self.slab_desc_push(s)?;
            return Err(e);
        }
        if let Err(e) = self.track_frames_take(client, s, tracks) {
            self.bitmap_record_give(client, gi, s)?;
            self.slab_desc_push(s)?;
            return Err(e);
        }
        if let Err(e) = self.pages_take(client, first, pages, |_| (FRAME_SLAB, s)) {
            self.track_frames_give(client, s)?;
            self.bitmap_record_give(client, gi, s)?;
            self.slab_desc_push(s)?;
            return Err(e);
        }
        let summary = self.bitmap_clear(s, objs)?;
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

    /// Give slab `s` of cache `gi` back to the pool: pages released, record frames, bitmap
    /// record and descriptor freed. Returns the pages released.
    pub(crate) fn slab_destroy(&mut self, gi: u32, s: u32) -> Result<u32, Error> {
        let client = self.cache_client(gi);
        let d = *self.slab(s)?;
        if d.list != LIST_NONE {
            self.list_unlink(gi, s)?;
        }
        let pages = 1u32 << d.order;
        self.pages_release(client, d.first_page, pages)?;
        self.track_frames_give(client, s)?;
        self.bitmap_record_give(client, gi, s)?;
        self.slab_desc_push(s)?;
        Ok(pages)
    }
}

/// The list slab `d` of a cache of `objs` objects per slab belongs on (the first partial slab,
/// the one without a `prev`, keeps its place when it empties).
#[inline]
pub(crate) fn list_for(d: &SlabDesc, objs: u16) -> u8 {
    match d.inuse {
        0 if d.list == LIST_PARTIAL && d.prev == NIL => LIST_PARTIAL,
        0 => LIST_EMPTY,
        n if n >= objs => LIST_FULL,
        _ => LIST_PARTIAL,
    }
}

//! The hot path: allocation and free in caches without debug flags, which is every cache with
//! magazines (debug caches bypass them) and every `Alloc`/`Free` IPC of such a cache.
//!
//! The same rules as the general path (`cache`), with the work per object cut to what the
//! rules need: the cache's geometry is read once per call ([`Shape`]), a handle resolves in a
//! few table reads (window page → frame → slab → index), and an allocation takes free objects
//! a bitmap word at a time, relisting its slab once. A free checks the object is held
//! (`DoubleFree` for a free or a parked object, found through the parked bits, see `bulk`);
//! the bulk calls that return objects step them a run of one slab at a time (`runs`). Errors
//! are those of the general path; where telling them apart takes more than the hot path reads
//! (an object of another cache), the general `locate` decides.

use protocol::control::ObjectIndex;
use protocol::flags::SLAB_DEBUG;
use protocol::{ClientId, Error, Handle, PAGE_SIZE};

use super::bitmap::{bitmap_words, get_u64 as get, put_u64 as put, record_at};
use super::storage::{FRAME_SLAB, LIST_EMPTY, LIST_FULL, LIST_PARTIAL, NIL, SlabDesc};
use super::{BROKEN, Engine, Platform};

/// What the hot path needs of a cache, read once per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub(crate) gi: u32,
    stride: u64,
    obj_offset: u64,
    objs: u16,
    /// Offset from a slab's first object → object index (no division).
    index: ObjectIndex,
    words: usize,
    /// The client's window, in pages.
    window: u32,
}

impl Shape {
    /// Window offset of the first object of slab `d`.
    #[inline(always)]
    pub(crate) fn objects_start(&self, d: &SlabDesc) -> u64 {
        u64::from(d.first_page) * PAGE_SIZE as u64 + self.obj_offset
    }

    /// Index of the object `handle` names in the slab whose first object is at `start`, if it
    /// names one (no flag bits, on an object boundary, inside the slab's objects). Below the
    /// slab's first object the offset wraps, and `ObjectIndex` refuses it too.
    #[inline(always)]
    pub(crate) fn object_in(&self, start: u64, handle: Handle) -> Option<u32> {
        if handle.0 & Handle::FLAG_BITS != 0 {
            return None;
        }
        self.index.of(handle.0.wrapping_sub(start)).map(|idx| idx as u32)
    }

    /// Words of each of a slab's two bitmaps.
    #[inline(always)]
    pub(crate) fn words(&self) -> usize {
        self.words
    }
}

/// One resolved object: its slab and index.
#[derive(Clone, Copy, Debug, Default)]
struct Obj {
    slab: u32,
    idx: u32,
}

/// Where an object's bits are: its slab's bitmap frame, the byte offsets of the words holding
/// its allocated and parked bits, and its bit in them.
#[derive(Clone, Copy, Debug)]
struct Place {
    frame: u32,
    allocated_at: usize,
    parked_at: usize,
    bit: u64,
}

/// Where the bits of object `idx` are, in record `record` of bitmap frame `frame`.
#[inline(always)]
fn place(sh: &Shape, frame: u32, record: u8, idx: u32) -> Place {
    let allocated_at = record_at(sh.words, usize::from(record)) + 8 + 8 * (idx / 64) as usize;
    Place { frame, allocated_at, parked_at: allocated_at + 8 * sh.words, bit: 1u64 << (idx % 64) }
}

impl<P: Platform> Engine<'_, P> {
    /// The shape of cache `gi` of `client`, if it has no debug flag (`None`: take the general
    /// path).
    #[inline]
    pub(crate) fn plain_shape(&self, client: ClientId, gi: u32) -> Result<Option<Shape>, Error> {
        let c = self.cache(gi)?;
        if c.flags & SLAB_DEBUG != 0 {
            return Ok(None);
        }
        let window = self.client(client)?.window_pages;
        let Some(index) = ObjectIndex::new(u64::from(c.stride), u64::from(c.objs)) else { return Ok(None) };
        Ok(Some(Shape {
            gi,
            index,
            stride: u64::from(c.stride),
            obj_offset: u64::from(c.obj_offset),
            objs: c.objs,
            words: bitmap_words(c.objs),
            window,
        }))
    }

    /// The object of the cache of `sh` that `handle` names, else the error the general path
    /// gives (`InvalidObject`, `WrongCache`).
    #[inline(always)]
    fn plain_resolve(&self, client: ClientId, sh: &Shape, handle: Handle) -> Result<(Obj, Place), Error> {
        match self.plain_find(client, sh, handle) {
            Some(found) => Ok(found),
            None => Err(self.plain_resolve_error(client, sh, handle)),
        }
    }

    /// [`Self::plain_resolve`] without the error: `None` for anything but an object of the
    /// cache of `sh`.
    #[inline(always)]
    fn plain_find(&self, client: ClientId, sh: &Shape, handle: Handle) -> Option<(Obj, Place)> {
        let (s, d) = self.plain_slab_of(client, sh, handle)?;
        let idx = sh.object_in(sh.objects_start(d), handle)?;
        let o = Obj { slab: s, idx };
        Some((o, place(sh, d.bitmap_frame, d.bitmap_record, o.idx)))
    }

    /// The slab of the cache of `sh` whose pages hold `handle` (its index and descriptor), else
    /// `None`; the handle is not checked against the slab's objects ([`Shape::object_in`] does
    /// that). The page map and frame table agree by invariant (`check_invariants`), so the
    /// frame's own client and page are not read again here.
    #[inline(always)]
    pub(crate) fn plain_slab_of(&self, client: ClientId, sh: &Shape, handle: Handle) -> Option<(u32, &SlabDesc)> {
        let page = handle.0 / PAGE_SIZE as u64;
        if page >= u64::from(sh.window) {
            return None;
        }
        let f = self.page_map_get(client, page as u32).ok()?;
        let fd = self.st.frames.get(f as usize)?;
        if fd.kind != FRAME_SLAB {
            return None;
        }
        let s = fd.link;
        let d = self.st.slabs.get(s as usize)?;
        if d.cache != sh.gi {
            return None;
        }
        Some((s, d))
    }

    /// The error the general path gives for a handle the hot path did not resolve.
    #[cold]
    pub(crate) fn plain_resolve_error(&self, client: ClientId, sh: &Shape, handle: Handle) -> Error {
        match self.locate_in(client, sh.gi, handle) {
            Err(e) => e,
            // The general path resolved what the hot path did not: broken metadata.
            Ok(_) => BROKEN,
        }
    }

    /// Allocates up to `out.len()` objects of the cache of `sh` (at least one, or the error
    /// that kept it from one): the lowest free objects of the first partial slab, else of an
    /// empty slab, else of a new slab, a bitmap word at a time. Bit `i` of the mask returned
    /// says `out[i]` is fresh (its slab was created by this call: the client constructs the
    /// whole slab).
    pub(crate) fn plain_alloc(
        &mut self,
        client: ClientId,
        sh: &Shape,
        out: &mut [Handle],
    ) -> Result<(usize, u64), Error> {
        let mut n = 0usize;
        let mut fresh = 0u64;
        while n < out.len() {
            let (s, created) = match self.plain_slab(client, sh) {
                Ok(found) => found,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            };
            let taken = self.plain_take_from(sh, s, out.get_mut(n..).ok_or(BROKEN)?)?;
            if taken == 0 {
                return Err(BROKEN);
            }
            if created {
                fresh |= 1u64.checked_shl(n as u32).unwrap_or(0);
            }
            n += taken;
        }
        let c = self.cache_mut(sh.gi)?;
        c.active_objs = c.active_objs.saturating_add(n as u32);
        self.seq = self.seq.saturating_add(n as u64);
        Ok((n, fresh))
    }

    /// Allocates one object of the cache of `sh` (`kmem_cache_alloc`, `kmalloc`): the lowest
    /// free object of the first partial slab, else of an empty slab, else of a new slab. Its
    /// handle, and whether it is fresh (its slab was created by this call).
    pub(crate) fn plain_alloc_one(&mut self, client: ClientId, sh: &Shape) -> Result<(Handle, bool), Error> {
        let (s, fresh) = self.plain_slab(client, sh)?;
        let d = *self.slab(s)?;
        let w = d.summary.trailing_zeros();
        let at = record_at(sh.words, usize::from(d.bitmap_record)) + 8 + 8 * w as usize;
        let bytes = self.platform.private_bytes_mut(d.bitmap_frame)?;
        let word = get(bytes, at)?;
        let bit = (!word).trailing_zeros();
        if bit >= 64 {
            return Err(BROKEN);
        }
        let word = word | 1u64 << bit;
        put(bytes, at, word)?;
        let idx = w * 64 + bit;
        let handle = u64::from(d.first_page) * PAGE_SIZE as u64 + sh.obj_offset + u64::from(idx) * sh.stride;
        let d = self.slab_mut(s)?;
        if word == u64::MAX {
            d.summary &= !(1u8 << w);
        }
        d.inuse = d.inuse.checked_add(1).ok_or(BROKEN)?;
        if d.inuse >= sh.objs || d.list != LIST_PARTIAL {
            self.slab_relist(sh.gi, s)?;
        }
        let c = self.cache_mut(sh.gi)?;
        c.active_objs = c.active_objs.saturating_add(1);
        self.seq = self.seq.saturating_add(1);
        Ok((Handle(handle), fresh))
    }

    /// The slab the next allocation takes from: the first partial, else the first empty, else
    /// a new one.
    /// Whether it was created by this call (its first object taken is then fresh: the client
    /// constructs the whole slab).
    #[inline(always)]
    fn plain_slab(&mut self, client: ClientId, sh: &Shape) -> Result<(u32, bool), Error> {
        let c = self.cache(sh.gi)?;
        let head = |list: u8| c.heads.get(usize::from(list)).copied().unwrap_or(NIL);
        match (head(LIST_PARTIAL), head(LIST_EMPTY)) {
            (partial, _) if partial != NIL => Ok((partial, false)),
            (_, empty) if empty != NIL => Ok((empty, false)),
            _ => Ok((self.slab_create(client, sh.gi)?, true)),
        }
    }

    /// Takes free objects of slab `s` into `out` (until it is full or `out` is). Returns how
    /// many.
    #[inline(always)]
    fn plain_take_from(&mut self, sh: &Shape, s: u32, out: &mut [Handle]) -> Result<usize, Error> {
        let d = *self.slab(s)?;
        let base = u64::from(d.first_page) * PAGE_SIZE as u64 + sh.obj_offset;
        let words_at = record_at(sh.words, usize::from(d.bitmap_record)) + 8;
        let mut summary = d.summary;
        let bytes = self.platform.private_bytes_mut(d.bitmap_frame)?;
        let mut n = 0usize;
        while n < out.len() && summary != 0 {
            let w = summary.trailing_zeros();
            let at = words_at + 8 * w as usize;
            let mut word = get(bytes, at)?;
            while word != u64::MAX && n < out.len() {
                let bit = (!word).trailing_zeros();
                word |= 1u64 << bit;
                let idx = w * 64 + bit;
                *out.get_mut(n).ok_or(BROKEN)? = Handle(base + u64::from(idx) * sh.stride);
                n += 1;
            }
            put(bytes, at, word)?;
            if word == u64::MAX {
                summary &= !(1u8 << w);
            }
        }
        let d = self.slab_mut(s)?;
        d.summary = summary;
        d.inuse = d.inuse.checked_add(n as u16).ok_or(BROKEN)?;
        let want = if d.inuse >= sh.objs { LIST_FULL } else { LIST_PARTIAL };
        if d.list != want {
            self.slab_relist(sh.gi, s)?;
        }
        Ok(n)
    }

    /// Frees one object the client holds (`kmem_cache_free`, `kfree` of a slab object):
    /// allocated and not parked, else `DoubleFree`.
    pub(crate) fn plain_free_one(&mut self, client: ClientId, sh: &Shape, handle: Handle) -> Result<(), Error> {
        let (o, p) = self.plain_resolve(client, sh, handle)?;
        let bytes = self.platform.private_bytes_mut(p.frame)?;
        let (allocated, parked) = (get(bytes, p.allocated_at)?, get(bytes, p.parked_at)?);
        if allocated & p.bit == 0 || parked & p.bit != 0 {
            return Err(Error::DoubleFree);
        }
        put(bytes, p.allocated_at, allocated & !p.bit)?;
        self.plain_slab_freed(sh, &o)?;
        let c = self.cache_mut(sh.gi)?;
        c.active_objs = c.active_objs.checked_sub(1).ok_or(BROKEN)?;
        self.seq = self.seq.saturating_add(1);
        Ok(())
    }

    /// Object `o` was freed in its bitmap: its slab's summary, count and list follow.
    #[inline(always)]
    fn plain_slab_freed(&mut self, sh: &Shape, o: &Obj) -> Result<(), Error> {
        let d = self.slab_mut(o.slab)?;
        d.summary |= 1u8 << (o.idx / 64);
        d.inuse = d.inuse.checked_sub(1).ok_or(BROKEN)?;
        // Only a slab that was full, or became empty and is not the first partial one, changes
        // lists.
        if d.list != LIST_PARTIAL || (d.inuse == 0 && d.prev != NIL) {
            self.slab_relist(sh.gi, o.slab)?;
        }
        Ok(())
    }
}

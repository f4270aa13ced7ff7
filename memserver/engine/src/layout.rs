//! Object layout: Linux `calculate_alignment()`, the stride with red zones, and the slab order.
//!
//! Layout of one stride (`obj_offset` = 0 without `RED_ZONE`):
//! ```text
//! | left red zone (obj_offset) | object (size) | right red zone (≥ 8) .. padding to align |
//! ```
//! The handle of an object points at the object, after the left red zone. Poison, free
//! bitmaps and STORE_USER records live in private memory, so only red zones grow the stride.

use protocol::flags::{SLAB_HWCACHE_ALIGN, SLAB_RED_ZONE};
use protocol::{ALIGN_MAX, Error, OBJECT_SIZE_MAX, PAGE_SIZE};

use super::storage::MAX_OBJS_PER_SLAB;

/// Cache line size used by `SLAB_HWCACHE_ALIGN`.
pub const CACHE_LINE: u32 = 64;
/// Linux `ARCH_SLAB_MINALIGN` / `sizeof(void *)`: no object is less aligned.
pub const MIN_ALIGN: u32 = 8;
/// Bytes of each red zone before rounding.
pub const RED_ZONE_BYTES: u32 = 8;
/// Slab orders tried first (Linux `PAGE_ALLOC_COSTLY_ORDER`).
pub const PREFERRED_MAX_ORDER: u8 = 3;
/// Absolute largest slab order (a 64 KiB object with 4 KiB-aligned red zones needs 5).
pub const MAX_ORDER: u8 = 5;

/// The computed geometry of a cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Effective object address alignment.
    pub align: u32,
    /// Bytes per object in the slab.
    pub stride: u32,
    /// Offset of the object in its stride (the left red zone).
    pub obj_offset: u32,
    /// Slab order: `2^order` pages per slab.
    pub order: u8,
    /// Objects per slab.
    pub objs: u16,
}

/// Linux `calculate_alignment()`: cache line for `HWCACHE_ALIGN` (halved while the object
/// fits in half of it), at least 8, at least the caller's `align`.
pub fn calculate_alignment(flags: u32, align: u32, size: u32) -> u32 {
    let mut align = align;
    if flags & SLAB_HWCACHE_ALIGN != 0 {
        let mut ralign = CACHE_LINE;
        while size <= ralign / 2 {
            ralign /= 2;
        }
        align = align.max(ralign);
    }
    align.max(MIN_ALIGN)
}

/// Slab order for a stride: the smallest order in `0..=3` holding at least one object whose
/// leftover is at most 1/16 of the slab; if none qualifies, the order (up to the one needed
/// for a single object, so a 64 KiB object gets order 4) with the least leftover fraction,
/// the smaller order on a tie. Returns `(order, objects)`.
pub fn slab_order(stride: u32) -> Option<(u8, u16)> {
    if stride == 0 {
        return None;
    }
    let page = PAGE_SIZE as u64;
    let stride64 = u64::from(stride);
    let one = (0..=MAX_ORDER).find(|&o| page << o >= stride64)?;
    let max = one.max(PREFERRED_MAX_ORDER);
    let objs_at = |o: u8| ((page << o) / stride64).min(u64::from(MAX_OBJS_PER_SLAB));
    let leftover_at = |o: u8| (page << o) - objs_at(o) * stride64;
    for o in 0..=PREFERRED_MAX_ORDER.min(max) {
        let objs = objs_at(o);
        if objs >= 1 && leftover_at(o) * 16 <= page << o {
            return Some((o, objs as u16));
        }
    }
    let mut best: Option<u8> = None;
    for o in one..=max {
        best = match best {
            // leftover(o) / slab(o) < leftover(b) / slab(b), cross-multiplied.
            Some(b) if leftover_at(o) * (page << b) >= leftover_at(b) * (page << o) => Some(b),
            _ => Some(o),
        };
    }
    best.map(|o| (o, objs_at(o) as u16))
}

/// Validate `size`, `align` and `flags` (already checked against `SLAB_ALL`) and compute the
/// layout.
pub fn compute(size: u32, align: u32, flags: u32) -> Result<Layout, Error> {
    if size == 0 || size > OBJECT_SIZE_MAX {
        return Err(Error::InvalidArgument);
    }
    if align != 0 && (!align.is_power_of_two() || align > ALIGN_MAX) {
        return Err(Error::InvalidArgument);
    }
    geometry(size, align, flags)
}

/// The layout of a kmalloc class of `size` bytes: aligned to the largest power of two dividing
/// the size, as Linux's `create_boot_cache()` aligns power-of-two kmalloc caches "regardless
/// of SL*B debugging options" (so `kmalloc-8k` is 8 KiB aligned, beyond `ALIGN_MAX`, and its
/// left red zone is 8 KiB).
pub fn kmalloc_layout(size: u32, flags: u32) -> Result<Layout, Error> {
    let align = if size == 0 { 0 } else { 1 << size.trailing_zeros() };
    geometry(size, align, flags)
}

/// Alignment, stride, red-zone offset and slab order of objects of `size` bytes aligned to
/// (at least) `align` (0 or a power of two), with `flags`.
fn geometry(size: u32, align: u32, flags: u32) -> Result<Layout, Error> {
    let align = calculate_alignment(flags, align, size);
    let (obj_offset, raw) = if flags & SLAB_RED_ZONE != 0 {
        let left = RED_ZONE_BYTES.next_multiple_of(align);
        (left, left + size + RED_ZONE_BYTES)
    } else {
        (0, size)
    };
    let stride = raw.checked_next_multiple_of(align).ok_or(Error::InvalidArgument)?;
    let (order, objs) = slab_order(stride).ok_or(Error::InvalidArgument)?;
    Ok(Layout { align, stride, obj_offset, order, objs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::flags::SLAB_POISON;

    #[test]
    fn hwcache_align_halves_while_object_fits() {
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 100), 64);
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 33), 64);
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 32), 32);
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 20), 32);
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 16), 16);
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 0, 3), 8);
    }

    #[test]
    fn alignment_never_below_word_size() {
        assert_eq!(calculate_alignment(0, 0, 1), 8);
        assert_eq!(calculate_alignment(0, 2, 1), 8);
        assert_eq!(compute(1, 0, 0).unwrap().stride, 8);
    }

    #[test]
    fn caller_align_is_max_with_hwcache() {
        assert_eq!(calculate_alignment(SLAB_HWCACHE_ALIGN, 128, 10), 128);
        assert_eq!(calculate_alignment(0, 256, 10), 256);
        assert_eq!(compute(10, 256, 0).unwrap().stride, 256);
    }

    #[test]
    fn stride_is_size_rounded_to_alignment() {
        assert_eq!(compute(54, 0, 0).unwrap().stride, 56);
        assert_eq!(compute(100, 0, SLAB_HWCACHE_ALIGN).unwrap().stride, 128);
        assert_eq!(compute(24, 0, SLAB_HWCACHE_ALIGN).unwrap().stride, 32);
    }

    #[test]
    fn red_zone_adds_a_guard_on_each_side() {
        let l = compute(64, 0, SLAB_RED_ZONE).unwrap();
        assert_eq!((l.obj_offset, l.stride), (8, 80));
        let l = compute(64, 64, SLAB_RED_ZONE | SLAB_POISON).unwrap();
        assert_eq!((l.obj_offset, l.stride), (64, 192));
        assert_eq!(l.obj_offset % l.align, 0);
    }

    #[test]
    fn slab_order_smallest_with_leftover_at_most_a_sixteenth() {
        assert_eq!(slab_order(8), Some((0, 512)));
        assert_eq!(slab_order(96), Some((0, 42)));
        assert_eq!(slab_order(8192), Some((1, 1)));
        // 700: order 0 leaves 596 (> 256), order 1 leaves 492 (<= 512).
        assert_eq!(slab_order(700), Some((1, 11)));
    }

    #[test]
    fn slab_order_falls_back_to_least_leftover_fraction() {
        // 3000: no order 0..=3 reaches 1/16; orders 2 and 3 tie at 8.4 % → the smaller.
        assert_eq!(slab_order(3000), Some((2, 5)));
    }

    #[test]
    fn slab_order_grows_to_hold_one_big_object() {
        assert_eq!(slab_order(65536), Some((4, 1)));
        assert_eq!(compute(65536, 0, 0).unwrap().order, 4);
        assert_eq!(compute(65536, 4096, SLAB_RED_ZONE).unwrap().order, 5);
        assert_eq!(slab_order(40000), Some((4, 1)));
    }

    #[test]
    fn kmalloc_classes_keep_natural_alignment_with_red_zones() {
        for size in [8u32, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192] {
            for flags in [0, SLAB_RED_ZONE, SLAB_RED_ZONE | SLAB_POISON] {
                let l = kmalloc_layout(size, flags).unwrap();
                let natural = 1 << size.trailing_zeros();
                assert!(l.align >= natural, "kmalloc-{size} {flags:#x}: align {}", l.align);
                assert_eq!(l.obj_offset % natural, 0, "kmalloc-{size} {flags:#x}: offset {}", l.obj_offset);
                assert_eq!(l.stride % natural, 0, "kmalloc-{size} {flags:#x}: stride {}", l.stride);
                // A slab starts at a multiple of its own size, so offsets inside it are enough.
                assert_eq!(((PAGE_SIZE as u32) << l.order) % natural, 0, "kmalloc-{size}: slab smaller than align");
            }
        }
        assert_eq!(kmalloc_layout(96, 0).unwrap().align, 32);
        assert_eq!(kmalloc_layout(8192, SLAB_RED_ZONE).unwrap().obj_offset, 8192);
    }

    #[test]
    fn create_rejects_bad_size_and_align() {
        assert_eq!(compute(0, 0, 0), Err(Error::InvalidArgument));
        assert_eq!(compute(65537, 0, 0), Err(Error::InvalidArgument));
        assert_eq!(compute(8, 3, 0), Err(Error::InvalidArgument));
        assert_eq!(compute(8, 8192, 0), Err(Error::InvalidArgument));
        assert!(compute(8, 4096, 0).is_ok());
    }
}

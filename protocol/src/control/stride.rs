//! [`ObjectIndex`]: from an offset into a slab to the index of the object starting there, with
//! one multiplication and one rotation instead of a division (Granlund and Montgomery,
//! "Division by invariant integers using multiplication", 1994; Hacker's Delight 10-17). The
//! client library's hardened free and the server's hot free path both ask it, of every handle.

/// The object index of an offset from a slab's first object, for one stride and object count.
///
/// The stride is `odd << shift`. For an offset `x` that is a multiple of the stride,
/// `rotr(x * inverse(odd), shift)` is `x / stride`; for any other `x` it exceeds
/// `u64::MAX / stride`, which is at least the object count (a slab's objects fit in 64 bits),
/// so one comparison with the count tests "an object start" and "inside the slab" together,
/// for every `u64` (an offset below the first object wraps to a huge one and fails too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectIndex {
    /// The multiplicative inverse of the stride's odd part modulo 2^64.
    inverse: u64,
    /// The stride's trailing zero bits.
    shift: u32,
    /// Objects in a slab.
    objects: u64,
}

/// The multiplicative inverse of an odd `d` modulo 2^64 (Newton's iteration; each step
/// doubles the correct low bits: 3, 6, 12, 24, 48, 96).
const fn inverse_of_odd(d: u64) -> u64 {
    let mut x = d;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
        i += 1;
    }
    x
}

impl ObjectIndex {
    /// The index for `objects` objects at `stride` bytes; `None` for a stride of 0, no objects,
    /// or a slab whose bytes do not fit in 64 bits.
    pub const fn new(stride: u64, objects: u64) -> Option<ObjectIndex> {
        if stride == 0 || objects == 0 || stride.checked_mul(objects).is_none() {
            return None;
        }
        let shift = stride.trailing_zeros();
        Some(ObjectIndex { inverse: inverse_of_odd(stride >> shift), shift, objects })
    }

    /// The stride's trailing zero bits (the stride is a multiple of `1 << this`).
    pub const fn stride_trailing_zeros(&self) -> u32 {
        self.shift
    }

    /// The index of the object that starts `offset` bytes after the slab's first object, if
    /// one does (`offset` a multiple of the stride, below the slab's end).
    #[inline(always)]
    pub const fn of(&self, offset: u64) -> Option<u64> {
        let index = offset.wrapping_mul(self.inverse).rotate_right(self.shift);
        if index < self.objects { Some(index) } else { None }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn agrees_with_division_for_every_stride() {
        let strides = (8..=4096u64).step_by(8).chain([1, 4, 12, 20, 24, 40, 72, 96, 192, 3 * 1024, 8200, 1 << 20]);
        for stride in strides {
            let objects = (16 * 4096 / stride).clamp(1, 512);
            let index = ObjectIndex::new(stride, objects).unwrap();
            let span = stride * objects;
            // Below the slab's first object (wrapping), inside, just past it, and far off.
            let around = (0..span + 3 * stride).step_by(4).chain((1..=3 * stride).map(|k| k.wrapping_neg()));
            let odd = [1, 7, span - 1, span, u64::MAX - 7, u64::MAX, 1 << 63, (1 << 63) + stride];
            let scattered = (0..2_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for offset in around.chain(odd).chain(scattered) {
                let expected = (offset < span && offset % stride == 0).then(|| offset / stride);
                assert_eq!(index.of(offset), expected, "stride {stride} offset {offset:#x}");
            }
        }
    }

    #[test]
    fn inverse_is_an_inverse() {
        for d in [1u64, 3, 5, 7, 9, 25, 125, 1001, u64::MAX] {
            assert_eq!(d.wrapping_mul(inverse_of_odd(d)), 1, "{d}");
        }
    }

    #[test]
    fn no_index_for_an_empty_or_overflowing_geometry() {
        assert!(ObjectIndex::new(0, 4).is_none());
        assert!(ObjectIndex::new(64, 0).is_none());
        assert!(ObjectIndex::new(1 << 40, 1 << 30).is_none());
    }
}

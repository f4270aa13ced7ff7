extern crate std;

use std::boxed::Box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

use super::*;

/// A 64-byte, 8-aligned private buffer seen as peer memory (leaked: tests only).
fn region(len: usize) -> PeerMemory {
    let words: &'static mut [u64] = Box::leak(std::vec![0u64; len.div_ceil(8)].into_boxed_slice());
    let base = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the leaked buffer lives forever and is only reached through the PeerMemory.
    unsafe { PeerMemory::new(base, len) }
}

#[test]
fn copies_round_trip_at_every_alignment_and_length() {
    let m = region(64);
    for offset in 0..16 {
        for len in 0..=40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset + 1) as u8).collect();
            assert!(m.fill(0, 64, 0xEE));
            assert!(m.write(offset, &data));
            let mut back = std::vec![0u8; len];
            assert!(m.read(offset, &mut back));
            assert_eq!(back, data, "offset {offset} len {len}");
            // Nothing around the copy changed.
            let mut all = [0u8; 64];
            assert!(m.read(0, &mut all));
            let outside = all.iter().enumerate().filter(|&(i, _)| i < offset || i >= offset + len);
            assert!(outside.clone().all(|(_, &b)| b == 0xEE), "offset {offset} len {len}: {all:02x?}");
        }
    }
}

#[test]
fn out_of_range_is_refused_and_touches_nothing() {
    let m = region(32);
    assert!(m.fill(0, 32, 0xAA));
    let mut buf = [1u8; 8];
    assert!(!m.read(25, &mut buf));
    assert_eq!(buf, [1; 8], "a refused read leaves the buffer");
    assert!(!m.write(30, &[0; 4]));
    assert!(!m.write(usize::MAX, &[0; 1]), "offset + len overflows");
    assert!(!m.fill(1, 32, 0));
    assert_eq!(m.load_u64(24), Some(u64::from_ne_bytes([0xAA; 8])), "nothing was written");
    assert_eq!(m.load_u64(32), None);
    assert_eq!(m.load_u64(4), None, "misaligned");
    assert!(!m.store_u64(28, 0));
    assert_eq!(m.load_u32(28), Some(u32::from_ne_bytes([0xAA; 4])));
    assert_eq!(m.load_u32(29), None, "misaligned");
    assert_eq!(m.load_u32(32), None);
    assert!(!m.store_u32(30, 0) && !m.store_u32(32, 0) && !m.store_u32(usize::MAX - 1, 0));
    assert_eq!(m.load_u64(24), Some(u64::from_ne_bytes([0xAA; 8])), "nothing was written");
    assert!(m.sub(16, 17).is_none() && m.sub(16, 16).is_some());
    assert!(m.atomic_u64(3).is_none() && m.atomic_u64(32).is_none());
}

#[test]
fn values_and_words_and_atomics() {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
    #[repr(C)]
    struct Pair {
        a: u32,
        b: u32,
    }
    let m = region(48);
    assert!(m.write_value(4, &Pair { a: 1, b: 2 }));
    assert_eq!(m.read_value::<Pair>(4), Some(Pair { a: 1, b: 2 }));
    assert_eq!(m.read_value::<Pair>(44), None);
    assert!(m.store_u32(8, 5));
    assert_eq!((m.load_u32(8), m.read_value::<Pair>(4)), (Some(5), Some(Pair { a: 1, b: 5 })));
    assert!(m.store_u64(16, 77));
    assert_eq!(m.load_u64(16), Some(77));
    m.atomic_u64(16).unwrap().fetch_add(3, Ordering::Relaxed);
    assert_eq!(m.load_u64(16), Some(80));
    let sub = m.sub(16, 16).unwrap();
    assert_eq!(sub.load_u64(0), Some(80));
    assert_eq!(sub.addr(), m.addr() + 16);
}

/// A peer rewriting the bytes while they are copied: every copy completes, and each word read
/// is one the peer wrote (volatile word loads do not tear an aligned word).
#[test]
fn concurrent_writer_never_breaks_a_copy() {
    let m = region(256);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut x = 1u64;
            while !stop.load(Ordering::Relaxed) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let word = [(x >> 56) as u8; 8];
                m.write((x as usize % 32) * 8, &word);
            }
        })
    };
    for _ in 0..20_000 {
        let mut buf = [0u8; 256];
        assert!(m.read(0, &mut buf));
        for word in buf.chunks(8) {
            assert!(word.iter().all(|&b| b == word[0]), "torn word {word:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

//! Tests of the control-region layout and its copy-only accessors.

use super::*;
use crate::CacheId;

#[test]
fn layout_offsets_are_as_documented() {
    assert_eq!(HEADER_SIZE, 64);
    assert_eq!(MAGAZINE_SIZE, 520);
    assert_eq!(SLOT_SIZE, 1048);
    assert_eq!(slot_offset(0), 64);
    assert_eq!(slot_offset(1), 64 + 1048);
    assert_eq!(magazine_offset(0, MagazineRole::Loaded), 72);
    assert_eq!(magazine_offset(0, MagazineRole::Previous), 592);
    assert_eq!(magazine_offset(2, MagazineRole::Previous), 64 + 2 * 1048 + 528);
    assert_eq!(control_region_size(0), PAGE_SIZE);
    assert_eq!(control_region_size(3), PAGE_SIZE);
    assert_eq!(control_region_size(4), 2 * PAGE_SIZE);
    assert_eq!(control_region_size(64), 17 * PAGE_SIZE);
    assert_eq!(control_region_size(u16::MAX), (64 + 65535 * 1048usize).div_ceil(4096) * 4096);
    assert_eq!(CONTROL_MAGIC, 0x534d_454d);
}

#[test]
fn header_bytes_are_as_documented() {
    let h = ControlHeader::new(0x0102, 3, 64);
    let b = h.as_bytes();
    assert_eq!(&b[0..4], b"MEMS");
    assert_eq!(&b[4..6], &PROTOCOL_VERSION.to_le_bytes());
    assert_eq!(&b[6..8], &[0x02, 0x01]);
    assert_eq!(&b[8..10], &[3, 0]);
    assert_eq!(&b[10..12], &[64, 0]);
    assert_eq!(&b[12..16], &(SLOT_SIZE as u32).to_le_bytes());
    assert!(b[16..64].iter().all(|&x| x == 0));
}

#[test]
fn client_counters_sit_in_the_header_and_init_zeroes_them() {
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, 2, 64).unwrap();
    assert_eq!(read_client_counters(&region[..]), Ok(ClientCounters::default()));
    region[ALLOC_HITS_OFFSET..ALLOC_HITS_OFFSET + 8].copy_from_slice(&7u64.to_ne_bytes());
    region[FREE_HITS_OFFSET..FREE_HITS_OFFSET + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    region[MAGAZINE_MISSES_OFFSET..MAGAZINE_MISSES_OFFSET + 8].copy_from_slice(&3u64.to_ne_bytes());
    let c = read_client_counters(&region[..]).unwrap();
    assert_eq!((c.alloc_hits, c.free_hits, c.magazine_misses), (7, u64::MAX, 3));
    // Whatever the client writes there, the header still checks.
    assert!(read_header(&region[..]).is_ok());
    init_region(&mut region[..], 1, 2, 64).unwrap();
    assert_eq!(read_client_counters(&region[..]), Ok(ClientCounters::default()));
    assert_eq!(read_client_counters(&region[..8]), Err(Error::InvalidArgument));
}

#[test]
fn init_then_read_header() {
    let mut region = [0xffu8; 2 * PAGE_SIZE];
    init_region(&mut region[..], 7, 4, 32).unwrap();
    let h = read_header(&region[..]).unwrap();
    assert_eq!((h.client, h.slots, h.capacity), (7, 4, 32));
    assert!(region[HEADER_SIZE..].iter().all(|&b| b == 0));
    // Slots that do not fit, capacity above the maximum.
    assert_eq!(init_region(&mut region[..], 7, 8, 32), Err(Error::InvalidArgument));
    assert_eq!(init_region(&mut region[..], 7, 4, 65), Err(Error::InvalidArgument));
}

#[test]
fn tampered_headers_are_rejected() {
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, 2, 16).unwrap();
    let mut bad = region;
    bad[0] ^= 1;
    assert_eq!(read_header(&bad[..]), Err(Error::Malformed));
    let mut bad = region;
    bad[4] = bad[4].wrapping_add(1);
    assert!(matches!(read_header(&bad[..]), Err(Error::VersionMismatch { .. })));
    let mut bad = region;
    bad[8] = 200; // 200 slots do not fit in one page
    assert_eq!(read_header(&bad[..]), Err(Error::Malformed));
    let mut bad = region;
    bad[10] = 65;
    assert_eq!(read_header(&bad[..]), Err(Error::Malformed));
    assert_eq!(read_header(&region[..10]), Err(Error::InvalidArgument));
}

#[test]
fn magazines_round_trip_by_value() {
    let mut region = [0u8; 2 * PAGE_SIZE];
    init_region(&mut region[..], 1, 3, 64).unwrap();
    write_slot_binding(&mut region[..], 2, Some((CacheId(9), 16))).unwrap();
    let m = Magazine::from_handles(&[8, 16, 24]).unwrap();
    write_magazine(&mut region[..], 2, MagazineRole::Previous, &m).unwrap();
    let back = read_magazine(&region[..], 2, MagazineRole::Previous).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.checked_handles(16).unwrap(), &[8, 16, 24]);
    assert_eq!(read_magazine(&region[..], 2, MagazineRole::Loaded).unwrap(), Magazine::EMPTY);
    write_count(&mut region[..], 2, MagazineRole::Previous, 0).unwrap();
    let drained = read_magazine(&region[..], 2, MagazineRole::Previous).unwrap();
    assert_eq!(drained.checked_handles(16).unwrap(), &[] as &[u64]);
    // The binding bytes, as documented.
    let s = slot_offset(2);
    assert_eq!(&region[s..s + 8], &[9, 0, 0, 0, 16, 0, 1, 0]);
    write_slot_binding(&mut region[..], 2, None).unwrap();
    assert!(region[s..s + SLOT_SIZE].iter().all(|&b| b == 0));
}

#[test]
fn tampered_counts_are_rejected() {
    let mut m = Magazine::from_handles(&[8; 16]).unwrap();
    assert!(m.checked_handles(16).is_ok());
    assert_eq!(m.checked_handles(15), Err(Error::InvalidArgument));
    m.count = u32::MAX;
    assert_eq!(m.checked_handles(64), Err(Error::InvalidArgument));
    m.count = 65;
    assert_eq!(m.checked_handles(u16::MAX), Err(Error::InvalidArgument));
    assert_eq!(Magazine::from_handles(&[0; MAGAZINE_MAX + 1]), Err(Error::InvalidArgument));
}

#[test]
fn out_of_range_slots_are_errors_not_panics() {
    // Only the region bounds are checked here; whether a slot is bound is the server's
    // private knowledge. Slot 3 starts in the page but its previous magazine ends past it.
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, 3, 64).unwrap();
    assert_eq!(read_magazine(&region[..], 4, MagazineRole::Loaded), Err(Error::InvalidArgument));
    assert_eq!(read_magazine(&region[..], u16::MAX, MagazineRole::Previous), Err(Error::InvalidArgument));
    let m = Magazine::EMPTY;
    assert_eq!(write_magazine(&mut region[..], 3, MagazineRole::Previous, &m), Err(Error::InvalidArgument));
    assert_eq!(write_count(&mut region[..], u16::MAX, MagazineRole::Loaded, 0), Err(Error::InvalidArgument));
    let mut buf = [0u8; 8];
    assert_eq!(region[..].read(usize::MAX - 2, &mut buf), Err(Error::InvalidArgument));
}

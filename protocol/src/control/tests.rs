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
    assert_eq!(control_region_size(0, 0, 0), PAGE_SIZE);
    assert_eq!(control_region_size(3, 0, 0), PAGE_SIZE);
    assert_eq!(control_region_size(4, 0, 0), 2 * PAGE_SIZE);
    assert_eq!(control_region_size(64, 0, 0), 17 * PAGE_SIZE);
    assert_eq!(control_region_size(u16::MAX, 0, 0), (64 + 65535 * 1048usize).div_ceil(4096) * 4096);
    // 32 slots, 64 caches, 8192 window pages: 64 + 32 × 1048 + 64 × 32 + 8192 × 8 bytes.
    let layout = ControlLayout { slots: 32, caches: 64, window_pages: 8192 };
    assert_eq!(layout.caches_offset(), 64 + 32 * 1048);
    assert_eq!(layout.page_owners_offset(), 64 + 32 * 1048 + 64 * 32);
    assert_eq!(layout.page_owner_offset(3), layout.page_owners_offset() + 24);
    assert_eq!(layout.size(), (64 + 32 * 1048 + 64 * 32 + 8192 * 8usize).div_ceil(4096) * 4096);
    assert_eq!(CONTROL_MAGIC, 0x534d_454d);
}

fn layout(slots: u16) -> ControlLayout {
    ControlLayout { slots, caches: 0, window_pages: 0 }
}

#[test]
fn header_bytes_are_as_documented() {
    let l = ControlLayout { slots: 3, caches: 20, window_pages: 300 };
    let h = ControlHeader::new(0x0102, &l, 64);
    let b = h.as_bytes();
    assert_eq!(&b[0..4], b"MEMS");
    assert_eq!(&b[4..6], &PROTOCOL_VERSION.to_le_bytes());
    assert_eq!(&b[6..8], &[0x02, 0x01]);
    assert_eq!(&b[8..10], &[3, 0]);
    assert_eq!(&b[10..12], &[64, 0]);
    assert_eq!(&b[12..16], &(SLOT_SIZE as u32).to_le_bytes());
    assert!(b[16..40].iter().all(|&x| x == 0));
    assert_eq!(&b[40..44], &((64 + 3 * 1048) as u32).to_le_bytes());
    assert_eq!(&b[44..46], &20u16.to_le_bytes());
    assert_eq!(&b[46..48], &32u16.to_le_bytes());
    assert_eq!(&b[48..52], &((64 + 3 * 1048 + 20 * 32) as u32).to_le_bytes());
    assert_eq!(&b[52..56], &300u32.to_le_bytes());
    assert!(b[56..64].iter().all(|&x| x == 0));
    assert_eq!(h.layout(), l);
}

#[test]
fn client_counters_sit_in_the_header_and_init_zeroes_them() {
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, &layout(2), 64).unwrap();
    assert_eq!(read_client_counters(&region[..]), Ok(ClientCounters::default()));
    region[ALLOC_HITS_OFFSET..ALLOC_HITS_OFFSET + 8].copy_from_slice(&7u64.to_ne_bytes());
    region[FREE_HITS_OFFSET..FREE_HITS_OFFSET + 8].copy_from_slice(&u64::MAX.to_ne_bytes());
    region[MAGAZINE_MISSES_OFFSET..MAGAZINE_MISSES_OFFSET + 8].copy_from_slice(&3u64.to_ne_bytes());
    let c = read_client_counters(&region[..]).unwrap();
    assert_eq!((c.alloc_hits, c.free_hits, c.magazine_misses), (7, u64::MAX, 3));
    // Whatever the client writes there, the header still checks.
    assert!(read_header(&region[..]).is_ok());
    init_region(&mut region[..], 1, &layout(2), 64).unwrap();
    assert_eq!(read_client_counters(&region[..]), Ok(ClientCounters::default()));
    assert_eq!(read_client_counters(&region[..8]), Err(Error::InvalidArgument));
}

#[test]
fn init_then_read_header() {
    let mut region = [0xffu8; 2 * PAGE_SIZE];
    init_region(&mut region[..], 7, &layout(4), 32).unwrap();
    let h = read_header(&region[..]).unwrap();
    assert_eq!((h.client, h.slots, h.capacity), (7, 4, 32));
    assert!(region[HEADER_SIZE..].iter().all(|&b| b == 0));
    // Slots that do not fit, capacity above the maximum.
    assert_eq!(init_region(&mut region[..], 7, &layout(8), 32), Err(Error::InvalidArgument));
    assert_eq!(init_region(&mut region[..], 7, &layout(4), 65), Err(Error::InvalidArgument));
}

#[test]
fn tampered_headers_are_rejected() {
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, &layout(2), 16).unwrap();
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
    let mut bad = region;
    bad[40] ^= 8; // a cache table elsewhere than the slots say
    assert_eq!(read_header(&bad[..]), Err(Error::Malformed));
    let mut bad = region;
    bad[52..56].copy_from_slice(&1000u32.to_le_bytes()); // 1000 page owners do not fit
    assert_eq!(read_header(&bad[..]), Err(Error::Malformed));
    assert_eq!(read_header(&region[..10]), Err(Error::InvalidArgument));
}

#[test]
fn magazines_round_trip_by_value() {
    let mut region = [0u8; 2 * PAGE_SIZE];
    init_region(&mut region[..], 1, &layout(3), 64).unwrap();
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
fn a_magazine_of_handles_holds_their_words() {
    let handles = [crate::Handle(8), crate::Handle(16), crate::Handle(u64::MAX - 7)];
    assert_eq!(Magazine::from_handle_slice(&handles), Magazine::from_handles(&[8, 16, u64::MAX - 7]));
    assert_eq!(Magazine::from_handle_slice(&[]), Ok(Magazine::EMPTY));
    let too_many = [crate::Handle(8); MAGAZINE_MAX + 1];
    assert_eq!(Magazine::from_handle_slice(&too_many), Err(Error::InvalidArgument));
}

#[test]
fn out_of_range_slots_are_errors_not_panics() {
    // Only the region bounds are checked here; whether a slot is bound is the server's
    // private knowledge. Slot 3 starts in the page but its previous magazine ends past it.
    let mut region = [0u8; PAGE_SIZE];
    init_region(&mut region[..], 1, &layout(3), 64).unwrap();
    assert_eq!(read_magazine(&region[..], 4, MagazineRole::Loaded), Err(Error::InvalidArgument));
    assert_eq!(read_magazine(&region[..], u16::MAX, MagazineRole::Previous), Err(Error::InvalidArgument));
    let m = Magazine::EMPTY;
    assert_eq!(write_magazine(&mut region[..], 3, MagazineRole::Previous, &m), Err(Error::InvalidArgument));
    assert_eq!(write_count(&mut region[..], u16::MAX, MagazineRole::Loaded, 0), Err(Error::InvalidArgument));
    let mut buf = [0u8; 8];
    assert_eq!(region[..].read(usize::MAX - 2, &mut buf), Err(Error::InvalidArgument));
}

#[test]
fn tables_are_written_where_the_layout_says_and_checked() {
    let l = ControlLayout { slots: 2, caches: 4, window_pages: 16 };
    assert_eq!(l.size(), PAGE_SIZE);
    let mut region = [0xeeu8; PAGE_SIZE];
    init_region(&mut region[..], 1, &l, 64).unwrap();
    assert!(region[HEADER_SIZE..].iter().all(|&b| b == 0), "init zeroes both tables");
    let entry = CacheEntry {
        cache: 0x10_0003,
        object_size: 64,
        stride: 64,
        obj_offset: 0,
        flags: 0,
        align: 64,
        objects_per_slab: 64,
        slot: 1,
        capacity: 64,
        kmalloc_class: 3,
        order: 0,
    };
    write_cache_entry(&mut region[..], &l, 3, &entry).unwrap();
    assert_eq!(read_cache_entry(&region[..], &l, 3), Ok(entry));
    let at = l.cache_entry_offset(3);
    assert_eq!(&region[at..at + 4], &0x10_0003u32.to_le_bytes());
    assert_eq!(write_cache_entry(&mut region[..], &l, 4, &entry), Err(Error::InvalidArgument));
    write_page_owner(&mut region[..], &l, 15, &PageOwner::slab(3, 5, 1)).unwrap();
    let at = l.page_owner_offset(15);
    assert_eq!(&region[at..at + 8], &[1, 5, 3, 0, 1, 0, 0, 0]);
    assert_eq!(read_page_owner(&region[..], &l, 15).unwrap().kind(), PageOwnerKind::Slab);
    assert_eq!(at + 8, l.page_owners_offset() + 16 * PAGE_OWNER_SIZE);
    assert_eq!(write_page_owner(&mut region[..], &l, 16, &PageOwner::NONE), Err(Error::InvalidArgument));
    assert_eq!(PageOwner::large(5).kind(), PageOwnerKind::Large);
    assert_eq!(PageOwner::large_tail(2).kind(), PageOwnerKind::LargeTail);
    assert_eq!(PageOwnerKind::from_raw(200), PageOwnerKind::None);
}

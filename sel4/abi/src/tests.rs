//! The pure functions of the contract.

use protocol::framing::MessageWords;
use protocol::{Error, MAX_MESSAGE_WORDS};

use crate::layout::Paging;
use crate::message::{from_words, to_words};
use crate::root::{Sender, fault_badge, report_badge, sender};
use crate::{Census, Region, SUPERVISOR_BADGE, SupervisorReply, SupervisorRequest};

#[test]
fn aarch64_paging_spans_512_gib_1_gib_2_mib() {
    let p = Paging::AARCH64;
    assert!(p.is_valid());
    assert_eq!([p.span_bits(1), p.span_bits(2), p.span_bits(3)], [39, 30, 21]);
    assert!(!Paging { top_span_bits: 40, index_bits: 9, levels: 3 }.is_valid());
}

#[test]
fn tables_for_a_range_count_every_level() {
    let p = Paging::AARCH64;
    let base = crate::layout::WINDOW_BASE;
    assert_eq!(p.tables_for(base, 0), Some(0));
    // One page: one table per level.
    assert_eq!(p.tables_for(base, 4096), Some(3));
    // 32 MiB from an aligned base: 1 + 1 + 16.
    assert_eq!(p.tables_for(base, 32 << 20), Some(18));
    // Straddling a 2 MiB boundary needs two last-level tables.
    assert_eq!(p.tables_for(base + (2 << 20) - 4096, 8192), Some(4));
    // 1 GiB + 4 KiB: two 1 GiB spans, 513 2 MiB spans.
    assert_eq!(p.tables_for(base, (1 << 30) + 4096), Some(1 + 2 + 513));
    assert_eq!(p.tables_for(u64::MAX, 2), None);
}

#[test]
fn region_place_and_offset_stay_inside() {
    let r = Region { addr: 0x1000, len: 0x2000 };
    assert_eq!(r.place(0, 0x2000), Some(0x1000));
    assert_eq!(r.place(0x1fff, 1), Some(0x2fff));
    assert_eq!(r.place(0x1fff, 2), None);
    assert_eq!(r.place(u64::MAX, 1), None);
    assert_eq!(r.offset_of(0x2fff), Some(0x1fff));
    assert_eq!(r.offset_of(0x3000), None);
    assert_eq!(r.offset_of(0xfff), None);
}

#[test]
fn report_and_fault_badges_name_their_task_and_nothing_else() {
    assert_eq!(sender(report_badge(0)), Some(Sender::Task(0)));
    assert_eq!(sender(fault_badge(7)), Some(Sender::Fault(7)));
    assert_eq!(sender(0), None);
    assert_eq!(sender(crate::root::FAULT_BADGE), None);
    assert_eq!(sender(crate::root::TASK_BADGE_LIMIT), None);
    // The supervisor badge is above every client id.
    assert!(SUPERVISOR_BADGE > u64::from(u16::MAX));
}

#[test]
fn supervisor_messages_round_trip_through_message_registers() {
    let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
    for request in [SupervisorRequest::Reclaim { client: 9 }, SupervisorRequest::Census] {
        let (label, len) = to_words(&request, &mut words).unwrap();
        assert_eq!(from_words::<SupervisorRequest>(label, &words[..len]), Ok(request));
    }
    let census =
        Census { mapped: 3, derived_caps: 3, accounted: 3, free: 5, engine_free: 5, pool: 8, ..Census::default() };
    let reply = SupervisorReply::Census(census);
    let (label, len) = to_words(&reply, &mut words).unwrap();
    assert_eq!(from_words::<SupervisorReply>(label, &words[..len]), Ok(reply));
    // Trailing bytes are malformed.
    let (label, len) = to_words(&(SupervisorRequest::Census, 1u8), &mut words).unwrap();
    assert_eq!(from_words::<SupervisorRequest>(label, &words[..len]), Err(Error::Malformed));
}

fn census() -> Census {
    Census {
        mapped: 10,
        derived_caps: 10,
        accounted: 10,
        free: 80,
        engine_free: 80,
        private: 2,
        engine_private: 2,
        lost: 0,
        engine_quarantined: 0,
        pool: 92,
        tables: 5,
        tables_reserved: 8,
        pool_pages: 100,
    }
}

#[test]
fn census_agrees_only_when_every_count_matches() {
    assert!(census().agrees());
    assert!(!Census { accounted: 11, ..census() }.agrees());
    assert!(!Census { derived_caps: 9, ..census() }.agrees());
    assert!(!Census { engine_free: 79, ..census() }.agrees());
    assert!(!Census { free: 79, engine_free: 79, ..census() }.agrees(), "a frame in no state");
    assert!(!Census { tables: 9, ..census() }.agrees());
    assert!(!Census { pool_pages: 99, ..census() }.agrees(), "pool + reserve above pool_pages");
    assert!(!Census { engine_private: 3, ..census() }.agrees());
    assert!(Census { lost: 1, engine_quarantined: 1, free: 79, engine_free: 79, ..census() }.agrees());
    assert!(!Census { lost: 1, free: 79, engine_free: 79, ..census() }.agrees());
}

#[test]
fn census_line_reads_as_documented() {
    extern crate std;
    use std::string::ToString;
    let line = census().to_string();
    assert!(
        line.starts_with("frames: mapped 10, accounted 10, free 80, pool 92 (+ paging structures: 5 tables of 8"),
        "{line}"
    );
    assert!(!line.contains("DISAGREES"), "{line}");
    let bad = Census { derived_caps: 9, ..census() }.to_string();
    assert!(bad.contains("DISAGREES: 9 derived caps for 10 mapped frames"), "{bad}");
}

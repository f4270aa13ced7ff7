//! The compile-time worst-case sizes are exact, and every message fits the seL4 framing.

mod common;

use common::*;
use protocol::framing::{self, MessageWords};
use protocol::*;
use serde::Serialize;

fn len<T: Serialize>(value: &T) -> usize {
    let mut buf = [0u8; 2 * MAX_MESSAGE_BYTES];
    postcard::to_slice(value, &mut buf).unwrap().len()
}

#[test]
fn worst_case_requests_reach_the_bound_exactly() {
    let sizes: Vec<usize> = worst_requests().iter().map(len).collect();
    assert!(sizes.iter().all(|&n| n <= Request::MAX_ENCODED), "{sizes:?}");
    assert_eq!(sizes.iter().max(), Some(&Request::MAX_ENCODED));
}

#[test]
fn worst_case_replies_reach_the_bound_exactly() {
    let sizes: Vec<usize> = worst_replies().iter().map(len).collect();
    assert!(sizes.iter().all(|&n| n <= Reply::MAX_ENCODED), "{sizes:?}");
    assert_eq!(sizes.iter().max(), Some(&Reply::MAX_ENCODED));
}

#[test]
fn worst_case_parts_reach_their_bounds_exactly() {
    assert_eq!(len(&worst_row()), SlabInfoRow::MAX_ENCODED);
    assert_eq!(len(&worst_cache_info()), CacheInfo::MAX_ENCODED);
    assert_eq!(len(&worst_stats()), Stats::MAX_ENCODED);
    assert_eq!(len(&worst_client_entry()), ClientEntry::MAX_ENCODED);
    assert_eq!(len(&worst_layout()), CacheLayout::MAX_ENCODED);
    assert_eq!(len(&Track { client: u16::MAX, seq: u64::MAX }), Track::MAX_ENCODED);
    assert_eq!(worst_errors().iter().map(len).max(), Some(Error::MAX_ENCODED));
    assert_eq!(len(&worst_validation()), ValidationReport::MAX_ENCODED);
}

#[test]
fn the_numbers_are_as_documented() {
    assert_eq!(MAX_MESSAGE_BYTES, 960);
    assert_eq!(Request::MAX_ENCODED, 50);
    assert_eq!(Reply::MAX_ENCODED, 951);
    assert_eq!(SlabInfoRow::MAX_ENCODED, 70);
    assert_eq!(SLABINFO_ROWS_PER_PAGE, 13);
    assert_eq!(Error::MAX_ENCODED, 23);
    assert_eq!(CacheInfo::MAX_ENCODED, 102);
    assert_eq!(Stats::MAX_ENCODED, 188);
    assert_eq!(ClientEntry::MAX_ENCODED, 35);
    assert_eq!(CLIENTS_PER_PAGE, 27);
    assert_eq!(ValidationReport::MAX_ENCODED, 39);
    assert_eq!(ShrinkPlan::MAX_ENCODED, 647);
}

#[test]
fn every_worst_case_message_fits_the_message_registers() {
    let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
    for r in worst_requests() {
        let (label, n) = framing::pack_request(&r, &mut words).unwrap();
        assert!(n <= MAX_MESSAGE_WORDS);
        assert_eq!(framing::unpack_request(label, &words[..n]), Ok(r));
    }
    for r in worst_replies() {
        let (label, n) = framing::pack_reply(&r, &mut words).unwrap();
        assert!(n <= MAX_MESSAGE_WORDS);
        assert_eq!(framing::unpack_reply(label, &words[..n]), Ok(r));
    }
}

#[test]
fn a_full_slabinfo_page_fits_and_one_more_row_does_not() {
    let mut rows = SlabInfoRows::new();
    while rows.push(worst_row()).is_ok() {}
    assert_eq!(rows.len(), SLABINFO_ROWS_PER_PAGE);
    let full = Reply::SlabInfo(SlabInfoPage { page: u16::MAX, more: true, rows });
    assert!(len(&full) <= MAX_MESSAGE_BYTES);
    assert!(len(&full) + SlabInfoRow::MAX_ENCODED > MAX_MESSAGE_BYTES);
}

#[test]
fn a_full_clients_page_fits_and_one_more_entry_does_not() {
    let mut clients = ClientList::new();
    while clients.push(worst_client_entry()).is_ok() {}
    assert_eq!(clients.len(), CLIENTS_PER_PAGE);
    let full = Reply::Clients(ClientsPage { page: u16::MAX, more: true, clients });
    assert!(len(&full) <= MAX_MESSAGE_BYTES);
    assert!(len(&full) + ClientEntry::MAX_ENCODED > MAX_MESSAGE_BYTES);
}

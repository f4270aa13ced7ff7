//! Decoding never panics and never reads past its input; valid messages round-trip.
//!
//! Every input here is hostile: random bytes, every truncation of a valid message, single bit
//! flips of a valid message, random framing labels and words. Decoding must answer `Ok` or
//! `Err(Malformed)`, never panic. (postcard reads only from the slice it is given, so reading
//! past the input would show up as a panic or as decoding a truncation successfully.)

mod common;

use common::strategies::{arb_reply, arb_request};
use proptest::prelude::*;
use protocol::framing::{self, MessageWords};
use protocol::*;

fn encode_req(r: &Request) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    encode_request(r, &mut buf).unwrap().to_vec()
}

fn encode_rep(r: &Reply) -> Vec<u8> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    encode_reply(r, &mut buf).unwrap().to_vec()
}

/// [`decode_reply_value`] of `bytes` as a `V` gives what [`decode_reply`] does: the value of
/// the variant that carries a `V`, the error of `Reply::Error`, any other reply whole, or the
/// same `Malformed`.
fn same_as_whole<V>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    V: ReplyValue + for<'de> serde::Deserialize<'de> + Clone + PartialEq + std::fmt::Debug,
{
    let expected = decode_reply(bytes).map(|reply| match reply {
        Reply::Error(e) => ReplyTo::Refused(e),
        reply => match V::from_reply(reply.clone()) {
            Some(value) => ReplyTo::Value(value),
            None => ReplyTo::Other(reply),
        },
    });
    prop_assert_eq!(decode_reply_value::<V>(bytes), expected, "{:02x?}", bytes);
    Ok(())
}

fn only_malformed<T>(result: Result<T, Error>) -> Result<T, Error> {
    if let Err(e) = &result {
        assert_eq!(*e, Error::Malformed);
    }
    result
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..=MAX_MESSAGE_BYTES + 8)) {
        let _ = only_malformed(decode_request(&bytes));
        let _ = only_malformed(decode_reply(&bytes));
    }

    #[test]
    fn random_bytes_after_a_valid_tag_never_panic(tag in 0u8..20, rest in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        let _ = only_malformed(decode_request(&bytes));
        let _ = only_malformed(decode_reply(&bytes));
    }

    #[test]
    fn the_hand_read_requests_decode_as_postcard_does(
        tag in prop_oneof![Just(2u8), Just(4u8), Just(9u8), 0u8..20],
        rest in proptest::collection::vec(prop_oneof![any::<u8>(), Just(0x80u8), Just(0xffu8), Just(0u8), Just(1u8)], 0..24),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        prop_assert_eq!(decode_request(&bytes), codec::decode_request_postcard(&bytes));
    }

    #[test]
    fn a_reply_decoded_as_its_value_is_what_the_whole_reply_says(
        tag in prop_oneof![Just(2u8), Just(3u8), Just(5u8), Just(10u8), Just(0x82u8), 0u8..20],
        rest in proptest::collection::vec(prop_oneof![any::<u8>(), Just(0x80u8), Just(0u8), Just(1u8)], 0..24),
    ) {
        let mut bytes = vec![tag];
        bytes.extend(rest);
        same_as_whole::<Object>(&bytes)?;
        same_as_whole::<()>(&bytes)?;
        same_as_whole::<Exchanged>(&bytes)?;
        same_as_whole::<Stats>(&bytes)?;
    }

    #[test]
    fn replies_decode_as_their_value(r in arb_reply(), extra in proptest::collection::vec(any::<u8>(), 0..3)) {
        let mut bytes = encode_rep(&r);
        same_as_whole::<Object>(&bytes)?;
        same_as_whole::<Exchanged>(&bytes)?;
        same_as_whole::<Created>(&bytes)?;
        bytes.extend(extra);
        same_as_whole::<Object>(&bytes)?;
        same_as_whole::<()>(&bytes)?;
    }

    #[test]
    fn hand_read_requests_round_trip_and_match_postcard(r in arb_request(), cut in 0usize..16) {
        let bytes = encode_req(&r);
        prop_assert_eq!(decode_request(&bytes), codec::decode_request_postcard(&bytes));
        let cut = &bytes[..bytes.len().saturating_sub(cut)];
        prop_assert_eq!(decode_request(cut), codec::decode_request_postcard(cut));
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(decode_request(&longer), Err(Error::Malformed));
    }

    #[test]
    fn requests_round_trip_within_their_bound(r in arb_request()) {
        let bytes = encode_req(&r);
        prop_assert!(bytes.len() <= Request::MAX_ENCODED);
        prop_assert_eq!(decode_request(&bytes), Ok(r));
    }

    #[test]
    fn replies_round_trip_within_their_bound(r in arb_reply()) {
        let bytes = encode_rep(&r);
        prop_assert!(bytes.len() <= Reply::MAX_ENCODED);
        prop_assert_eq!(decode_reply(&bytes), Ok(r));
    }

    #[test]
    fn every_truncation_of_a_request_is_malformed(r in arb_request()) {
        let bytes = encode_req(&r);
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_request(&bytes[..cut]), Err(Error::Malformed));
        }
    }

    #[test]
    fn every_truncation_of_a_reply_is_malformed(r in arb_reply()) {
        let bytes = encode_rep(&r);
        for cut in 0..bytes.len() {
            prop_assert_eq!(decode_reply(&bytes[..cut]), Err(Error::Malformed));
        }
    }

    #[test]
    fn bit_flips_of_a_request_never_panic(r in arb_request()) {
        let bytes = encode_req(&r);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(decoded) = only_malformed(decode_request(&flipped)) {
                // Whatever decodes is a real request and encodes within the bound.
                prop_assert!(encode_req(&decoded).len() <= Request::MAX_ENCODED);
            }
        }
    }

    #[test]
    fn bit_flips_of_a_reply_never_panic(r in arb_reply()) {
        let bytes = encode_rep(&r);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            if let Ok(decoded) = only_malformed(decode_reply(&flipped)) {
                prop_assert!(encode_rep(&decoded).len() <= Reply::MAX_ENCODED);
            }
        }
    }

    #[test]
    fn extra_bytes_after_a_message_are_malformed(r in arb_request(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode_req(&r);
        bytes.extend(extra);
        prop_assert_eq!(decode_request(&bytes), Err(Error::Malformed));
    }

    #[test]
    fn framing_round_trips(r in arb_reply()) {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, n) = framing::pack_reply(&r, &mut words).unwrap();
        prop_assert_eq!(n, framing::words_for_bytes(label as usize));
        prop_assert_eq!(framing::unpack_reply(label, &words[..n]), Ok(r));
    }

    #[test]
    fn hostile_framing_never_panics(
        label in prop_oneof![0u64..=2 * MAX_MESSAGE_BYTES as u64, any::<u64>()],
        words in proptest::collection::vec(any::<u64>(), 0..=MAX_MESSAGE_WORDS + 2),
    ) {
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        match framing::unpack(label, &words, &mut buf) {
            Ok(bytes) => {
                prop_assert_eq!(bytes.len() as u64, label);
                prop_assert_eq!(words.len(), framing::words_for_bytes(bytes.len()));
            }
            Err(e) => prop_assert_eq!(e, Error::Malformed),
        }
        let _ = only_malformed(framing::unpack_request(label, &words));
        let _ = only_malformed(framing::unpack_reply(label, &words));
    }

    #[test]
    fn a_length_beyond_the_words_given_is_malformed(words in proptest::collection::vec(any::<u64>(), 0..MAX_MESSAGE_WORDS), extra in 1u64..64) {
        let label = (words.len() as u64) * 8 + extra;
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        prop_assert_eq!(framing::unpack(label, &words, &mut buf), Err(Error::Malformed));
    }
}

//! The interface metadata agrees with the wire: `REQUESTS` is in postcard variant order, and
//! each request's `info()` is its entry there.

mod common;

use common::request_examples;
use protocol::api::{DOOR_ERRORS, REQUESTS};
use protocol::*;

#[test]
fn requests_are_listed_in_wire_order() {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    for (example, request) in request_examples() {
        let tag = usize::from(encode_request(&request, &mut buf).unwrap()[0]);
        let info = REQUESTS.get(tag).unwrap_or_else(|| panic!("{example}: tag {tag} past REQUESTS"));
        assert_eq!(info.name, request.name(), "{example}: REQUESTS[{tag}]");
        assert_eq!(request.info(), info, "{example}: info()");
    }
}

#[test]
fn names_are_unique_and_methods_are_snake_case_names() {
    for (i, info) in REQUESTS.iter().enumerate() {
        assert!(REQUESTS[..i].iter().all(|o| o.name != info.name && o.method != info.method), "{} twice", info.name);
        let snake: String = info
            .name
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_uppercase()).then_some('_');
                sep.into_iter().chain(c.to_lowercase())
            })
            .collect();
        assert_eq!(info.method, snake, "{}: method name", info.name);
    }
}

#[test]
fn door_errors_are_not_declared_per_request() {
    // `PermissionDenied` may also be a handler's own refusal (introspection rights), so only
    // `Malformed`, which no handler returns, must stay out of the lists.
    assert!(DOOR_ERRORS.contains(&ErrorCode::Malformed));
    for info in REQUESTS {
        assert!(!info.errors.contains(&ErrorCode::Malformed), "{} declares Malformed", info.name);
    }
}

/// Encodes the value a reply carries the way the dispatch does (`route`: in place, no `Reply`
/// built), or `None` for `Error`, which the dispatch encodes as a whole reply.
fn in_place(reply: &Reply, buf: &mut [u8]) -> Option<Vec<u8>> {
    let bytes = match reply {
        Reply::Hello(v) => encode_reply_value(v, buf),
        Reply::Created(v) => encode_reply_value(v, buf),
        Reply::Object(v) => encode_reply_value(v, buf),
        Reply::Done => encode_reply_value(&(), buf),
        Reply::Shrunk(v) => encode_reply_value(v, buf),
        Reply::Exchanged(v) => encode_reply_value(v, buf),
        Reply::CacheInfo(v) => encode_reply_value(v, buf),
        Reply::SlabInfo(v) => encode_reply_value(v, buf),
        Reply::Owner(v) => encode_reply_value(v, buf),
        Reply::Stats(v) => encode_reply_value(v, buf),
        Reply::Error(_) => return None,
        Reply::Clients(v) => encode_reply_value(v, buf),
        Reply::DmaAddr(v) => encode_reply_value(v, buf),
        Reply::Validated(v) => encode_reply_value(v, buf),
        Reply::ShrinkPlan(v) => encode_reply_value(v, buf),
    };
    Some(bytes.expect("every reply value fits a message").to_vec())
}

#[test]
fn a_reply_value_encoded_in_place_is_the_encoded_reply() {
    let mut whole = [0u8; MAX_MESSAGE_BYTES];
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    let examples = common::reply_examples().into_iter().map(|(_, r)| r).chain(common::worst_replies());
    let mut checked = 0;
    for reply in examples {
        let expected = encode_reply(&reply, &mut whole).unwrap();
        if let Some(bytes) = in_place(&reply, &mut buf) {
            assert_eq!(bytes, expected, "{}", reply.variant_name());
            checked += 1;
        }
    }
    assert!(checked >= 14, "every success variant has an example ({checked})");
    // A buffer too small is an error, not a panic.
    assert_eq!(encode_reply_value(&(), &mut []), Err(Error::Malformed));
    let object = Object { handle: Handle(u64::MAX), fresh: true };
    assert_eq!(encode_reply_value(&object, &mut buf[..3]), Err(Error::Malformed));
}

#[test]
fn the_hot_requests_read_by_hand_have_their_wire_tags() {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    let mut tag = |r: Request| u32::from(encode_request(&r, &mut buf).unwrap()[0]);
    assert_eq!(tag(Request::Alloc { cache: CacheId(1) }), codec::ALLOC_TAG);
    assert_eq!(tag(Request::Free { cache: CacheId(1), handle: Handle(8) }), codec::FREE_TAG);
    let exchange = Request::MagazineExchange { cache: CacheId(1), slot: 0, op: ExchangeOp::Drain };
    assert_eq!(tag(exchange), codec::MAGAZINE_EXCHANGE_TAG);
    let error = encode_reply(&Reply::Error(Error::Malformed), &mut buf).unwrap()[0];
    assert_eq!(error, protocol::ERROR_TAG, "Reply::Error's wire tag");
}

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

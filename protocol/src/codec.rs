//! Encoding and decoding whole messages, with the door checks.
//!
//! Decoding is the first thing the server does with client bytes, so it is strict: more than
//! [`MAX_MESSAGE_BYTES`], bytes that do not decode, or bytes left over after a complete
//! message are all `Error::Malformed`. postcard reads only from the slice it is given, so no
//! input can make decoding read past its end or panic (`tests/decode_props.rs`).

use serde::{Deserialize, Serialize};

use crate::reply::ReplyValue;
use crate::wire_size::WireSize;
use crate::{Error, MAX_MESSAGE_BYTES, Reply, Request};

/// A buffer that holds any encoded message.
pub type MessageBuffer = [u8; MAX_MESSAGE_BYTES];

const _: () = assert!(Request::MAX_ENCODED <= MAX_MESSAGE_BYTES);
const _: () = assert!(Reply::MAX_ENCODED <= MAX_MESSAGE_BYTES);

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Malformed);
    }
    match postcard::take_from_bytes(bytes) {
        Ok((message, [])) => Ok(message),
        _ => Err(Error::Malformed),
    }
}

fn encode<'a, T: Serialize>(message: &T, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let bytes = postcard::to_slice(message, buf).map_err(|_| Error::Malformed)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Malformed);
    }
    Ok(bytes)
}

/// Decodes one request. `Malformed` if `bytes` is longer than [`MAX_MESSAGE_BYTES`], does not
/// decode, or has bytes after the message. Does not check the `Hello` version (dispatch does).
pub fn decode_request(bytes: &[u8]) -> Result<Request, Error> {
    decode(bytes)
}

/// Encodes `request` into `buf` and returns the bytes written. `Malformed` if `buf` is too
/// small; a [`MessageBuffer`] is always large enough.
pub fn encode_request<'a>(request: &Request, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    encode(request, buf)
}

/// Encodes `value` as the reply that carries it (`Reply::Object(value)` for an [`Object`]),
/// without building the [`Reply`]: the same bytes as [`encode_reply`] of
/// `value.into_reply()`, minus a copy of the reply enum (about 1 KiB: `SlabInfo` is inline).
///
/// [`Object`]: crate::Object
pub fn encode_reply_value<'a, V: ReplyValue>(value: &V, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let (tag, rest) = buf.split_first_mut().ok_or(Error::Malformed)?;
    *tag = V::TAG;
    let len = postcard::to_slice(value, rest).map_err(|_| Error::Malformed)?.len();
    if len >= MAX_MESSAGE_BYTES {
        return Err(Error::Malformed);
    }
    buf.get(..len + 1).ok_or(Error::Malformed)
}

/// Decodes one reply, with the same checks as [`decode_request`].
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, Error> {
    decode(bytes)
}

/// Encodes `reply` into `buf` and returns the bytes written. `Malformed` if `buf` is too
/// small; a [`MessageBuffer`] is always large enough.
pub fn encode_reply<'a>(reply: &Reply, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    encode(reply, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheId;

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        let len = encode_request(&Request::Alloc { cache: CacheId(7) }, &mut buf).unwrap().len();
        assert_eq!(decode_request(&buf[..len]), Ok(Request::Alloc { cache: CacheId(7) }));
        assert_eq!(decode_request(&buf[..len + 1]), Err(Error::Malformed));
    }

    #[test]
    fn oversize_is_malformed() {
        let mut big = [0u8; MAX_MESSAGE_BYTES + 1];
        big[0] = 13; // Stats, followed by padding
        assert_eq!(decode_request(&big), Err(Error::Malformed));
        assert_eq!(decode_request(&big[..1]), Ok(Request::Stats));
    }

    #[test]
    fn small_buffer_is_an_error_not_a_panic() {
        let mut buf = [0u8; 2];
        let r = Request::Free { cache: CacheId(u32::MAX), handle: crate::Handle(u64::MAX) };
        assert_eq!(encode_request(&r, &mut buf), Err(Error::Malformed));
    }
}

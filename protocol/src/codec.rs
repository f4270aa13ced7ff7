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
///
/// The requests of the hot path (`Alloc`, `Free`, `MagazineExchange`) are read by hand first
/// ([`hot`]), the way postcard reads them; anything else, and any of them that does not read
/// cleanly, goes through postcard. Both give the same answer for every input
/// (`tests/decode_props.rs`).
pub fn decode_request(bytes: &[u8]) -> Result<Request, Error> {
    match hot::decode(bytes) {
        Some(request) => Ok(request),
        None => decode(bytes),
    }
}

/// [`decode_request`] through postcard alone (the reference the hand-read requests are tested
/// against).
#[doc(hidden)]
pub fn decode_request_postcard(bytes: &[u8]) -> Result<Request, Error> {
    decode(bytes)
}

/// The hot requests read without serde: postcard's varints (7 bits a byte, low first, at most
/// 3/5/10 bytes for `u16`/`u32`/`u64`, the last byte's unused bits zero), its enum tags
/// (a varint variant index) and newtypes (the inner value).
mod hot {
    use crate::request::ExchangeOp;
    use crate::{CacheId, Handle, Request};

    /// Wire tags of the requests read here (their index in `api`; `tests/interface.rs` checks
    /// them against the encoder).
    pub const ALLOC: u32 = 2;
    pub const FREE: u32 = 4;
    pub const MAGAZINE_EXCHANGE: u32 = 9;

    struct Cursor<'a>(&'a [u8]);

    impl Cursor<'_> {
        /// A varint of at most `max_bytes` bytes whose last byte is at most `max_last`.
        #[inline(always)]
        fn varint(&mut self, max_bytes: u32, max_last: u8) -> Option<u64> {
            // One byte (every tag, most ids): the value itself.
            if let Some((&byte, rest)) = self.0.split_first()
                && byte < 0x80
            {
                self.0 = rest;
                return Some(u64::from(byte));
            }
            self.varint_long(max_bytes, max_last)
        }

        fn varint_long(&mut self, max_bytes: u32, max_last: u8) -> Option<u64> {
            let mut out = 0u64;
            for i in 0..max_bytes {
                let (&byte, rest) = self.0.split_first()?;
                self.0 = rest;
                out |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return (i + 1 < max_bytes || byte <= max_last).then_some(out);
                }
            }
            None
        }

        fn u16(&mut self) -> Option<u16> {
            self.varint(3, 0b11).map(|v| v as u16)
        }

        fn u32(&mut self) -> Option<u32> {
            self.varint(5, 0b1111).map(|v| v as u32)
        }

        fn u64(&mut self) -> Option<u64> {
            self.varint(10, 0b1)
        }
    }

    /// The request, if `bytes` are exactly one hot request; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Request> {
        let mut c = Cursor(bytes);
        let request = match c.u32()? {
            ALLOC => Request::Alloc { cache: CacheId(c.u32()?) },
            FREE => Request::Free { cache: CacheId(c.u32()?), handle: Handle(c.u64()?) },
            MAGAZINE_EXCHANGE => {
                let (cache, slot) = (CacheId(c.u32()?), c.u16()?);
                let op = match c.u32()? {
                    0 => ExchangeOp::Refill,
                    1 => ExchangeOp::Drain,
                    2 => ExchangeOp::Flush,
                    _ => return None,
                };
                Request::MagazineExchange { cache, slot, op }
            }
            _ => return None,
        };
        c.0.is_empty().then_some(request)
    }
}

#[doc(hidden)]
pub use hot::{ALLOC as ALLOC_TAG, FREE as FREE_TAG, MAGAZINE_EXCHANGE as MAGAZINE_EXCHANGE_TAG};

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

/// A reply decoded for a request whose success carries a `V` ([`decode_reply_value`]).
// `Other` is as large as a `Reply`, and rare (a reply the request does not expect); the enum
// is decoded into its caller's slot, and only the variant decoded is written (no_std has no
// `Box` to shrink it with).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyTo<V> {
    /// The success reply: its value.
    Value(V),
    /// `Reply::Error`.
    Refused(Error),
    /// Any other reply, whole.
    Other(Reply),
}

/// Decodes a reply that should carry a `V`, without building the [`Reply`] when it does (or
/// when it is an error): the counterpart of [`encode_reply_value`], minus the copies of the
/// reply enum (about 1 KiB: `SlabInfo` is inline) a typed call would make on the way to its
/// value. The same checks and the same answer as [`decode_reply`] for every input
/// (`tests/decode_props.rs`): a reply whose first byte is the value's tag (or the error's) is
/// decoded as that value; any other first byte, a longer spelling of a tag included, goes
/// through [`decode_reply`].
pub fn decode_reply_value<V: ReplyValue + for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<ReplyTo<V>, Error> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Malformed);
    }
    match bytes.split_first() {
        Some((&tag, value)) if tag == V::TAG => decode(value).map(ReplyTo::Value),
        Some((&tag, error)) if tag == ERROR_TAG => decode(error).map(ReplyTo::Refused),
        // Any other tag, or a tag spelt in more bytes than it needs (which postcard reads).
        _ => match decode_reply(bytes)? {
            Reply::Error(e) => Ok(ReplyTo::Refused(e)),
            reply if reply.variant_name() == V::VARIANT => {
                V::from_reply(reply).map(ReplyTo::Value).ok_or(Error::Malformed)
            }
            reply => Ok(ReplyTo::Other(reply)),
        },
    }
}

/// The wire tag of `Reply::Error` (its position in [`Reply`]; `tests/interface.rs` checks it).
#[doc(hidden)]
pub const ERROR_TAG: u8 = 10;

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

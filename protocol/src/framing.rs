//! seL4 framing: postcard bytes in message registers.
//!
//! An seL4 IPC message is a message-info word (whose *label* the sender chooses freely) and
//! at most [`MAX_MESSAGE_WORDS`] message-register words. A protocol message travels as:
//!
//! * label: the postcard byte length `len` in bits 0..16; every other label bit is 0;
//! * words: `ceil(len / 8)` words; byte `i` of the message is byte `i % 8` (little-endian)
//!   of word `i / 8`; the unused high bytes of the last word are 0.
//!
//! The message-info length (number of words) must be exactly `ceil(len / 8)`. [`unpack`]
//! checks all of this and answers `Malformed` otherwise. Words are `u64` (AArch64, x86_64);
//! this crate does not support 32-bit seL4.
//!
//! The host runner does not use this module: a `SOCK_SEQPACKET` datagram carries the postcard
//! bytes as they are, at most [`MAX_MESSAGE_BYTES`] of them.

use crate::codec::{MessageBuffer, decode_reply, decode_request, encode_reply, encode_request};
use crate::{Error, MAX_MESSAGE_BYTES, MAX_MESSAGE_WORDS, Reply, Request};

/// The message registers of one message.
pub type MessageWords = [u64; MAX_MESSAGE_WORDS];

/// Bits of the label that carry the byte length; the others must be 0.
pub const LABEL_LENGTH_MASK: u64 = 0xffff;

const WORD_BYTES: usize = 8;

/// Words needed for `len` message bytes.
pub const fn words_for_bytes(len: usize) -> usize {
    len.div_ceil(WORD_BYTES)
}

/// Packs `bytes` into `words` and returns `(label, number of words used)`. `Malformed` if
/// `bytes` is longer than [`MAX_MESSAGE_BYTES`]. Words past the returned count are untouched.
pub fn pack(bytes: &[u8], words: &mut MessageWords) -> Result<(u64, usize), Error> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::Malformed);
    }
    let mut used = 0;
    for (word, chunk) in words.iter_mut().zip(bytes.chunks(WORD_BYTES)) {
        let mut le = [0u8; WORD_BYTES];
        le[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_le_bytes(le);
        used += 1;
    }
    Ok((bytes.len() as u64, used))
}

/// Unpacks a message received with `label` and the message registers `words` (exactly the
/// number of words the message-info length says) into `buf`, and returns its bytes.
///
/// `Malformed` if a label bit above [`LABEL_LENGTH_MASK`] is set, the length is above
/// [`MAX_MESSAGE_BYTES`], `words` has more or fewer words than the length needs, or a padding
/// byte of the last word is not 0.
pub fn unpack<'a>(label: u64, words: &[u64], buf: &'a mut MessageBuffer) -> Result<&'a [u8], Error> {
    if label & !LABEL_LENGTH_MASK != 0 {
        return Err(Error::Malformed);
    }
    let len = usize::try_from(label).map_err(|_| Error::Malformed)?;
    if len > MAX_MESSAGE_BYTES || words.len() != words_for_bytes(len) {
        return Err(Error::Malformed);
    }
    for (chunk, word) in buf.chunks_mut(WORD_BYTES).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let padded_len = words.len() * WORD_BYTES;
    let (message, rest) = buf.split_at(len);
    if rest[..padded_len - len].iter().any(|&b| b != 0) {
        return Err(Error::Malformed);
    }
    Ok(message)
}

/// Encodes `request` straight into message registers: `(label, number of words)`.
pub fn pack_request(request: &Request, words: &mut MessageWords) -> Result<(u64, usize), Error> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    pack(encode_request(request, &mut buf)?, words)
}

/// Decodes a request from message registers ([`unpack`], then [`decode_request`]).
pub fn unpack_request(label: u64, words: &[u64]) -> Result<Request, Error> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    decode_request(unpack(label, words, &mut buf)?)
}

/// Encodes `reply` straight into message registers: `(label, number of words)`.
pub fn pack_reply(reply: &Reply, words: &mut MessageWords) -> Result<(u64, usize), Error> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    pack(encode_reply(reply, &mut buf)?, words)
}

/// Decodes a reply from message registers ([`unpack`], then [`decode_reply`]).
pub fn unpack_reply(label: u64, words: &[u64]) -> Result<Reply, Error> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    decode_reply(unpack(label, words, &mut buf)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trips_every_length() {
        let mut src = [0u8; MAX_MESSAGE_BYTES];
        for (i, b) in src.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(1);
        }
        for len in 0..=MAX_MESSAGE_BYTES {
            let mut words = [0u64; MAX_MESSAGE_WORDS];
            let (label, n) = pack(&src[..len], &mut words).unwrap();
            assert_eq!(n, words_for_bytes(len));
            let mut buf = [0u8; MAX_MESSAGE_BYTES];
            assert_eq!(unpack(label, &words[..n], &mut buf).unwrap(), &src[..len]);
        }
    }

    #[test]
    fn bytes_are_little_endian_in_words() {
        let mut words = [0u64; MAX_MESSAGE_WORDS];
        let (label, n) = pack(&[1, 2, 3, 4, 5, 6, 7, 8, 9], &mut words).unwrap();
        assert_eq!((label, n), (9, 2));
        assert_eq!(words[0], 0x0807_0605_0403_0201);
        assert_eq!(words[1], 0x09);
    }

    #[test]
    fn hostile_labels_and_lengths_are_malformed() {
        let words = [0u64; MAX_MESSAGE_WORDS];
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        // Length larger than the words given.
        assert_eq!(unpack(9, &words[..1], &mut buf), Err(Error::Malformed));
        // More words than the length needs.
        assert_eq!(unpack(8, &words[..2], &mut buf), Err(Error::Malformed));
        // Length above the maximum, even with all 120 words.
        assert_eq!(unpack(961, &words, &mut buf), Err(Error::Malformed));
        assert_eq!(unpack(u64::MAX, &words, &mut buf), Err(Error::Malformed));
        // High label bits set.
        assert_eq!(unpack(1 << 16, &[], &mut buf), Err(Error::Malformed));
        // Non-zero padding.
        assert_eq!(unpack(1, &[0x100], &mut buf), Err(Error::Malformed));
        // Too long to pack.
        let mut w = [0u64; MAX_MESSAGE_WORDS];
        assert_eq!(pack(&[0u8; MAX_MESSAGE_BYTES + 1], &mut w), Err(Error::Malformed));
    }

    #[test]
    fn messages_round_trip_through_registers() {
        let mut words = [0u64; MAX_MESSAGE_WORDS];
        let (label, n) = pack_request(&Request::Stats, &mut words).unwrap();
        assert_eq!(unpack_request(label, &words[..n]), Ok(Request::Stats));
        let reply = Reply::Shrunk(crate::Shrunk { pages: 300 });
        let (label, n) = pack_reply(&reply, &mut words).unwrap();
        assert_eq!(unpack_reply(label, &words[..n]), Ok(reply));
    }
}

//! A memserver request over one call: bytes into message registers, the reply back out.

use protocol::framing::{self, MessageWords};
use protocol::{MAX_MESSAGE_BYTES, MAX_MESSAGE_WORDS, MessageBuffer};

use crate::Link;

/// Why a call did not bring back a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The reply buffer is too small for the reply.
    Truncated,
    /// The reply's framing is bad.
    Malformed,
}

/// Packs `request` (any bytes, so a test can send malformed ones) into `words`:
/// `(label, number of words)`.
///
/// A request longer than a message can carry goes out as its first [`MAX_MESSAGE_WORDS`]
/// words with its real length (low 16 bits) in the label, so the server sees (and must
/// reject) a length that does not match the words.
pub fn pack_request(request: &[u8], words: &mut MessageWords) -> (u64, usize) {
    match framing::pack(request, words) {
        Ok(packed) => packed,
        Err(_) => {
            let head = request.get(..MAX_MESSAGE_BYTES).unwrap_or(request);
            let (_, used) = framing::pack(head, words).unwrap_or((0, 0));
            ((request.len() & 0xffff) as u64, used.min(MAX_MESSAGE_WORDS))
        }
    }
}

/// Unpacks a reply received with `label` and `words` into `reply`; returns its length.
pub fn unpack_reply(label: u64, words: &[u64], reply: &mut [u8]) -> Result<usize, CallError> {
    let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let bytes = framing::unpack(label, words, &mut buf).map_err(|_| CallError::Malformed)?;
    let dst = reply.get_mut(..bytes.len()).ok_or(CallError::Truncated)?;
    dst.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// One round trip with the memserver over `link`: `request` out, the reply's bytes into
/// `reply`; returns the reply's length.
pub fn call(link: &mut impl Link, request: &[u8], reply: &mut [u8]) -> Result<usize, CallError> {
    call_tagged(link, 0, request, reply)
}

/// As [`call`], with `tag` or-ed into the label (the agent protocol's relayed calls).
pub(crate) fn call_tagged(
    link: &mut impl Link,
    tag: u64,
    request: &[u8],
    reply: &mut [u8],
) -> Result<usize, CallError> {
    let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
    let (label, used) = pack_request(request, &mut words);
    let mut answer: MessageWords = [0; MAX_MESSAGE_WORDS];
    let (reply_label, reply_len) = link.call(tag | label, words.get(..used).unwrap_or(&[]), &mut answer);
    let reply_words = answer.get(..reply_len).ok_or(CallError::Malformed)?;
    unpack_reply(reply_label, reply_words, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memserver stand-in that answers with the request's bytes reversed, and records the
    /// label and word count it saw.
    struct Reverse {
        seen: Option<(u64, usize)>,
    }

    impl Link for Reverse {
        fn call(&mut self, label: u64, words: &[u64], reply: &mut MessageWords) -> (u64, usize) {
            self.seen = Some((label, words.len()));
            let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
            match framing::unpack(label, words, &mut buf) {
                Ok(bytes) => {
                    let mut reversed = [0u8; MAX_MESSAGE_BYTES];
                    for (dst, src) in reversed.iter_mut().zip(bytes.iter().rev()) {
                        *dst = *src;
                    }
                    framing::pack(&reversed[..bytes.len()], reply).unwrap()
                }
                Err(_) => (0, 0),
            }
        }
    }

    #[test]
    fn a_request_round_trips_through_message_registers() {
        let mut link = Reverse { seen: None };
        let mut reply = [0u8; 16];
        let n = call(&mut link, &[1, 2, 3, 4, 5, 6, 7, 8, 9], &mut reply).unwrap();
        assert_eq!(&reply[..n], &[9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(link.seen, Some((9, 2)));
    }

    #[test]
    fn an_oversized_request_goes_out_as_full_words_with_its_real_length() {
        let request = [7u8; MAX_MESSAGE_BYTES + 5];
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        let (label, used) = pack_request(&request, &mut words);
        assert_eq!((label, used), ((MAX_MESSAGE_BYTES + 5) as u64, MAX_MESSAGE_WORDS));
        // The server's unpack refuses it.
        let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        assert!(framing::unpack(label, &words[..used], &mut buf).is_err());
    }

    #[test]
    fn a_reply_longer_than_the_buffer_is_truncated() {
        let mut link = Reverse { seen: None };
        let mut reply = [0u8; 4];
        assert_eq!(call(&mut link, &[1, 2, 3, 4, 5], &mut reply), Err(CallError::Truncated));
    }

    #[test]
    fn a_reply_with_bad_framing_is_malformed() {
        let mut words: MessageWords = [0; MAX_MESSAGE_WORDS];
        words[0] = u64::MAX;
        assert_eq!(unpack_reply(3, &words[..1], &mut [0u8; 8]), Err(CallError::Malformed));
        assert_eq!(unpack_reply(1 << 20, &[], &mut [0u8; 8]), Err(CallError::Malformed));
    }
}

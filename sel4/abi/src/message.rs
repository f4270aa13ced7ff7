//! Postcard values in seL4 message registers, framed as the memserver protocol frames its
//! messages (`protocol::framing`: byte length in the label, bytes in the words).

use protocol::framing::{self, MessageWords};
use protocol::{Error, MAX_MESSAGE_BYTES, MessageBuffer};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value` into `words`: `(label, number of words)`. `Malformed` if it does not fit.
pub fn to_words<T: Serialize>(value: &T, words: &mut MessageWords) -> Result<(u64, usize), Error> {
    let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let bytes = postcard::to_slice(value, &mut buf).map_err(|_| Error::Malformed)?;
    framing::pack(bytes, words)
}

/// Decodes a value received with `label` and `words` (exactly the message's words).
/// `Malformed` if the framing or the bytes are bad, or bytes are left over.
pub fn from_words<T: DeserializeOwned>(label: u64, words: &[u64]) -> Result<T, Error> {
    let mut buf: MessageBuffer = [0; MAX_MESSAGE_BYTES];
    let bytes = framing::unpack(label, words, &mut buf)?;
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|_| Error::Malformed)?;
    if !rest.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(value)
}

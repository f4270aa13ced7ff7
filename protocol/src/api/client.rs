//! [`Client`]: the one typed client of the interface, over any [`Transport`].
//!
//! Its per-request methods (`alloc`, `cache_create`, …) are generated from the interface
//! definition in [`api`](crate::api); this file holds what they share: encode, call, decode,
//! and sort the outcome into the value or one [`CallError`].

use crate::codec::ReplyTo;
use crate::reply::ReplyValue;
use crate::transport::{Transport, TransportError};
use crate::{Error, MAX_MESSAGE_BYTES, MessageBuffer, Reply, Request};

/// Why a typed call returned no value. Each way of failing is its own variant, so a caller
/// can tell a refusal by the server from a broken transport or a broken peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server answered `Reply::Error`: it understood the request and refused it.
    Server(Error),
    /// The transport could not carry the request or bring back a reply.
    Transport(TransportError),
    /// The request could not be encoded (never for a request built from valid values: every
    /// request fits a message).
    Encode,
    /// The reply bytes do not decode.
    Decode,
    /// The reply decoded but is not the one the request expects on success (a bug on one side).
    UnexpectedReply {
        /// The request sent.
        request: &'static str,
        /// The reply variant it expects.
        expected: &'static str,
        /// The reply variant that came.
        got: &'static str,
    },
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CallError::Server(e) => write!(f, "server: {e}"),
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Encode => f.write_str("request does not encode"),
            CallError::Decode => f.write_str("reply does not decode"),
            CallError::UnexpectedReply { request, expected, got } => {
                write!(f, "{request} answered with {got}, expected {expected}")
            }
        }
    }
}

impl core::error::Error for CallError {}

/// A typed client: one method per request (generated), plus [`Client::call`] for any
/// [`Request`] and [`Client::call_raw`] for bytes that need not be a valid request.
pub struct Client<T> {
    transport: T,
    /// Where a typed request is encoded and its reply received: kept, so a request does not
    /// clear two message buffers first (a fifth of a client's instructions per request).
    buffers: Buffers,
}

struct Buffers {
    request: MessageBuffer,
    reply: MessageBuffer,
}

impl<T: core::fmt::Debug> core::fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client").field("transport", &self.transport).finish_non_exhaustive()
    }
}

impl<T: Transport> Client<T> {
    /// A client speaking over `transport`.
    pub const fn new(transport: T) -> Self {
        Client { transport, buffers: Buffers { request: [0; MAX_MESSAGE_BYTES], reply: [0; MAX_MESSAGE_BYTES] } }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (a test's raw paths: send without waiting, close …).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Sends `request` as it is (it may be malformed on purpose) and decodes the reply.
    /// `Reply::Error` is returned as a reply, not as [`CallError::Server`].
    pub fn call_raw(&mut self, request: &[u8]) -> Result<Reply, CallError> {
        let reply = &mut self.buffers.reply;
        let len = self.transport.call(request, reply).map_err(CallError::Transport)?;
        let bytes = reply.get(..len).ok_or(CallError::Transport(TransportError::Truncated))?;
        crate::decode_reply(bytes).map_err(|_| CallError::Decode)
    }

    /// Sends any request and returns the reply as it came (`Reply::Error` included).
    pub fn call(&mut self, request: &Request) -> Result<Reply, CallError> {
        crate::decode_reply(self.exchange(request)?).map_err(|_| CallError::Decode)
    }

    /// Encodes `request`, sends it and returns the reply's bytes (in the client's buffer).
    fn exchange(&mut self, request: &Request) -> Result<&[u8], CallError> {
        let Buffers { request: bytes, reply } = &mut self.buffers;
        let encoded = crate::encode_request(request, bytes).map_err(|_| CallError::Encode)?;
        let len = self.transport.call(encoded, reply).map_err(CallError::Transport)?;
        reply.get(..len).ok_or(CallError::Transport(TransportError::Truncated))
    }

    /// Sends `request` and returns the value its success reply carries (decoded as that value,
    /// with no [`Reply`] built on the way unless the reply is another one).
    pub(crate) fn request<V: ReplyValue + for<'de> serde::Deserialize<'de>>(
        &mut self,
        request: &Request,
    ) -> Result<V, CallError> {
        match crate::decode_reply_value::<V>(self.exchange(request)?).map_err(|_| CallError::Decode)? {
            ReplyTo::Value(value) => Ok(value),
            ReplyTo::Refused(e) | ReplyTo::Other(Reply::Error(e)) => Err(CallError::Server(e)),
            ReplyTo::Other(reply) => Err(CallError::UnexpectedReply {
                request: request.name(),
                expected: V::VARIANT,
                got: reply.variant_name(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CacheId, Handle, Object};

    /// A transport with one scripted answer for every call: reply bytes (or a claimed length
    /// past them), or a failure. It keeps the last request it carried.
    struct Scripted {
        answer: Result<(MessageBuffer, usize), TransportError>,
        sent: MessageBuffer,
        sent_len: usize,
    }

    impl Scripted {
        fn replying(reply: &Reply) -> Self {
            let mut bytes = [0; MAX_MESSAGE_BYTES];
            let len = crate::encode_reply(reply, &mut bytes).unwrap().len();
            Scripted::bytes(bytes, len)
        }

        fn bytes(bytes: MessageBuffer, len: usize) -> Self {
            Scripted { answer: Ok((bytes, len)), sent: [0; MAX_MESSAGE_BYTES], sent_len: 0 }
        }

        fn failing(e: TransportError) -> Self {
            Scripted { answer: Err(e), sent: [0; MAX_MESSAGE_BYTES], sent_len: 0 }
        }

        fn sent(&self) -> Request {
            crate::decode_request(&self.sent[..self.sent_len]).unwrap()
        }
    }

    impl Transport for Scripted {
        fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
            self.sent[..request.len()].copy_from_slice(request);
            self.sent_len = request.len();
            let (bytes, len) = self.answer?;
            let n = len.min(bytes.len()).min(reply.len());
            reply[..n].copy_from_slice(&bytes[..n]);
            Ok(len)
        }
    }

    #[test]
    fn the_success_reply_becomes_its_value() {
        let object = Object { handle: Handle(0x40), fresh: true };
        let mut client = Client::new(Scripted::replying(&Reply::Object(object)));
        assert_eq!(client.alloc(CacheId(5)), Ok(object));
        assert_eq!(client.transport().sent(), Request::Alloc { cache: CacheId(5) });
    }

    #[test]
    fn done_is_the_unit_value() {
        let mut client = Client::new(Scripted::replying(&Reply::Done));
        assert_eq!(client.free(CacheId(1), Handle(8)), Ok(()));
        assert_eq!(client.transport().sent(), Request::Free { cache: CacheId(1), handle: Handle(8) });
    }

    #[test]
    fn an_error_reply_is_a_server_error() {
        let mut client = Client::new(Scripted::replying(&Reply::Error(Error::NoSuchCache)));
        assert_eq!(client.alloc(CacheId(5)), Err(CallError::Server(Error::NoSuchCache)));
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_unexpected_reply() {
        let mut client = Client::new(Scripted::replying(&Reply::Done));
        let expected = CallError::UnexpectedReply { request: "Alloc", expected: "Object", got: "Done" };
        assert_eq!(client.alloc(CacheId(5)), Err(expected));
        let mut client = Client::new(Scripted::replying(&Reply::Object(Object { handle: Handle(8), fresh: false })));
        let expected = CallError::UnexpectedReply { request: "Goodbye", expected: "Done", got: "Object" };
        assert_eq!(client.goodbye(), Err(expected));
    }

    #[test]
    fn a_transport_failure_is_a_transport_error() {
        let mut client = Client::new(Scripted::failing(TransportError::Disconnected));
        assert_eq!(client.stats(), Err(CallError::Transport(TransportError::Disconnected)));
        assert_eq!(client.call_raw(&[13]), Err(CallError::Transport(TransportError::Disconnected)));
    }

    #[test]
    fn a_reply_longer_than_the_buffer_is_truncated() {
        let mut client = Client::new(Scripted::bytes([0; MAX_MESSAGE_BYTES], MAX_MESSAGE_BYTES + 1));
        assert_eq!(client.stats(), Err(CallError::Transport(TransportError::Truncated)));
    }

    #[test]
    fn reply_bytes_that_do_not_decode_are_a_decode_error() {
        let mut bytes = [0; MAX_MESSAGE_BYTES];
        bytes[0] = 0xff;
        let mut client = Client::new(Scripted::bytes(bytes, 1));
        assert_eq!(client.stats(), Err(CallError::Decode));
    }

    #[test]
    fn call_raw_sends_bytes_as_they_are_and_returns_error_replies() {
        let mut client = Client::new(Scripted::replying(&Reply::Error(Error::Malformed)));
        assert_eq!(client.call_raw(&[0xff, 0xfe]), Ok(Reply::Error(Error::Malformed)));
        assert_eq!(&client.transport().sent[..client.transport().sent_len], &[0xff, 0xfe]);
        assert_eq!(client.call(&Request::Stats), Ok(Reply::Error(Error::Malformed)));
    }
}

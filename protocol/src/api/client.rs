//! [`Client`]: the one typed client of the interface, over any [`Transport`].
//!
//! Its per-request methods (`alloc`, `cache_create`, …) are generated from the interface
//! definition in [`api`](crate::api); this file holds what they share: encode, call, decode,
//! and sort the outcome into the value or one [`CallError`].

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
#[derive(Debug)]
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    /// A client speaking over `transport`.
    pub const fn new(transport: T) -> Self {
        Client { transport }
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
        let mut reply: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let len = self.transport.call(request, &mut reply).map_err(CallError::Transport)?;
        let bytes = reply.get(..len).ok_or(CallError::Transport(TransportError::Truncated))?;
        crate::decode_reply(bytes).map_err(|_| CallError::Decode)
    }

    /// Sends any request and returns the reply as it came (`Reply::Error` included).
    pub fn call(&mut self, request: &Request) -> Result<Reply, CallError> {
        let mut bytes: MessageBuffer = [0; MAX_MESSAGE_BYTES];
        let encoded = crate::encode_request(request, &mut bytes).map_err(|_| CallError::Encode)?;
        self.call_raw(encoded)
    }

    /// Sends `request` and returns the value its success reply carries.
    pub(crate) fn request<V: ReplyValue>(&mut self, request: &Request) -> Result<V, CallError> {
        match self.call(request)? {
            Reply::Error(e) => Err(CallError::Server(e)),
            reply => V::from_reply(reply).map_err(|got| CallError::UnexpectedReply {
                request: request.name(),
                expected: V::VARIANT,
                got: got.variant_name(),
            }),
        }
    }
}

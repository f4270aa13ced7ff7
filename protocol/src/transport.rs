//! How a client reaches the server: the [`Transport`] trait, one request out and one reply in.
//!
//! A pure trait, no I/O here: the implementations live with the platforms (a Unix socket in
//! `memclient::host`, `seL4_Call` in the seL4 client tasks, the dispatch itself in tests). The
//! typed [`api::Client`](crate::api::Client) is generic over it.

/// A transport failure: the server is gone or the message could not be carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The connection is closed (the server exited or dropped this client).
    Disconnected,
    /// The operating system refused the operation (its `errno`, or 0 if none).
    Os(i32),
    /// The reply did not fit the buffer or was cut.
    Truncated,
}

impl core::fmt::Display for TransportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TransportError::Disconnected => f.write_str("disconnected"),
            TransportError::Os(errno) => write!(f, "refused by the system (errno {errno})"),
            TransportError::Truncated => f.write_str("reply truncated"),
        }
    }
}

/// One request, one reply.
pub trait Transport {
    /// Sends `request` (encoded bytes) and writes the reply into `reply`, returning its length.
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        (**self).call(request, reply)
    }
}

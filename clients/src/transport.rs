//! How a client reaches the server: anything that carries one request and brings back one
//! reply (a Unix socket on the host, `seL4_Call` on seL4).

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

/// One request, one reply.
pub trait Transport {
    /// Sends `request` and writes the reply into `reply`, returning its length.
    fn call(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError>;
}

//! The client library's error type.

use crate::transport::TransportError;

/// Why a client call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The server answered with an error.
    Server(protocol::Error),
    /// The request or reply could not be carried.
    Transport(TransportError),
    /// The server's reply does not fit the request (a bug on one side).
    UnexpectedReply,
    /// A pointer that is not an object of this client's window.
    NotInWindow,
}

impl From<protocol::Error> for Error {
    fn from(e: protocol::Error) -> Self {
        Error::Server(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Server(e) => write!(f, "memserver: {e}"),
            Error::Transport(e) => write!(f, "transport: {e:?}"),
            Error::UnexpectedReply => f.write_str("unexpected reply"),
            Error::NotInWindow => f.write_str("pointer is not in this client's window"),
        }
    }
}

impl core::error::Error for Error {}

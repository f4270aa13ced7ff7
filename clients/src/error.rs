//! The client library's error type.

use protocol::api::CallError;

use crate::transport::TransportError;

/// Why a client call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The server answered with an error.
    Server(protocol::Error),
    /// The request or reply could not be carried.
    Transport(TransportError),
    /// The server's reply does not decode or does not fit the request (a bug on one side).
    UnexpectedReply,
    /// The request could not be encoded (never for a request built from valid values).
    Encode,
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

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Server(e) => Error::Server(e),
            CallError::Transport(e) => Error::Transport(e),
            CallError::Encode => Error::Encode,
            CallError::Decode | CallError::UnexpectedReply { .. } => Error::UnexpectedReply,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Server(e) => write!(f, "memserver: {e}"),
            Error::Transport(e) => write!(f, "transport: {e}"),
            Error::UnexpectedReply => f.write_str("unexpected reply"),
            Error::Encode => f.write_str("request does not encode"),
            Error::NotInWindow => f.write_str("pointer is not in this client's window"),
        }
    }
}

impl core::error::Error for Error {}

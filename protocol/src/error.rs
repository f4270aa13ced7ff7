//! The one error type of the protocol and the engine.
//!
//! Two tiers: a request that is not a valid message at all (`Malformed`, `VersionMismatch`)
//! is the client's fault and the server goes on; everything else is a domain failure with a
//! typed code. [`ErrorCode`] is the `#[repr(u16)]` number of each variant; 0 is never an error.
//! One variant is neither: [`Error::Internal`] says the server itself is at fault, so a
//! client's bad input is never confused with a broken server.

use serde::{Deserialize, Serialize};

use crate::{CacheId, Handle};

/// Where a debug check found corrupted bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corruption {
    /// The cache of the object.
    pub cache: CacheId,
    /// The object.
    pub object: Handle,
    /// Offset of the first bad byte, relative to the object's start (negative: in the left
    /// red zone).
    pub offset: i32,
    /// The byte found there.
    pub found: u8,
    /// The byte that should have been there.
    pub expected: u8,
}

/// Every failure a request can meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Error {
    /// An argument is out of its documented range (bad size, align, flags, name …).
    InvalidArgument,
    /// The client already has a cache of that name.
    NameTaken,
    /// No cache of that id belongs to this client.
    NoSuchCache,
    /// The frame pool (or a fixed server table) is exhausted.
    OutOfMemory,
    /// The client would go over its frame quota.
    QuotaExceeded,
    /// A handle outside the client's window, or not on an object boundary.
    InvalidObject,
    /// The handle is an object of another cache.
    WrongCache,
    /// The object is not currently allocated.
    DoubleFree,
    /// `destroy` of a cache that still has live objects.
    CacheBusy {
        /// Objects still allocated.
        live: u32,
    },
    /// A `POISON` object was written after it was freed.
    PoisonCorrupted(Corruption),
    /// A `RED_ZONE` guard byte was overwritten.
    RedZoneCorrupted(Corruption),
    /// The request bytes do not decode, or the message is too long.
    Malformed,
    /// `Hello` carried a version this server does not speak.
    VersionMismatch {
        /// The version the server speaks.
        server: u16,
    },
    /// The operation is not supported in this configuration.
    NotSupported,
    /// The client may not make this request (introspection without permission, or any
    /// request before `Hello`).
    PermissionDenied,
    /// The server's fault, not the client's: its own metadata contradicts itself or a platform
    /// hook (mapping, unmapping, copying) failed. The request did not happen; the server logs
    /// and counts every occurrence and goes on serving.
    Internal,
}

/// The wire number of each [`Error`] variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    InvalidArgument = 1,
    NameTaken = 2,
    NoSuchCache = 3,
    OutOfMemory = 4,
    QuotaExceeded = 5,
    InvalidObject = 6,
    WrongCache = 7,
    DoubleFree = 8,
    CacheBusy = 9,
    PoisonCorrupted = 10,
    RedZoneCorrupted = 11,
    Malformed = 12,
    VersionMismatch = 13,
    NotSupported = 14,
    PermissionDenied = 15,
    Internal = 16,
}

impl Error {
    /// The `#[repr(u16)]` code of this error (never 0).
    pub const fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument => ErrorCode::InvalidArgument,
            Error::NameTaken => ErrorCode::NameTaken,
            Error::NoSuchCache => ErrorCode::NoSuchCache,
            Error::OutOfMemory => ErrorCode::OutOfMemory,
            Error::QuotaExceeded => ErrorCode::QuotaExceeded,
            Error::InvalidObject => ErrorCode::InvalidObject,
            Error::WrongCache => ErrorCode::WrongCache,
            Error::DoubleFree => ErrorCode::DoubleFree,
            Error::CacheBusy { .. } => ErrorCode::CacheBusy,
            Error::PoisonCorrupted(_) => ErrorCode::PoisonCorrupted,
            Error::RedZoneCorrupted(_) => ErrorCode::RedZoneCorrupted,
            Error::Malformed => ErrorCode::Malformed,
            Error::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            Error::NotSupported => ErrorCode::NotSupported,
            Error::PermissionDenied => ErrorCode::PermissionDenied,
            Error::Internal => ErrorCode::Internal,
        }
    }

    /// Whether this is a client fault (the message itself was bad) rather than a domain error.
    pub const fn is_fault(&self) -> bool {
        matches!(self, Error::Malformed | Error::VersionMismatch { .. })
    }

    /// Whether the server, not the client, is at fault ([`Error::Internal`]).
    pub const fn is_internal(&self) -> bool {
        matches!(self, Error::Internal)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::CacheBusy { live } => write!(f, "cache busy: {live} live objects"),
            Error::PoisonCorrupted(c) => write!(
                f,
                "poison overwritten: cache {} object {:#x} offset {} (found {:#04x}, expected {:#04x})",
                c.cache.0, c.object.0, c.offset, c.found, c.expected
            ),
            Error::RedZoneCorrupted(c) => write!(
                f,
                "red zone overwritten: cache {} object {:#x} offset {} (found {:#04x}, expected {:#04x})",
                c.cache.0, c.object.0, c.offset, c.found, c.expected
            ),
            Error::VersionMismatch { server } => {
                write!(f, "version mismatch: server speaks {server}")
            }
            Error::Internal => f.write_str("internal server error (logged by the server)"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_never_zero() {
        let all = [
            Error::InvalidArgument,
            Error::NameTaken,
            Error::NoSuchCache,
            Error::OutOfMemory,
            Error::QuotaExceeded,
            Error::InvalidObject,
            Error::WrongCache,
            Error::DoubleFree,
            Error::CacheBusy { live: 1 },
            Error::Malformed,
            Error::VersionMismatch { server: 1 },
            Error::NotSupported,
            Error::PermissionDenied,
            Error::Internal,
        ];
        for e in all {
            assert_ne!(e.code() as u16, 0, "{e:?}");
        }
    }
}

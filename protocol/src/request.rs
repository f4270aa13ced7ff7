//! What a client asks: the types a [`Request`] carries. The requests themselves are defined
//! once, in [`api`](crate::api).
//!
//! Variant order is wire format (postcard encodes the variant index): new requests go at the
//! end, and any change needs a `PROTOCOL_VERSION` bump and a new golden file.

use serde::{Deserialize, Serialize};

use crate::wire_size::{ENUM_TAG, WireSize};
use crate::{CACHE_NAME_MAX, Error};

pub use crate::api::Request;

/// Longest client task name in `Hello`, in bytes (the names of `system.toml`).
pub const CLIENT_NAME_MAX: usize = 31;

/// A cache name as carried on the wire (at most [`CACHE_NAME_MAX`] bytes of UTF-8).
pub type CacheName = heapless::String<CACHE_NAME_MAX>;

/// A client task name as carried in `Hello` (at most [`CLIENT_NAME_MAX`] bytes of UTF-8).
pub type ClientName = heapless::String<CLIENT_NAME_MAX>;

/// Copies `name` into a [`CacheName`]; `InvalidArgument` if it is longer than 31 bytes or not
/// printable ASCII without spaces (what slabinfo shows unambiguously; the server checks the same).
pub fn cache_name(name: &str) -> Result<CacheName, Error> {
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidArgument);
    }
    CacheName::try_from(name).map_err(|_| Error::InvalidArgument)
}

/// Copies `name` into a [`ClientName`]; `InvalidArgument` if it is longer than 31 bytes.
pub fn client_name(name: &str) -> Result<ClientName, Error> {
    ClientName::try_from(name).map_err(|_| Error::InvalidArgument)
}

/// What a `MagazineExchange` does with the magazines of one control-region slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExchangeOp {
    /// The loaded magazine is empty (its count must be 0): the server writes up to the slot's
    /// capacity handles into it and sets its count. The reply's `fresh_mask` says which of
    /// them are fresh (the client runs its ctor on those).
    Refill,
    /// The loaded magazine is full: the server copies it out, validates every handle, takes
    /// them all back and sets its count to 0. A bad handle rejects the whole magazine and
    /// changes nothing.
    Drain,
    /// Both magazines of the slot go back (the loaded one first, then the previous one), as
    /// `Drain` does, and both counts become 0. Used before `Destroy` and `Shrink`, and when the
    /// client exits.
    Flush,
}
impl WireSize for ExchangeOp {
    const MAX_ENCODED: usize = ENUM_TAG;
}

//! Identifiers carried on the wire.

use serde::{Deserialize, Serialize};

/// A client task, as the server knows it: the badge of its endpoint on seL4, the connection's
/// slot on the host. Assigned by the runner from `system.toml`, never chosen by the client.
pub type ClientId = u16;

/// A cache of one client. Only meaningful together with the client that created it: the same
/// number names different caches for different clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CacheId(pub u32);

/// An object, named by its byte offset in the owning client's window.
///
/// Objects are at least 8-byte aligned, so the low three bits of a handle are always zero for
/// a real object; the client library may use them as flags before the handle goes on the
/// wire, and the server rejects any handle with them set.
///
/// Laid out as its `u64` (`repr(transparent)`), so a slice of handles is a slice of the words
/// a magazine holds ([`Magazine::from_handle_slice`](crate::control::Magazine::from_handle_slice)).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    zerocopy::IntoBytes,
    zerocopy::Immutable,
)]
#[repr(transparent)]
pub struct Handle(pub u64);

impl Handle {
    /// Bits of a handle that are never part of an object offset.
    pub const FLAG_BITS: u64 = 0b111;

    /// The window offset this handle names.
    pub const fn offset(self) -> u64 {
        self.0
    }
}

//! The operations of the fuzz targets (`fuzz/`) and their stable proptest smoke run
//! (`tests/fuzz_smoke.rs`). There is one op enum of the object lifecycle, the engine model's
//! own ([`ObjectOp`] = `memserver_engine::testing::ops::Op`): here each is sent as the requests
//! it corresponds to ([`Op::Object`]). Beside it, [`WireOp`] holds what only the dispatch layer
//! sees and a hostile client controls there: its session, its magazines and control region,
//! its object memory behind the server's back, and raw bytes.
//!
//! Indices (`client`, `cache`, `pick`) select among what the harness knows (modulo its
//! length), so random input reaches deep state instead of bouncing off `NoSuchCache`.

use arbitrary::{Arbitrary, Unstructured};
use std::vec::Vec;

pub use memserver_engine::testing::ops::Op as ObjectOp;

/// A handle as a tampered magazine names it: one the client really holds, bent or replaced.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forge {
    /// Exactly a held object (or any object the client was handed).
    Held,
    /// A held object moved by a few bytes (inside, off the boundary, flag bits).
    Shifted(i16),
    /// A held object of another client (an offset in that client's window).
    Foreign,
    /// Any number at all.
    Raw(u64),
}

/// How a `Hello` is bent.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloKind {
    /// The right version and name.
    Honest,
    /// Another protocol version.
    Version(u16),
    /// Another client's name.
    OtherName,
}

/// One step of a hostile program: half of them object-lifecycle ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The object lifecycle, as the engine model runs it, sent as requests.
    Object(ObjectOp),
    /// What only the dispatch layer sees.
    Wire(WireOp),
}

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u.ratio(1u8, 2)? { Op::Object(u.arbitrary()?) } else { Op::Wire(u.arbitrary()?) })
    }
}

/// What a client can do that only the dispatch layer sees.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum WireOp {
    /// Admit the client if needed and send `Hello`.
    Connect { client: u8, hello: HelloKind },
    /// The connection vanishes (a kill): everything is reclaimed.
    Disconnect { client: u8 },
    /// `Goodbye`.
    Goodbye { client: u8 },
    /// `MagazineExchange` (`op` modulo 3; `slot` the cache's own unless given).
    Exchange { client: u8, cache: u8, slot: Option<u8>, op: u8 },
    /// The client rewrites one magazine of a slot: a count and (possibly forged) handles.
    Tamper { client: u8, slot: u8, previous: bool, count: u8, handles: Vec<(u8, Forge)> },
    /// The client writes a word anywhere in its control region.
    ControlWrite { client: u8, offset: u16, value: u64 },
    /// The client writes a byte near one of its objects (red zones, poison, neighbours).
    ObjectWrite { client: u8, pick: u8, offset: i16, byte: u8 },
    /// `CacheInfo`, `SlabInfo`, `ObjectOwner` or `Stats` (`kind` modulo 4).
    Query { client: u8, kind: u8, cache: u8, arg: u16 },
    /// Raw bytes as a request.
    Raw { client: u8, bytes: Vec<u8> },
}

impl Op {
    /// The client the op acts as (before the harness takes it modulo its client count).
    pub fn client(&self) -> u8 {
        match self {
            Op::Object(op) => op.client(),
            Op::Wire(
                WireOp::Connect { client, .. }
                | WireOp::Disconnect { client }
                | WireOp::Goodbye { client }
                | WireOp::Exchange { client, .. }
                | WireOp::Tamper { client, .. }
                | WireOp::ControlWrite { client, .. }
                | WireOp::ObjectWrite { client, .. }
                | WireOp::Query { client, .. }
                | WireOp::Raw { client, .. },
            ) => *client,
        }
    }

    /// Whether the op belongs to the magazine validator's target (the magazine layer and the
    /// object traffic around it).
    pub fn is_magazine_op(&self) -> bool {
        matches!(
            self,
            Op::Wire(WireOp::Exchange { .. } | WireOp::Tamper { .. } | WireOp::ControlWrite { .. })
                | Op::Object(
                    ObjectOp::Alloc { .. }
                        | ObjectOp::Free { .. }
                        | ObjectOp::FreeWrongCache { .. }
                        | ObjectOp::FreeBogus { .. }
                        | ObjectOp::Destroy { .. }
                        | ObjectOp::Shrink { .. }
                        | ObjectOp::AllocBulk { .. }
                        | ObjectOp::FreeBulk { .. }
                )
        )
    }
}

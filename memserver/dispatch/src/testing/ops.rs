//! The one `Arbitrary` operation enum that drives the fuzz targets (`fuzz/`) and their stable
//! proptest smoke run (`tests/fuzz_smoke.rs`): what a hostile client can do to the server
//! through the dispatch — requests with real and forged arguments, raw bytes, writes into its
//! control region and its object memory, connecting and vanishing.
//!
//! Indices (`client`, `cache`, `pick`) select among what the harness knows (modulo its
//! length), so random input reaches deep state instead of bouncing off `NoSuchCache`.

use arbitrary::Arbitrary;
use std::vec::Vec;

/// A handle as an op names it: one the client really holds, bent or replaced.
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

/// One step of a hostile program.
#[derive(Arbitrary, Clone, Debug)]
pub enum Op {
    /// Admit the client if needed and send `Hello`.
    Connect { client: u8, hello: HelloKind },
    /// The connection vanishes (a kill): everything is reclaimed.
    Disconnect { client: u8 },
    /// `Goodbye`.
    Goodbye { client: u8 },
    /// `CacheCreate` (size, align and flags drawn wide, including invalid values).
    Create { client: u8, name: u8, size: u16, align: u8, flags: u8, ctor: bool },
    /// `Alloc` / `Zalloc`.
    Alloc { client: u8, cache: u8, zero: bool },
    /// `Free` of a (possibly forged) handle.
    Free { client: u8, cache: u8, pick: u8, forge: Forge },
    /// `Kmalloc`.
    Kmalloc { client: u8, size: u16, large: bool },
    /// `Kfree` of a (possibly forged) handle.
    Kfree { client: u8, pick: u8, forge: Forge },
    /// `Destroy`.
    Destroy { client: u8, cache: u8 },
    /// `Shrink`.
    Shrink { client: u8, cache: u8 },
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
        match *self {
            Op::Connect { client, .. }
            | Op::Disconnect { client }
            | Op::Goodbye { client }
            | Op::Create { client, .. }
            | Op::Alloc { client, .. }
            | Op::Free { client, .. }
            | Op::Kmalloc { client, .. }
            | Op::Kfree { client, .. }
            | Op::Destroy { client, .. }
            | Op::Shrink { client, .. }
            | Op::Exchange { client, .. }
            | Op::Tamper { client, .. }
            | Op::ControlWrite { client, .. }
            | Op::ObjectWrite { client, .. }
            | Op::Query { client, .. }
            | Op::Raw { client, .. } => client,
        }
    }

    /// Whether the op belongs to the magazine validator's target (the magazine layer and the
    /// object traffic around it).
    pub fn is_magazine_op(&self) -> bool {
        matches!(
            self,
            Op::Exchange { .. }
                | Op::Tamper { .. }
                | Op::ControlWrite { .. }
                | Op::Alloc { .. }
                | Op::Free { .. }
                | Op::Destroy { .. }
                | Op::Shrink { .. }
        )
    }
}

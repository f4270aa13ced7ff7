//! The agent protocol: a client task acting for another task of its image over an endpoint.
//!
//! The conformance suite's isolation scenarios need two clients; on seL4 they are two tasks
//! with separate VSpaces. The task that runs the suite (the *driver*) never touches the other
//! client's window: it asks the other task (the *agent*) to perform each step as its own
//! client. An agent request is either
//!
//! * a relayed memserver call: label [`CALL_TAG`] `|` the protocol label, the protocol
//!   message's words unchanged (the driver packed them as it would for the memserver, so
//!   even a malformed or oversized message reaches the memserver exactly as built); the agent
//!   calls the memserver with that label and those words and answers with the memserver's
//!   reply, label and words unchanged; or
//! * an [`AgentRequest`] in postcard framing (label = byte length), answered with an
//!   [`AgentReply`]: copy bytes of its window or control region in or out (at most
//!   [`CHUNK`] bytes a message), or finish.

use serde::{Deserialize, Serialize};

/// Label bit of a relayed memserver call (the protocol label sits in the low 16 bits).
pub const CALL_TAG: u64 = 1 << 40;

/// Most bytes one agent message copies.
pub const CHUNK: usize = 768;

/// Which of the agent's shared regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Area {
    /// Its window (object memory; a page it does not have faults in the agent).
    Window,
    /// Its control region (magazines).
    Control,
}

/// An agent request other than a relayed call.
// A message, built and decoded once on the stack: boxing the data would gain nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentRequest {
    /// Copy `len` bytes at `offset` of `area` out. Reply: `Data`.
    Read {
        /// Which region.
        area: Area,
        /// Byte offset in it.
        offset: u64,
        /// Bytes, at most [`CHUNK`].
        len: u16,
    },
    /// Copy `data` to `offset` of `area`. Reply: `Done`.
    Write {
        /// Which region.
        area: Area,
        /// Byte offset in it.
        offset: u64,
        /// The bytes.
        data: heapless::Vec<u8, CHUNK>,
    },
    /// The driver is done: the agent says `Goodbye` if its session is open, reports and
    /// stops. Reply: `Done`.
    Finish,
}

/// The agent's answer to an [`AgentRequest`].
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentReply {
    /// The bytes read.
    Data(heapless::Vec<u8, CHUNK>),
    /// Done.
    Done,
    /// The request named bytes outside the region, or was malformed.
    OutOfRange,
}

//! The supervisor's messages to the memserver: on an endpoint capability whose badge no client
//! holds ([`SUPERVISOR_BADGE`]: client ids are below it, and only the root task has a
//! capability with this badge), so no client can forge them.

use core::fmt;

use protocol::ClientId;
use serde::{Deserialize, Serialize};

/// Badge of the root task's capability to the memserver's endpoint (above every client id).
pub const SUPERVISOR_BADGE: u64 = 1 << 16;

/// A supervisor request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorRequest {
    /// The task of `client` is stopped (it faulted): everything it held goes back to the pool.
    /// Reply: `Reclaimed`.
    Reclaim {
        /// The client.
        client: ClientId,
    },
    /// Print the frame census and every client's slabinfo. Reply: `Census`.
    Census,
}

/// The memserver's answer to a supervisor request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SupervisorReply {
    /// Frames that came back to the pool, and the pool's free frames afterwards.
    Reclaimed {
        /// Frames the client held.
        frames: u32,
        /// Free frames of the pool now.
        free: u32,
    },
    /// The census.
    Census(Census),
    /// The request could not be served.
    Refused(protocol::Error),
}

/// The frame census: what the memserver's capability and mapping tables say, beside the
/// engine's own count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    /// Pool frames mapped into a client (frame table entries).
    pub mapped: u32,
    /// Derived frame capabilities that exist (checked with the kernel, one per mapped frame).
    pub derived_caps: u32,
    /// Frames the engine says its clients hold in their windows (their private record
    /// frames not counted).
    pub accounted: u32,
    /// Pool frames neither mapped nor private (frame table entries).
    pub free: u32,
    /// Free frames as the engine counts them.
    pub engine_free: u32,
    /// Pool frames the server keeps for itself (never mapped into a client): frame table entries.
    pub private: u32,
    /// Private frames as the engine counts them (the clients' STORE_USER record frames).
    pub engine_private: u32,
    /// Pool frames whose release the kernel refused half way: frame table entries.
    pub lost: u32,
    /// Frames the engine quarantined (their release failed).
    pub engine_quarantined: u32,
    /// Pool frames the engine hands out.
    pub pool: u32,
    /// Translation tables made so far (for client windows and the direct map).
    pub tables: u32,
    /// Pages of the paging reserve.
    pub tables_reserved: u32,
    /// `server.pool_pages`.
    pub pool_pages: u32,
}

impl Census {
    /// Whether every figure agrees: the mapping table, the capabilities and the engine count
    /// the same frames (mapped, free, private, lost), every frame is in exactly one state,
    /// and the pool frames plus the paging reserve stay within `server.pool_pages`.
    pub fn agrees(&self) -> bool {
        let states = u64::from(self.mapped) + u64::from(self.free) + u64::from(self.private) + u64::from(self.lost);
        self.mapped == self.accounted
            && self.derived_caps == self.mapped
            && self.free == self.engine_free
            && self.private == self.engine_private
            && self.lost == self.engine_quarantined
            && states == u64::from(self.pool)
            && self.tables <= self.tables_reserved
            && u64::from(self.pool) + u64::from(self.tables_reserved) <= u64::from(self.pool_pages)
    }
}

impl fmt::Display for Census {
    /// `frames: mapped N, accounted N, free F, pool P (+ paging structures: T tables of R
    /// reserved; pool + reserve = server.pool_pages X)`, then what disagrees, if anything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frames: mapped {}, accounted {}, free {}, pool {} (+ paging structures: {} tables of {} reserved; \
             pool + reserve = {} of server.pool_pages {})",
            self.mapped,
            self.accounted,
            self.free,
            self.pool,
            self.tables,
            self.tables_reserved,
            u64::from(self.pool) + u64::from(self.tables_reserved),
            self.pool_pages
        )?;
        if self.private != 0 || self.engine_private != 0 {
            write!(f, ", private {} (engine {})", self.private, self.engine_private)?;
        }
        if self.lost != 0 || self.engine_quarantined != 0 {
            write!(f, ", LOST {} (engine quarantined {})", self.lost, self.engine_quarantined)?;
        }
        if self.derived_caps != self.mapped {
            write!(f, "; DISAGREES: {} derived caps for {} mapped frames", self.derived_caps, self.mapped)?;
        }
        if self.free != self.engine_free {
            write!(f, "; DISAGREES: engine counts {} free", self.engine_free)?;
        }
        if !self.agrees()
            && self.derived_caps == self.mapped
            && self.free == self.engine_free
            && self.mapped != self.accounted
        {
            f.write_str("; DISAGREES: mapped is not accounted")?;
        } else if !self.agrees() && self.derived_caps == self.mapped && self.free == self.engine_free {
            f.write_str("; DISAGREES")?;
        }
        Ok(())
    }
}

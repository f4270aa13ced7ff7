//! The whole-state checks after every step: the engine's invariants, the model's counts per
//! cache, the frame accounting and every live object's bytes.

use protocol::{ClientId, Error};

use super::Harness;

impl Harness<'_> {
    /// Invariants plus the model: live counts per cache, frame accounting.
    pub fn check_all(&self) {
        if let Err(v) = self.engine.check_invariants() {
            panic!("invariant violated: {v:?}");
        }
        assert_eq!(self.engine.faults(), 0, "a platform hook failed: {:?}", self.engine.last_fault());
        let mut used = 0;
        for (c, m) in self.clients.iter().enumerate() {
            for mc in &m.caches {
                let i = self.engine.cache_info(c as ClientId, mc.id).unwrap();
                let live = m.live.values().filter(|o| o.cache == Some(mc.id)).count() as u32;
                let parked = m.parked.values().filter(|o| o.cache == Some(mc.id)).count() as u32;
                assert_eq!(i.active_objs, live + parked, "cache {} of client {c}", mc.name);
                assert_eq!(i.parked_objs, parked, "parked objects of cache {} of client {c}", mc.name);
            }
            for &id in m.stale.iter().rev().take(4) {
                assert_eq!(self.engine.cache_info(c as ClientId, id).map(|_| ()), Err(Error::NoSuchCache));
            }
            let s = self.engine.client_stats(c as ClientId).unwrap();
            assert!(s.frames_used <= self.quotas[c]);
            used += s.frames_used;
        }
        let p = self.engine.pool_stats();
        assert_eq!(used + p.free_frames + p.quarantined_frames, p.total_frames);
        self.engine.platform().assert_agrees_with(&self.engine);
    }

    /// Verify every live object's pattern (nothing overwrote anything).
    pub fn verify_all(&self) {
        for (c, m) in self.clients.iter().enumerate() {
            for (&h, o) in &m.live {
                self.verify_pattern(c, h, o);
            }
        }
    }
}

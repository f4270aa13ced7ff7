//! Validation of a whole cache, as Linux's `validate_slab_cache()` (what writing
//! `/sys/kernel/slab/<cache>/validate` runs): every object of every slab is checked, every
//! corruption found is reported (counted, the first one kept) and repaired.
//!
//! Per object, each of these regions counts as one error however many of its bytes are wrong:
//! the left red zone, the right red zone (both `0xcc` while allocated, `0xbb` while free), the
//! kmalloc slack of an allocated object of a red-zoned kmalloc cache (`0xcc` from its requested
//! size to the object size), and the poison of a free `SLAB_POISON` object (`0x6b`…, last byte
//! `0xa5`). Linux's kunit tests count a report and a fix for each (`slab_errors` = 2 × ours);
//! its free-pointer and in-use-count checks have no counterpart in memory a client can write
//! here: the free bitmaps and counts are server-private, and checked as engine invariants (a
//! mismatch is the server's own fault, never counted as the cache's error).

use protocol::flags::{POISON_END, POISON_FREE, SLAB_RED_ZONE};
use protocol::{CacheId, ClientId, Corruption, Error, Finding, Handle, ValidationReport};

use super::cache::poisons;
use super::storage::{LISTS, NIL};
use super::{BROKEN, Engine, Platform};

impl<P: Platform> Engine<'_, P> {
    /// The live cache of `client` named `name` (names are unique per client), else
    /// `NoSuchCache`.
    pub fn cache_by_name(&self, client: ClientId, name: &str) -> Result<CacheId, Error> {
        self.client(client).map_err(|_| Error::NoSuchCache)?;
        for slot in 0..self.config.max_caches_per_client {
            let gi = self.cache_slot(client, slot);
            let c = self.cache(gi)?;
            if c.live && c.name.as_str() == name {
                return self.cache_id(gi);
            }
        }
        Err(Error::NoSuchCache)
    }

    /// Validate cache `cache` of `client`: check and repair every object (see the module
    /// documentation for what counts as one error).
    pub fn cache_validate(&mut self, client: ClientId, cache: CacheId) -> Result<ValidationReport, Error> {
        let gi = self.cache_lookup(client, cache)?;
        let mut report = ValidationReport { slabs: 0, objects: 0, errors: 0, first: None };
        let mut inuse = 0u32;
        for list in 0..LISTS {
            let mut s = self.cache(gi)?.heads.get(list).copied().ok_or(BROKEN)?;
            while s != NIL {
                self.check_slab(gi, s).map_err(|_| BROKEN)?;
                report.slabs = report.slabs.saturating_add(1);
                let objs = u32::from(self.cache(gi)?.objs);
                for idx in 0..objs {
                    report.objects = report.objects.saturating_add(1);
                    self.validate_object(client, gi, s, idx, &mut report)?;
                }
                let d = self.slab(s)?;
                inuse = inuse.saturating_add(u32::from(d.inuse));
                s = d.next;
            }
        }
        if inuse != self.cache(gi)?.active_objs {
            return Err(BROKEN);
        }
        Ok(report)
    }

    /// Checks and repairs the regions of object `idx` of slab `s`.
    fn validate_object(
        &mut self,
        client: ClientId,
        gi: u32,
        s: u32,
        idx: u32,
        report: &mut ValidationReport,
    ) -> Result<(), Error> {
        let allocated = self.obj_allocated(s, idx)?;
        let c = self.cache(gi)?;
        let (red_zoned, poisoned, size, left, stride) =
            (c.flags & SLAB_RED_ZONE != 0, poisons(c), c.size, c.obj_offset, c.stride);
        let start = self.obj_stride_start(gi, s, idx)?;
        let obj = start + u64::from(left);
        let cache = self.cache_id(gi)?;
        let found = |report: &mut ValidationReport, finding: Finding| {
            report.errors = report.errors.saturating_add(1);
            report.first.get_or_insert(finding);
        };
        let corruption = |offset: i32, (found, expected): (u8, u8)| Corruption {
            cache,
            object: Handle(obj),
            offset,
            found,
            expected,
        };
        if red_zoned {
            let byte = Self::red_zone_expected(allocated);
            let right = stride.saturating_sub(left).saturating_sub(size);
            let zones = [(start, left, -(left as i32)), (obj + u64::from(size), right, size as i32)];
            let mut bad = false;
            for (at, len, base) in zones {
                if let Some((i, f, e)) = self.mismatch(client, at, len, byte, byte)? {
                    found(report, Finding::RedZone(corruption(base + i as i32, (f, e))));
                    bad = true;
                }
            }
            if bad {
                self.red_zone_fill(client, gi, s, idx, byte)?;
            }
            if allocated && let Some(c) = self.slack_check(client, gi, s, idx)? {
                found(report, Finding::RedZone(c));
                self.slack_repair(client, gi, s, idx)?;
            }
        }
        if poisoned
            && !allocated
            && let Some((i, f, e)) = self.mismatch(client, obj, size, POISON_FREE, POISON_END)?
        {
            found(report, Finding::Poison(corruption(i as i32, (f, e))));
            self.poison_object(client, gi, s, idx)?;
        }
        Ok(())
    }
}

//! Statistics: per-cache info, `/proc/slabinfo` 2.1 rows, pool and client accounting,
//! STORE_USER owner queries.

use core::fmt::Write;

use protocol::flags::{SLAB_CACHE_DMA, SLAB_STORE_USER};
use protocol::slabinfo::{SlabInfoRow, write_header, write_row};
use protocol::{CacheId, ClientId, Error, Handle};

use super::cache::Located;
use super::storage::{LIST_FULL, LIST_PARTIAL};
use super::{CacheInfo, ClientStats, Engine, OwnerInfo, Platform, PoolStats, Track};

impl<P: Platform> Engine<'_, P> {
    fn info_of(&self, gi: u32) -> Result<CacheInfo, Error> {
        let c = self.cache(gi)?;
        let num_slabs = c.counts.iter().sum::<u32>();
        let objs = u32::from(c.objs);
        Ok(CacheInfo {
            id: self.cache_id(gi)?,
            name: c.name.clone(),
            size: c.size,
            align: c.align,
            stride: c.stride,
            flags: c.flags,
            has_ctor: c.has_ctor,
            has_dtor: c.has_dtor,
            order: c.order,
            objects_per_slab: objs,
            pages_per_slab: 1 << c.order,
            tracking_frames_per_slab: if super::track::has_records(c) {
                super::track::track_frames_for(objs)
            } else {
                0
            },
            active_objs: c.active_objs,
            num_objs: num_slabs.saturating_mul(objs),
            active_slabs: c.counts.get(usize::from(LIST_PARTIAL)).copied().unwrap_or(0)
                + c.counts.get(usize::from(LIST_FULL)).copied().unwrap_or(0),
            num_slabs,
            is_kmalloc: c.is_kmalloc,
        })
    }

    /// Everything about one cache.
    pub fn cache_info(&self, client: ClientId, cache: CacheId) -> Result<CacheInfo, Error> {
        self.info_of(self.cache_lookup(client, cache)?)
    }

    /// Ids of the live caches of `client`, in slot order (kmalloc caches first after attach);
    /// empty for a client that is not attached.
    pub fn cache_ids(&self, client: ClientId) -> impl Iterator<Item = CacheId> + '_ {
        let n = if self.client(client).is_ok() { self.config.max_caches_per_client } else { 0 };
        (0..n).filter_map(move |slot| {
            let gi = self.cache_slot(client, slot);
            match self.cache(gi) {
                Ok(c) if c.live => self.cache_id(gi).ok(),
                _ => None,
            }
        })
    }

    /// The slabinfo rows of one client, or of every attached client in client order.
    pub fn slabinfo_rows(&self, client: Option<ClientId>, mut f: impl FnMut(&SlabInfoRow)) {
        let (lo, hi) = match client {
            Some(c) => (c, c.saturating_add(1)),
            None => (0, self.config.max_clients),
        };
        for c in lo..hi.min(self.config.max_clients) {
            for id in self.cache_ids(c) {
                if let Ok(i) = self.cache_info(c, id) {
                    f(&SlabInfoRow {
                        client: c,
                        name: i.name,
                        active_objs: i.active_objs,
                        num_objs: i.num_objs,
                        objsize: i.stride,
                        objperslab: i.objects_per_slab,
                        pagesperslab: i.pages_per_slab,
                        active_slabs: i.active_slabs,
                        num_slabs: i.num_slabs,
                    });
                }
            }
        }
    }

    /// `/proc/slabinfo` version 2.1: the kernel's two header lines, then one row per cache
    /// (names as they are; with `None`, every client's rows in client order).
    pub fn write_slabinfo(&self, client: Option<ClientId>, w: &mut impl Write) -> core::fmt::Result {
        write_header(w)?;
        let mut res = Ok(());
        self.slabinfo_rows(client, |row| {
            if res.is_ok() {
                res = write_row(w, row);
            }
        });
        res
    }

    /// The global frame pool.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            total_frames: self.config.pool_frames,
            free_frames: self.free_frames,
            quarantined_frames: self.quarantined_frames,
        }
    }

    /// One client's accounting.
    pub fn client_stats(&self, client: ClientId) -> Result<ClientStats, Error> {
        let c = self.client(client)?;
        let retired = (0..self.config.max_caches_per_client)
            .filter(|&slot| self.cache(self.cache_slot(client, slot)).is_ok_and(|d| d.retired))
            .count();
        Ok(ClientStats {
            frames_used: c.frames_used,
            tracking_frames: c.tracking_frames,
            quota_frames: c.quota_frames,
            window_pages: c.window_pages,
            caches: c.caches,
            retired_cache_slots: u16::try_from(retired).unwrap_or(u16::MAX),
        })
    }

    /// Pages of `client`'s `SLAB_RECLAIM_ACCOUNT` caches (Linux's `SReclaimable`).
    pub fn reclaimable_pages(&self, client: ClientId) -> u32 {
        self.cache_ids(client)
            .filter_map(|id| self.cache_info(client, id).ok())
            .filter(|i| i.flags & protocol::flags::SLAB_RECLAIM_ACCOUNT != 0)
            .map(|i| i.num_slabs.saturating_mul(i.pages_per_slab))
            .fold(0u32, u32::saturating_add)
    }

    /// The STORE_USER record of the object at `handle` (allocated or free): `NotSupported` if
    /// its cache lacks `SLAB_STORE_USER` or it is a large kmalloc; `InvalidObject` if it is no
    /// object.
    pub fn object_owner(&mut self, client: ClientId, handle: Handle) -> Result<OwnerInfo, Error> {
        let (gi, s, idx) = match self.locate(client, handle)? {
            Located::Slab { gi, slab, idx } => (gi, slab, idx),
            Located::Large { .. } => return Err(Error::NotSupported),
            Located::FreedLarge => return Err(Error::InvalidObject),
        };
        if self.cache(gi)?.flags & SLAB_STORE_USER == 0 {
            return Err(Error::NotSupported);
        }
        let t = self.track_record(s, idx)?;
        let track = |client, seq| if seq == 0 { None } else { Some(Track { client, seq }) };
        Ok(OwnerInfo { alloc: track(t.alloc_client, t.alloc_seq), free: track(t.free_client, t.free_seq) })
    }

    /// An allocated object of one of `client`'s `SLAB_CACHE_DMA` caches: its window offset and
    /// size, which the platform turns into a physical address. `InvalidArgument` if its cache
    /// is not a DMA cache (or it is a large kmalloc); `InvalidObject` if it is no allocated
    /// object of `client`.
    pub fn dma_object(&self, client: ClientId, handle: Handle) -> Result<(u64, u32), Error> {
        let (gi, s, idx) = match self.locate(client, handle)? {
            Located::Slab { gi, slab, idx } => (gi, slab, idx),
            Located::Large { .. } => return Err(Error::InvalidArgument),
            Located::FreedLarge => return Err(Error::InvalidObject),
        };
        if !self.obj_allocated(s, idx)? {
            return Err(Error::InvalidObject);
        }
        let c = self.cache(gi)?;
        if c.flags & SLAB_CACHE_DMA == 0 {
            return Err(Error::InvalidArgument);
        }
        Ok((handle.0, c.size))
    }
}

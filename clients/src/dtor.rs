//! Destructors: the two-phase release that lets a cache's dtor run before its slabs' pages
//! leave it (Linux 2.4 ran the dtor in `kmem_slab_destroy()`, inside the allocator; here the
//! objects are in the client and only the client can run client code).
//!
//! `ShrinkBegin` makes the server take the cache's empty slabs out of use and name them; the
//! client runs the dtor over every object of each named slab; `ShrinkCommit` with the plan's
//! token releases exactly those slabs. Rounds repeat while the server says there are more.

use protocol::{CacheId, CacheLayout, Handle};

use crate::cache::Dtor;
use crate::error::Error;
use crate::server::Memserver;
use crate::transport::Transport;

/// Releases every empty slab of `cache`, running `dtor` over each slab's objects first.
/// Returns the pages released.
pub(crate) fn release_empty_slabs<T: Transport>(
    server: &Memserver<T>,
    cache: CacheId,
    layout: &CacheLayout,
    dtor: Dtor,
) -> Result<u32, Error> {
    let mut pages = 0u32;
    loop {
        let plan = server.ipc(|api| api.shrink_begin(cache))?;
        let obj_offset = obj_offset(server, cache);
        for &slab in &plan.slabs {
            let first = slab.0 + u64::from(obj_offset);
            for i in 0..u64::from(layout.objects_per_slab) {
                let object = Handle(first + i * u64::from(layout.stride));
                dtor(server.object(object, layout.object_size as usize)?);
            }
        }
        pages = pages.saturating_add(server.ipc(|api| api.shrink_commit(cache, plan.token))?.pages);
        if !plan.more || plan.slabs.is_empty() {
            return Ok(pages);
        }
    }
}

/// How far into its slab a cache's first object lies (its left red zone), from the server's
/// cache table.
fn obj_offset<T: Transport>(server: &Memserver<T>, cache: CacheId) -> u32 {
    (0..server.control_layout().caches)
        .filter_map(|index| server.cache_entry(index))
        .find(|entry| entry.cache == cache.0)
        .map_or(0, |entry| entry.obj_offset)
}

//! One consistent-enough look at the server: the pool, every connected client's statistics,
//! and every cache's slabinfo row.

use memclient::Memserver;
use memclient::host::Connection;
use protocol::{ClientId, PAGE_SIZE, SlabInfoRow, Stats};

/// One client as memctl shows it.
#[derive(Clone, Debug)]
pub struct ClientView {
    /// Its id.
    pub id: ClientId,
    /// Its name.
    pub name: String,
    /// What `ClientStats` said.
    pub stats: Stats,
}

impl ClientView {
    /// Magazine hits over all magazine-eligible operations (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let hits = self.stats.alloc_hits.saturating_add(self.stats.free_hits);
        let all = hits.saturating_add(self.stats.magazine_misses);
        if all == 0 { 0.0 } else { hits as f64 / all as f64 }
    }
}

/// Everything the subcommands render.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Pages in the frame pool.
    pub pool_pages: u32,
    /// Pages of the pool nobody holds.
    pub pool_free_pages: u32,
    /// Connected clients, by id.
    pub clients: Vec<ClientView>,
    /// Every cache of every client, by client, then creation order.
    pub rows: Vec<SlabInfoRow>,
}

impl Snapshot {
    /// Asks the server (needs introspection rights).
    pub fn take(server: &Memserver<Connection>) -> Result<Snapshot, memclient::Error> {
        let own = server.stats()?;
        let mut ids = Vec::new();
        server.for_each_client(|entry| ids.push((entry.client, entry.name.as_str().to_string())))?;
        let mut clients = Vec::with_capacity(ids.len());
        for (id, name) in ids {
            // A client that left between the two requests is no longer listed.
            match server.client_stats(id) {
                Ok(stats) => clients.push(ClientView { id, name, stats }),
                Err(memclient::Error::Server(protocol::Error::InvalidArgument)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut rows = Vec::new();
        server.for_each_slabinfo_row(true, |row| rows.push(row.clone()))?;
        Ok(Snapshot { pool_pages: own.pool_pages, pool_free_pages: own.pool_free_pages, clients, rows })
    }

    /// The name of client `id` (its id as text if it is not connected any more).
    pub fn client_name(&self, id: ClientId) -> String {
        self.clients.iter().find(|c| c.id == id).map_or_else(|| format!("client-{id}"), |c| c.name.clone())
    }
}

/// Bytes a cache's slabs take.
pub fn cache_bytes(row: &SlabInfoRow) -> u64 {
    u64::from(row.num_slabs) * u64::from(row.pagesperslab) * PAGE_SIZE as u64
}

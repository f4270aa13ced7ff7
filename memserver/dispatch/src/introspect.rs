//! Statistics requests: `Stats` (the caller's own), `ClientStats` (any client's, with
//! introspection rights) and `Clients` (who is connected), the requests `memctl` is built on.
//!
//! Rights: a client may always read its own statistics; another client's, and the list of
//! clients, need `introspect = true` in `system.toml` (`PermissionDenied` otherwise, checked
//! before anything about the target is revealed). A `ClientStats` for an id with no open
//! session is `InvalidArgument`.

use protocol::control::read_client_counters;
use protocol::reply::{ClientEntry, ClientList};
use protocol::{CLIENTS_PER_PAGE, ClientId, ClientsPage, Error, Stats};

use super::session::Phase;
use super::{ControlAccess, Server};
use memserver_engine::Platform;

impl<P: Platform + ControlAccess> Server<'_, P> {
    /// Whether `client` holds introspection rights.
    fn introspects(&self, client: ClientId) -> bool {
        self.sessions.get(usize::from(client)).is_some_and(|s| s.introspect)
    }

    /// Whether `client` has an open session (said `Hello`, not yet gone).
    fn is_open(&self, client: ClientId) -> bool {
        self.sessions.get(usize::from(client)).is_some_and(|s| s.phase == Phase::Open)
    }

    /// `ClientStats { target }` asked by `client`.
    pub(super) fn stats_for(&mut self, client: ClientId, target: ClientId) -> Result<Stats, Error> {
        self.check_rights(client, target)?;
        self.stats_of(target)
    }

    /// May `client` look at (or validate) `target`? Its own id always; another's with
    /// introspection rights (checked first, so nothing about `target` leaks), and only an
    /// open session (`InvalidArgument` otherwise).
    pub(super) fn check_rights(&self, client: ClientId, target: ClientId) -> Result<(), Error> {
        if target != client && !self.introspects(client) {
            return Err(Error::PermissionDenied);
        }
        if !self.is_open(target) {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }

    /// `Clients { page }`: the open sessions by id, [`CLIENTS_PER_PAGE`] per page.
    pub(super) fn clients_page(&mut self, client: ClientId, page: u16) -> Result<ClientsPage, Error> {
        if !self.introspects(client) {
            return Err(Error::PermissionDenied);
        }
        let skip = usize::from(page).saturating_mul(CLIENTS_PER_PAGE);
        let mut clients = ClientList::new();
        let mut more = false;
        let open = self.sessions.iter().enumerate().filter(|(_, s)| s.phase == Phase::Open);
        for (id, session) in open.skip(skip) {
            let entry = ClientEntry {
                client: u16::try_from(id).map_err(|_| Error::InvalidArgument)?,
                name: session.name.clone(),
            };
            if clients.push(entry).is_err() {
                more = true;
                break;
            }
        }
        Ok(ClientsPage { page, more, clients })
    }

    /// The pool, `client`'s frames, quota and counters, and the magazine counters its library
    /// published in its control-region header (copied, never trusted).
    pub(super) fn stats_of(&mut self, client: ClientId) -> Result<Stats, Error> {
        let pool = self.engine.pool_stats();
        let mine = self.engine.client_stats(client)?;
        let mut live = 0u64;
        let mut in_magazines = 0u64;
        for slot in 0..self.engine.cache_slots() {
            let Some(cache) = self.engine.cache_in_slot(client, slot) else { continue };
            if let Ok(info) = self.wire_cache_info(client, cache) {
                live = live.saturating_add(u64::from(info.active_objs));
                in_magazines = in_magazines.saturating_add(u64::from(info.magazine_objs));
            }
        }
        let published = match self.engine.platform_mut().control(client) {
            Some(control) => read_client_counters(control).unwrap_or_default(),
            None => Default::default(),
        };
        let window = self.engine.platform_mut().window_usage(client).unwrap_or_default();
        let session = self.sessions.get(usize::from(client)).ok_or(Error::PermissionDenied)?;
        let mut stats = session.stats;
        stats.pool_pages = pool.total_frames;
        stats.pool_free_pages = pool.free_frames;
        stats.client_pages = mine.frames_used;
        stats.quota_pages = mine.quota_frames;
        stats.caches = u32::from(mine.caches);
        stats.live_objects = live;
        stats.magazine_objects = in_magazines;
        stats.alloc_hits = published.alloc_hits;
        stats.free_hits = published.free_hits;
        stats.magazine_misses = published.magazine_misses;
        stats.reclaimable_pages = self.engine.reclaimable_pages(client);
        stats.granted_pages = window.granted_pages;
        stats.resident_pages = window.resident_pages;
        stats.grant_violations = window.violations;
        Ok(stats)
    }
}

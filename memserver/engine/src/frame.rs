//! The frame pool: an intrusive free stack through the frame descriptors, O(1) both ways.

use protocol::Error;

use super::storage::{FRAME_FREE, FRAME_QUARANTINED, FrameDesc, NIL, PAGE_NONE};
use protocol::ClientId;

use super::{BROKEN, Engine, Hook, Platform, ShortageKind};

/// Frames handed to one `Platform::map` or `Platform::release` call at most.
pub(crate) const CHUNK: usize = 64;

impl<P: Platform> Engine<'_, P> {
    /// Take a frame from the pool (its descriptor is left for the caller to fill).
    pub(crate) fn frame_pop(&mut self) -> Result<u32, Error> {
        let f = self.free_frame_head;
        if f == NIL {
            return Err(Error::OutOfMemory);
        }
        let d = self.frame_mut(f)?;
        let next = d.link;
        d.link = NIL;
        self.free_frame_head = next;
        self.free_frames = self.free_frames.saturating_sub(1);
        Ok(f)
    }

    /// Give a frame back to the pool.
    pub(crate) fn frame_push(&mut self, f: u32) -> Result<(), Error> {
        let head = self.free_frame_head;
        *self.frame_mut(f)? = FrameDesc { kind: FRAME_FREE, client: 0, page: 0, link: head };
        self.free_frame_head = f;
        self.free_frames = self.free_frames.saturating_add(1);
        Ok(())
    }

    /// Take a frame out of use for good: its platform release failed, so it may still be
    /// reachable (mapped into its old client on seL4). Never handed out again.
    pub(crate) fn frame_quarantine(&mut self, f: u32) -> Result<(), Error> {
        *self.frame_mut(f)? = FrameDesc { kind: FRAME_QUARANTINED, client: 0, page: 0, link: NIL };
        self.quarantined_frames = self.quarantined_frames.saturating_add(1);
        Ok(())
    }

    /// Give back the frames behind window pages `[first, first + count)` of `client`, in chunks
    /// of up to [`CHUNK`] frames: `Platform::release` first, then the bookkeeping (page map,
    /// occupancy bits, the client's count) whatever the release did. The frames of a chunk the
    /// platform released go back to the pool; those of a chunk it failed to release are
    /// quarantined and the failure recorded as a fault (see [`Platform`]).
    pub(crate) fn pages_release(&mut self, client: protocol::ClientId, first: u32, count: u32) -> Result<(), Error> {
        self.page_log.record(client, first, count);
        let mut buf = [0u32; CHUNK];
        let mut done = 0u32;
        while done < count {
            let n = (count - done).min(CHUNK as u32);
            let at = first.checked_add(done).ok_or(BROKEN)?;
            let frames = self.chunk_frames(client, at, n, &mut buf)?;
            let released = match self.platform.release(client, at, frames) {
                Ok(()) => true,
                Err(e) => {
                    self.hook_failed(Hook::Release, client, e);
                    false
                }
            };
            for page in at..at + n {
                let f = self.page_map_get(client, page)?;
                if released {
                    self.frame_push(f)?
                } else {
                    self.frame_quarantine(f)?
                }
                self.page_map_set(client, page, PAGE_NONE)?;
            }
            self.window_mark(client, at, n, false)?;
            let c = self.client_mut(client)?;
            c.frames_used = c.frames_used.checked_sub(n).ok_or(BROKEN)?;
            done += n;
        }
        Ok(())
    }

    /// The frames behind window pages `[page, page + n)` (`n` ≤ [`CHUNK`]), copied into `buf`.
    fn chunk_frames<'b>(
        &self,
        client: protocol::ClientId,
        page: u32,
        n: u32,
        buf: &'b mut [u32; CHUNK],
    ) -> Result<&'b [u32], Error> {
        let frames = buf.get_mut(..n as usize).ok_or(BROKEN)?;
        for (i, slot) in frames.iter_mut().enumerate() {
            let f = self.page_map_get(client, page + i as u32)?;
            if f >= self.config.pool_frames {
                return Err(BROKEN);
            }
            *slot = f;
        }
        Ok(frames)
    }

    /// Check that `client`'s quota covers `pages` more window pages and `private` more private
    /// frames (its STORE_USER records): `QuotaExceeded` otherwise, the shortage recorded as the
    /// quota's or, when the pages alone would fit, the tracking budget's.
    pub(crate) fn quota_check(&mut self, client: ClientId, pages: u32, private: u32) -> Result<(), Error> {
        let c = self.client(client)?;
        let (used, quota) = (u64::from(c.frames_used), u64::from(c.quota_frames));
        let over = |n: u32| (used + u64::from(n)).saturating_sub(quota);
        if over(pages) > 0 {
            return Err(self.short(client, ShortageKind::Quota, over(pages)));
        }
        let all = pages.saturating_add(private);
        if over(all) > 0 {
            return Err(self.short(client, ShortageKind::Tracking, over(all)));
        }
        Ok(())
    }

    /// Check that the pool has `frames` free frames: `OutOfMemory` otherwise, the shortage
    /// recorded as the pool's.
    pub(crate) fn pool_check(&mut self, client: ClientId, frames: u32) -> Result<(), Error> {
        match frames.checked_sub(self.free_frames) {
            Some(missing) if missing > 0 => Err(self.short(client, ShortageKind::Pool, u64::from(missing))),
            _ => Ok(()),
        }
    }

    /// Take `count` frames and back window pages `[first, first + count)` of `client` with
    /// them: page map, frame descriptors (`kind`, `link` from `kind_of(i)`), occupancy bits,
    /// the client's count, then `Platform::map` in chunks. On a map failure everything is
    /// undone (the chunks already mapped are released, see [`Self::pages_release`]) and the
    /// map's error returned. The caller checked quota and pool.
    pub(crate) fn pages_take(
        &mut self,
        client: protocol::ClientId,
        first: u32,
        count: u32,
        kind_of: impl Fn(u32) -> (u8, u32),
    ) -> Result<(), Error> {
        for i in 0..count {
            let f = self.frame_pop()?;
            let page = first.checked_add(i).ok_or(BROKEN)?;
            let (kind, link) = kind_of(i);
            *self.frame_mut(f)? = FrameDesc { kind, client, page, link };
            self.page_map_set(client, page, f)?;
        }
        self.window_mark(client, first, count, true)?;
        let c = self.client_mut(client)?;
        c.frames_used = c.frames_used.saturating_add(count);
        let mut buf = [0u32; CHUNK];
        let mut done = 0u32;
        while done < count {
            let n = (count - done).min(CHUNK as u32);
            let frames = self.chunk_frames(client, first + done, n, &mut buf)?;
            if let Err(e) = self.platform.map(client, first + done, frames) {
                // The mapped chunks go back through the platform; the rest were never mapped.
                self.pages_release(client, first, done)?;
                for page in first + done..first + count {
                    let f = self.page_map_get(client, page)?;
                    self.frame_push(f)?;
                    self.page_map_set(client, page, PAGE_NONE)?;
                }
                self.window_mark(client, first + done, count - done, false)?;
                let c = self.client_mut(client)?;
                c.frames_used = c.frames_used.checked_sub(count - done).ok_or(BROKEN)?;
                return Err(e);
            }
            done += n;
        }
        self.page_log.record(client, first, count);
        Ok(())
    }
}

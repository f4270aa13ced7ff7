//! The frame pool: an intrusive free stack through the frame descriptors, O(1) both ways.

use protocol::Error;

use super::storage::{FRAME_FREE, FrameDesc, NIL};
use super::{Engine, Platform};

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

    /// Give back the frames behind window pages `[first, first + count)` of `client`: release
    /// them on the platform, clear the page map and occupancy bits, fix the client's count.
    pub(crate) fn pages_release(&mut self, client: protocol::ClientId, first: u32, count: u32) -> Result<(), Error> {
        self.platform.release(client, first, count);
        self.page_log.record(client, first, count);
        for page in first..first.saturating_add(count) {
            let f = self.page_map_get(client, page)?;
            if f < self.config.pool_frames {
                self.frame_push(f)?;
            }
            self.page_map_set(client, page, super::storage::PAGE_NONE)?;
        }
        self.window_mark(client, first, count, false)?;
        let c = self.client_mut(client)?;
        c.frames_used = c.frames_used.saturating_sub(count);
        Ok(())
    }

    /// Check that `client` may take `pages` more frames and that the pool has them.
    pub(crate) fn frames_available(&self, client: protocol::ClientId, pages: u32) -> Result<(), Error> {
        let c = self.client(client)?;
        match c.frames_used.checked_add(pages) {
            Some(n) if n <= c.quota_frames => {}
            _ => return Err(Error::QuotaExceeded),
        }
        if self.free_frames < pages {
            return Err(Error::OutOfMemory);
        }
        Ok(())
    }

    /// Take `count` frames and back window pages `[first, first + count)` of `client` with
    /// them: page map, frame descriptors (`kind`, `link` from `link_of(i)`), occupancy bits,
    /// the client's count, then `Platform::map` in chunks. On a map failure everything is
    /// undone and the error returned. The caller checked [`Self::frames_available`].
    pub(crate) fn pages_take(
        &mut self,
        client: protocol::ClientId,
        first: u32,
        count: u32,
        kind_of: impl Fn(u32) -> (u8, u32),
    ) -> Result<(), Error> {
        for i in 0..count {
            let f = self.frame_pop()?;
            let page = first.checked_add(i).ok_or(super::BROKEN)?;
            let (kind, link) = kind_of(i);
            *self.frame_mut(f)? = FrameDesc { kind, client, page, link };
            self.page_map_set(client, page, f)?;
        }
        self.window_mark(client, first, count, true)?;
        let c = self.client_mut(client)?;
        c.frames_used = c.frames_used.saturating_add(count);
        let mut done = 0u32;
        let mut buf = [0u32; 64];
        while done < count {
            let n = (count - done).min(64);
            for (i, slot) in buf.iter_mut().take(n as usize).enumerate() {
                *slot = self.page_map_get(client, first + done + i as u32)?;
            }
            let res = self.platform.map(client, first + done, buf.get(..n as usize).ok_or(super::BROKEN)?);
            if let Err(e) = res {
                if done > 0 {
                    self.platform.release(client, first, done);
                }
                // Undo without a second release of the pages that were never mapped.
                for page in first..first + count {
                    let f = self.page_map_get(client, page)?;
                    self.frame_push(f)?;
                    self.page_map_set(client, page, super::storage::PAGE_NONE)?;
                }
                self.window_mark(client, first, count, false)?;
                let c = self.client_mut(client)?;
                c.frames_used = c.frames_used.saturating_sub(count);
                return Err(e);
            }
            done += n;
        }
        self.page_log.record(client, first, count);
        Ok(())
    }
}

//! Test support (feature `testing`, uses std): [`VecPlatform`], a window per client in a
//! `Vec<u8>` that checks the engine's use of the platform hooks and can make each fail,
//! [`OwnedStorage`], the engine's tables in `Vec`s, the one op enum of every random-program
//! test ([`ops`]) and the model harness ([`model`]).

#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

extern crate std;

use core::cell::Cell;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use protocol::{ClientId, Error, PAGE_SIZE};

use crate::{CacheDesc, ClientDesc, Engine, EngineConfig, EngineStorage, FrameDesc, Platform, SlabDesc};

/// An injected hook failure: the call after `after` more successful ones fails with `error`
/// (once; the knob then clears).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub after: u32,
    pub error: Error,
}

impl Failure {
    /// The next call fails.
    pub fn next(error: Error) -> Option<Failure> {
        Some(Failure { after: 0, error })
    }

    /// The call after `after` successful ones fails.
    pub fn after(after: u32, error: Error) -> Option<Failure> {
        Some(Failure { after, error })
    }
}

/// Counts a call against a knob: `Some(error)` if this call is the one to fail.
fn trip(knob: &mut Option<Failure>) -> Option<Error> {
    let f = knob.as_mut()?;
    if f.after == 0 {
        return knob.take().map(|f| f.error);
    }
    f.after -= 1;
    None
}

/// What a pool frame is used for, as the platform was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameUse {
    /// Backs a window page of a client.
    Window { client: ClientId, page: u32 },
    /// The server's own (`private_frame`).
    Private,
}

/// A platform whose windows are plain byte vectors, grown on demand. It checks the engine's
/// use of the hooks (a frame is mapped, released or made private only in a state that allows
/// it: a violation panics, failing the test) and can make any hook fail once.
#[derive(Debug, Default)]
pub struct VecPlatform {
    /// Window bytes of each client.
    pub windows: BTreeMap<ClientId, Vec<u8>>,
    /// Pages mapped so far.
    pub pages_mapped: u64,
    /// Pages released so far.
    pub pages_released: u64,
    /// Every frame in use, as the engine announced it.
    pub frames: BTreeMap<u32, FrameUse>,
    /// The bytes of each private frame.
    private: BTreeMap<u32, Box<[u8; PAGE_SIZE]>>,
    /// Failure injection, one knob per hook (`write` covers `fill`): see [`Failure`].
    pub fail_map: Option<Failure>,
    pub fail_release: Option<Failure>,
    pub fail_read: Cell<Option<Failure>>,
    pub fail_write: Option<Failure>,
    pub fail_private_frame: Option<Failure>,
    pub fail_private_release: Option<Failure>,
}

impl VecPlatform {
    /// An empty platform.
    pub fn new() -> Self {
        Self::default()
    }

    fn window(&mut self, client: ClientId, end: usize) -> &mut Vec<u8> {
        let w = self.windows.entry(client).or_default();
        if w.len() < end {
            w.resize(end, 0);
        }
        w
    }

    /// Fill window bytes (a client writing its objects).
    pub fn fill_bytes(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) {
        let start = offset as usize;
        self.window(client, start + len)[start..start + len].fill(byte);
    }

    /// Bytes of a window (zeros where never written).
    pub fn bytes(&self, client: ClientId, offset: u64, len: usize) -> Vec<u8> {
        let w = self.windows.get(&client).map(Vec::as_slice).unwrap_or(&[]);
        let start = (offset as usize).min(w.len());
        let n = len.min(w.len() - start);
        let mut v = w[start..start + n].to_vec();
        v.resize(len, 0);
        v
    }

    /// Private frames the server holds now.
    pub fn private_frames(&self) -> usize {
        self.private.len()
    }

    /// What the platform was told matches the engine's accounting: as many private frames as
    /// the clients' tracking frames, as many window frames as their other frames, plus the
    /// quarantined ones (whose release failed) of either kind; panics otherwise.
    pub fn assert_agrees_with<P: Platform>(&self, engine: &Engine<'_, P>) {
        let (mut tracking, mut window) = (0u64, 0u64);
        for c in 0..engine.config().max_clients {
            if let Ok(s) = engine.client_stats(c) {
                tracking += u64::from(s.tracking_frames);
                window += u64::from(s.frames_used - s.tracking_frames);
            }
        }
        let mapped = self.frames.values().filter(|u| matches!(u, FrameUse::Window { .. })).count() as u64;
        let quarantined = u64::from(engine.pool_stats().quarantined_frames);
        let private = self.private.len() as u64;
        assert!(private >= tracking && mapped >= window, "platform holds {private} private, {mapped} window frames");
        assert_eq!(private + mapped, tracking + window + quarantined, "frames the platform holds");
    }
}

impl Platform for VecPlatform {
    fn map(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        if let Some(e) = trip(&mut self.fail_map) {
            return Err(e);
        }
        for (i, &f) in frames.iter().enumerate() {
            let page = first_page + i as u32;
            let old = self.frames.insert(f, FrameUse::Window { client, page });
            assert_eq!(old, None, "frame {f} mapped at page {page} of client {client} while in use");
        }
        self.pages_mapped += frames.len() as u64;
        Ok(())
    }

    fn release(&mut self, client: ClientId, first_page: u32, frames: &[u32]) -> Result<(), Error> {
        for (i, &f) in frames.iter().enumerate() {
            let page = first_page + i as u32;
            let held = self.frames.get(&f);
            assert_eq!(held, Some(&FrameUse::Window { client, page }), "release of frame {f} (page {page})");
        }
        if let Some(e) = trip(&mut self.fail_release) {
            return Err(e);
        }
        for f in frames {
            self.frames.remove(f);
        }
        self.pages_released += frames.len() as u64;
        let start = first_page as usize * PAGE_SIZE;
        let end = start + frames.len() * PAGE_SIZE;
        self.window(client, end)[start..end].fill(0);
        Ok(())
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let mut knob = self.fail_read.get();
        let failed = trip(&mut knob);
        self.fail_read.set(knob);
        if let Some(e) = failed {
            return Err(e);
        }
        buf.copy_from_slice(&self.bytes(client, offset, buf.len()));
        Ok(())
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = trip(&mut self.fail_write) {
            return Err(e);
        }
        let start = offset as usize;
        self.window(client, start + data.len())[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) -> Result<(), Error> {
        if let Some(e) = trip(&mut self.fail_write) {
            return Err(e);
        }
        self.fill_bytes(client, offset, len, byte);
        Ok(())
    }

    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        if let Some(e) = trip(&mut self.fail_private_frame) {
            return Err(e);
        }
        match self.frames.insert(frame, FrameUse::Private) {
            None | Some(FrameUse::Private) => {}
            Some(other) => panic!("frame {frame} made private while {other:?}"),
        }
        // A frame the server has not used yet holds garbage: the engine must initialise it.
        Ok(self.private.entry(frame).or_insert_with(|| Box::new([0xa5; PAGE_SIZE])))
    }

    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        assert_eq!(self.frames.get(&frame), Some(&FrameUse::Private), "private release of frame {frame}");
        if let Some(e) = trip(&mut self.fail_private_release) {
            return Err(e);
        }
        self.frames.remove(&frame);
        self.private.remove(&frame);
        Ok(())
    }
}

/// The engine's tables in `Vec`s, sized by [`EngineStorage::required`].
#[derive(Debug)]
pub struct OwnedStorage {
    frames: Vec<FrameDesc>,
    slabs: Vec<SlabDesc>,
    bitmaps: Vec<u64>,
    clients: Vec<ClientDesc>,
    caches: Vec<CacheDesc>,
    page_map: Vec<u32>,
    window_bits: Vec<u64>,
}

impl OwnedStorage {
    /// Tables for `config`.
    pub fn new(config: &EngineConfig) -> Self {
        let s = EngineStorage::required(config).expect("storage sizes overflow");
        OwnedStorage {
            frames: vec![FrameDesc::EMPTY; s.frames],
            slabs: vec![SlabDesc::EMPTY; s.slabs],
            bitmaps: vec![0; s.bitmaps],
            clients: vec![ClientDesc::EMPTY; s.clients],
            caches: vec![CacheDesc::EMPTY; s.caches],
            page_map: vec![0; s.page_map],
            window_bits: vec![0; s.window_bits],
        }
    }

    /// Borrow the tables for an engine.
    pub fn storage(&mut self) -> EngineStorage<'_> {
        EngineStorage {
            frames: &mut self.frames,
            slabs: &mut self.slabs,
            bitmaps: &mut self.bitmaps,
            clients: &mut self.clients,
            caches: &mut self.caches,
            page_map: &mut self.page_map,
            window_bits: &mut self.window_bits,
        }
    }

    /// An engine over these tables with a fresh [`VecPlatform`].
    pub fn engine(&mut self, config: EngineConfig) -> Engine<'_, VecPlatform> {
        Engine::new(config, self.storage(), VecPlatform::new()).expect("engine config fits its storage")
    }
}

pub mod model;
pub mod ops;

/// Everything observable about accounting, as text: slabinfo of every client, the pool, each
/// client's stats. Equal digests before and after a failed operation mean it changed nothing.
pub fn state_digest<P: Platform>(e: &Engine<'_, P>) -> std::string::String {
    use std::fmt::Write as _;
    let mut s = std::string::String::new();
    let _ = e.write_slabinfo(None, &mut s);
    let _ = writeln!(s, "{:?}", e.pool_stats());
    for c in 0..e.config().max_clients {
        let _ = writeln!(s, "{:?}", e.client_stats(c));
    }
    s
}

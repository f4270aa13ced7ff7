//! Test support (feature `testing`, uses std): [`VecPlatform`], a window per client in a
//! `Vec<u8>`, and [`OwnedStorage`], the engine's tables in `Vec`s.

#![allow(clippy::expect_used, clippy::indexing_slicing)]

extern crate std;

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use protocol::{ClientId, Error, PAGE_SIZE};

use crate::{CacheDesc, ClientDesc, Engine, EngineConfig, EngineStorage, FrameDesc, Platform, SlabDesc, TrackPair};

/// A platform whose windows are plain byte vectors, grown on demand.
#[derive(Debug, Default)]
pub struct VecPlatform {
    /// Window bytes of each client.
    pub windows: BTreeMap<ClientId, Vec<u8>>,
    /// Pages mapped so far.
    pub pages_mapped: u64,
    /// Pages released so far.
    pub pages_released: u64,
    /// If set, the next `map` fails with this error (and the flag clears).
    pub fail_next_map: Option<Error>,
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
        Platform::fill(self, client, offset, len, byte);
    }

    /// Bytes of a window (zeros where never written).
    pub fn bytes(&self, client: ClientId, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.read(client, offset, &mut v);
        v
    }
}

impl Platform for VecPlatform {
    fn map(&mut self, _client: ClientId, _first_page: u32, frames: &[u32]) -> Result<(), Error> {
        if let Some(e) = self.fail_next_map.take() {
            return Err(e);
        }
        self.pages_mapped += frames.len() as u64;
        Ok(())
    }

    fn release(&mut self, client: ClientId, first_page: u32, count: u32) {
        self.pages_released += u64::from(count);
        let start = first_page as usize * PAGE_SIZE;
        let end = start + count as usize * PAGE_SIZE;
        let w = self.window(client, end);
        w[start..end].fill(0);
    }

    fn read(&self, client: ClientId, offset: u64, buf: &mut [u8]) {
        let w = self.windows.get(&client).map(Vec::as_slice).unwrap_or(&[]);
        let start = (offset as usize).min(w.len());
        let n = buf.len().min(w.len() - start);
        buf[..n].copy_from_slice(&w[start..start + n]);
        buf[n..].fill(0);
    }

    fn write(&mut self, client: ClientId, offset: u64, data: &[u8]) {
        let start = offset as usize;
        let w = self.window(client, start + data.len());
        w[start..start + data.len()].copy_from_slice(data);
    }

    fn fill(&mut self, client: ClientId, offset: u64, len: usize, byte: u8) {
        let start = offset as usize;
        let w = self.window(client, start + len);
        w[start..start + len].fill(byte);
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
    tracks: Vec<TrackPair>,
    track_used: Vec<u64>,
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
            tracks: vec![TrackPair::EMPTY; s.tracks],
            track_used: vec![0; s.track_used],
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
            tracks: &mut self.tracks,
            track_used: &mut self.track_used,
        }
    }

    /// An engine over these tables with a fresh [`VecPlatform`].
    pub fn engine(&mut self, config: EngineConfig) -> Engine<'_, VecPlatform> {
        Engine::new(config, self.storage(), VecPlatform::new()).expect("engine config fits its storage")
    }
}

pub mod model;

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

//! The in-process part of `make scale`: the real dispatch and engine over a platform whose
//! client windows are not backed by memory (caches without debug flags never read or write
//! object memory), with the engine's private frames and the control regions in memory.

use std::hint::black_box;
use std::time::Instant;

use memserver_dispatch::{ClientSpec, ControlAccess, InternalError, MagazineSizes, Server, ServerConfig, Session};
use memserver_engine::{Engine, EngineConfig, EngineStorage, Platform};
use protocol::control::{self, ControlMemory, MagazineRole};
use protocol::slub_debug::SlubDebug;
use protocol::{CacheId, ClientId, Error, ExchangeOp, Handle, PAGE_SIZE, PROTOCOL_VERSION, Reply, Request};
use serde_json::{Value, json};

/// loadgen's `mixed` size classes and their weights in percent.
const CLASSES: [(u32, u32); 11] =
    [(8, 10), (16, 12), (32, 14), (64, 18), (96, 6), (128, 10), (192, 8), (256, 8), (512, 7), (1024, 5), (2048, 2)];
const QUOTA: u32 = 70_000;
const WINDOW: u32 = 131_072;
const CACHES: u16 = 1_040;
const SLOTS: u16 = 16;

/// Windows unbacked; private frames and control regions in memory.
pub struct NullPlatform {
    private: Vec<Option<Box<[u8; PAGE_SIZE]>>>,
    controls: Vec<Vec<u8>>,
    control_client: ClientId,
    pub internal_errors: u64,
}

impl NullPlatform {
    fn new(pool: u32, clients: usize, control: usize) -> Self {
        NullPlatform {
            private: (0..pool).map(|_| None).collect(),
            controls: vec![vec![0; control]; clients],
            control_client: 0,
            internal_errors: 0,
        }
    }

    /// Private frames held.
    pub fn private_frames(&self) -> usize {
        self.private.iter().filter(|p| p.is_some()).count()
    }

    fn region(&self) -> &[u8] {
        self.controls.get(usize::from(self.control_client)).map_or(&[], Vec::as_slice)
    }
}

impl Platform for NullPlatform {
    fn map(&mut self, _: ClientId, _: u32, _: &[u32]) -> Result<(), Error> {
        Ok(())
    }
    fn release(&mut self, _: ClientId, _: u32, _: &[u32]) -> Result<(), Error> {
        Ok(())
    }
    fn read(&self, _: ClientId, _: u64, buf: &mut [u8]) -> Result<(), Error> {
        buf.fill(0);
        Ok(())
    }
    fn write(&mut self, _: ClientId, _: u64, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
    fn fill(&mut self, _: ClientId, _: u64, _: usize, _: u8) -> Result<(), Error> {
        Ok(())
    }
    fn private_frame(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        let slot = self.private.get_mut(frame as usize).ok_or(Error::Internal)?;
        Ok(slot.get_or_insert_with(|| Box::new([0; PAGE_SIZE])))
    }
    fn private_bytes(&self, frame: u32) -> Result<&[u8; PAGE_SIZE], Error> {
        self.private.get(frame as usize).and_then(|p| p.as_deref()).ok_or(Error::Internal)
    }
    fn private_bytes_mut(&mut self, frame: u32) -> Result<&mut [u8; PAGE_SIZE], Error> {
        self.private.get_mut(frame as usize).and_then(|p| p.as_deref_mut()).ok_or(Error::Internal)
    }
    fn private_release(&mut self, frame: u32) -> Result<(), Error> {
        *self.private.get_mut(frame as usize).ok_or(Error::Internal)? = None;
        Ok(())
    }
}

impl ControlMemory for NullPlatform {
    fn len(&self) -> usize {
        self.region().len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        self.region().read(offset, dst)
    }
    fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let client = usize::from(self.control_client);
        self.controls.get_mut(client).ok_or(Error::InvalidArgument)?.as_mut_slice().write(offset, src)
    }
}

impl ControlAccess for NullPlatform {
    fn control(&mut self, client: ClientId) -> Option<&mut dyn ControlMemory> {
        self.controls.get(usize::from(client))?;
        self.control_client = client;
        Some(self)
    }
    fn internal_error(&mut self, _: &InternalError) {
        self.internal_errors += 1;
    }
}

/// A server of `clients` clients (ids 1..) over the null platform.
struct World {
    server: Server<'static, NullPlatform>,
    config: EngineConfig,
}

fn leak<T: Clone>(value: T, len: usize) -> &'static mut [T] {
    Box::leak(vec![value; len].into_boxed_slice())
}

impl World {
    fn new(clients: u16) -> World {
        let pool = u32::from(clients) * QUOTA;
        let mut config = EngineConfig::new(pool, clients + 1, WINDOW);
        config.max_caches_per_client = CACHES;
        let storage = EngineStorage::leak(&config).expect("storage sizes");
        let server_config = ServerConfig { magazine_slots: SLOTS, magazine_sizes: MagazineSizes::DEFAULT };
        let platform =
            NullPlatform::new(pool, usize::from(clients) + 1, control::control_region_size(SLOTS, CACHES, WINDOW));
        let engine = Engine::new(config, storage, platform).expect("engine");
        let sessions = leak(Session::VACANT, usize::from(clients) + 1);
        let mut server = Server::new(engine, sessions, server_config).expect("server");
        for c in 1..=clients {
            let name = protocol::client_name(&format!("s{c}")).expect("name");
            let spec = ClientSpec {
                name: name.clone(),
                window_pages: WINDOW,
                quota_pages: QUOTA,
                introspect: false,
                slub_debug: SlubDebug::NONE,
            };
            server.admit(c, &spec).expect("admit");
            let hello = call(&mut server, c, &Request::Hello { version: PROTOCOL_VERSION, client_name: name });
            assert!(matches!(hello, Reply::Hello(_)), "{hello:?}");
        }
        World { server, config }
    }

    fn create(&mut self, c: ClientId, name: &str, size: u32) -> (CacheId, u16) {
        let name = protocol::cache_name(name).expect("cache name");
        match call(
            &mut self.server,
            c,
            &Request::CacheCreate { name, size, align: 0, flags: 0, ctor: false, dtor: false },
        ) {
            Reply::Created(created) => (created.cache, created.slot.unwrap_or(u16::MAX)),
            other => panic!("create: {other:?}"),
        }
    }

    /// `n` objects of `cache` allocated through refills (the client keeps them), or by `Alloc`
    /// when the cache has no magazine slot.
    fn fill(&mut self, c: ClientId, (cache, slot): (CacheId, u16), n: u64) {
        if slot == u16::MAX {
            for _ in 0..n {
                let reply = call(&mut self.server, c, &Request::Alloc { cache });
                assert!(matches!(reply, Reply::Object(_)), "alloc: {reply:?}");
            }
            return;
        }
        let mut left = n;
        while left > 0 {
            let got = self.refill(c, cache, slot);
            self.set_count(c, slot, MagazineRole::Loaded, 0);
            left = left.saturating_sub(u64::from(got.max(1)));
        }
    }

    fn exchange(&mut self, c: ClientId, cache: CacheId, slot: u16, op: ExchangeOp) -> Reply {
        call(&mut self.server, c, &Request::MagazineExchange { cache, slot, op })
    }

    fn refill(&mut self, c: ClientId, cache: CacheId, slot: u16) -> u16 {
        match self.exchange(c, cache, slot, ExchangeOp::Refill) {
            Reply::Exchanged(e) => e.count,
            other => panic!("refill: {other:?}"),
        }
    }

    fn set_count(&mut self, c: ClientId, slot: u16, role: MagazineRole, count: u32) {
        let region = self.server.engine_mut().platform_mut().control(c).expect("control");
        control::write_count(region, slot, role, count).expect("count");
    }

    fn loaded(&mut self, c: ClientId, slot: u16) -> control::Magazine {
        let region = self.server.engine_mut().platform_mut().control(c).expect("control");
        control::read_magazine(region, slot, MagazineRole::Loaded).expect("magazine")
    }

    fn put_loaded(&mut self, c: ClientId, slot: u16, magazine: &control::Magazine) {
        let region = self.server.engine_mut().platform_mut().control(c).expect("control");
        control::write_magazine(region, slot, MagazineRole::Loaded, magazine).expect("magazine");
    }

    /// Gives client `c` `objects` live objects in the mixed classes.
    fn populate(&mut self, c: ClientId, objects: u64) {
        for (size, weight) in CLASSES {
            let cache = self.create(c, &format!("m{size}"), size);
            self.fill(c, cache, objects * u64::from(weight) / 100);
        }
    }

    fn live_objects(&self) -> u64 {
        let e = self.server.engine();
        (1..self.config.max_clients)
            .flat_map(|c| e.cache_ids(c).filter_map(move |id| e.cache_info(c, id).ok()))
            .map(|i| u64::from(i.active_objs))
            .sum()
    }
}

/// Sends `request` as `client`; the decoded reply.
fn call(server: &mut Server<'static, NullPlatform>, client: ClientId, request: &Request) -> Reply {
    let mut bytes = [0u8; protocol::MAX_MESSAGE_BYTES];
    let len = protocol::encode_request(request, &mut bytes).expect("encode").len();
    let mut reply = [0u8; protocol::MAX_MESSAGE_BYTES];
    let n = server.dispatch(client, &bytes[..len], &mut reply);
    protocol::decode_reply(&reply[..n]).expect("reply decodes")
}

/// The median of `batches` timings of `per_batch` runs of `f`, in ns per run.
fn median_ns(batches: usize, per_batch: usize, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The timings on client 1's measured cache (64 B objects, its own slot), in ns.
fn measure(world: &mut World, (cache, slot): (CacheId, u16), quick: bool) -> Value {
    let (batches, per) = if quick { (3, 5) } else { (15, 200) };
    let c = 1;
    // Through the depot: the magazine drained into it and refilled from it.
    world.refill(c, cache, slot);
    let full = world.loaded(c, slot);
    let depot = median_ns(batches, per, || {
        world.put_loaded(c, slot, &full);
        black_box(world.exchange(c, cache, slot, ExchangeOp::Drain));
        black_box(world.refill(c, cache, slot));
    });
    let moved = 2.0 * f64::from(full.count);
    // Through the slabs: refilled from them, flushed back into them (the depot stays empty).
    world.put_loaded(c, slot, &full);
    world.exchange(c, cache, slot, ExchangeOp::Flush);
    let slabs = median_ns(batches, per, || {
        world.refill(c, cache, slot);
        black_box(world.exchange(c, cache, slot, ExchangeOp::Flush));
    });
    // A shrink of a cache with 4 empty slabs (512 B objects: 8 a slab).
    let shrinkable = world.create(c, "shrinkable", 512).0;
    let shrink_batches = if quick { 3 } else { 41 };
    let mut shrinks = Vec::new();
    for _ in 0..shrink_batches {
        let held: Vec<Handle> = (0..32)
            .map(|_| match call(&mut world.server, c, &Request::Alloc { cache: shrinkable }) {
                Reply::Object(o) => o.handle,
                other => panic!("alloc: {other:?}"),
            })
            .collect();
        for handle in held {
            call(&mut world.server, c, &Request::Free { cache: shrinkable, handle });
        }
        let t = Instant::now();
        let reply = call(&mut world.server, c, &Request::Shrink { cache: shrinkable });
        shrinks.push(t.elapsed().as_nanos() as f64);
        assert!(matches!(reply, Reply::Shrunk(s) if s.pages == 4), "{reply:?}");
    }
    shrinks.sort_by(f64::total_cmp);
    json!({
        "exchange_depot_ns_per_object": depot / moved,
        "exchange_slabs_ns_per_object": slabs / moved,
        "shrink_ns": shrinks[shrinks.len() / 2],
    })
}

/// The server's own memory: its tables, the sessions, and the bitmap frames charged to the
/// clients; per live object.
fn memory(world: &World) -> Value {
    let tables = EngineStorage::required(&world.config).map_or(0, |s| s.bytes());
    let sessions = std::mem::size_of::<Session>() * usize::from(world.config.max_clients);
    let e = world.server.engine();
    let bitmap_frames: u64 =
        (1..world.config.max_clients).filter_map(|c| e.client_stats(c).ok()).map(|s| u64::from(s.bitmap_frames)).sum();
    let live = world.live_objects().max(1) as f64;
    let private = e.platform().private_frames() as u64;
    json!({
        "live_objects": live,
        "tables_bytes": tables, "sessions_bytes": sessions,
        "bitmap_frames": bitmap_frames, "private_frames": private,
        "tables_per_object": tables as f64 / live,
        "bitmaps_per_object": (bitmap_frames * PAGE_SIZE as u64) as f64 / live,
        "server_bytes_per_object": (tables + sessions) as f64 / live + (private * PAGE_SIZE as u64) as f64 / live,
    })
}

/// One scenario: `clients` clients of `objects` live objects each in the mixed classes, and
/// client 1 with `extra` more 64 B caches of `per_extra` objects each; the timings and memory.
fn scenario(name: &str, clients: u16, objects: u64, extra: u16, per_extra: u64, quick: bool) -> Value {
    let t = Instant::now();
    let mut world = World::new(clients);
    // The measured cache first: it gets a magazine slot whatever else client 1 has.
    let measured = world.create(1, "measured", 64);
    world.fill(1, measured, 4096);
    for c in 1..=clients {
        if objects > 0 {
            world.populate(c, objects);
        }
    }
    for i in 0..extra {
        let cache = world.create(1, &format!("x{i}"), 64);
        world.fill(1, cache, per_extra);
    }
    let populated = t.elapsed().as_secs_f64();
    let mut result = measure(&mut world, measured, quick);
    result["memory"] = memory(&world);
    result["name"] = json!(name);
    result["clients"] = json!(clients);
    result["objects_per_client"] = json!(objects);
    result["caches_client_1"] = json!(world.server.engine().cache_ids(1).count());
    result["populate_seconds"] = json!(populated);
    result["internal_errors"] = json!(world.server.engine().platform().internal_errors);
    eprintln!("scale: {name}: populated in {populated:.1} s");
    result
}

/// Every scenario: 1 and 64 clients of 1,000,000 live objects each; a client with 10 and with
/// 1,000 caches (100,000 objects between them).
pub fn run_all(quick: bool) -> Value {
    let objects = if quick { 2_000 } else { 1_000_000 };
    let many = if quick { 4 } else { 64 };
    let spread = if quick { 1_000 } else { 100_000 };
    json!([
        scenario("1 client", 1, objects, 0, 0, quick),
        scenario(&format!("{many} clients"), many, objects, 0, 0, quick),
        scenario("10 caches", 1, 0, 10, spread / 10, quick),
        scenario("1,000 caches", 1, 0, 1_000, spread / 1_000, quick),
    ])
}

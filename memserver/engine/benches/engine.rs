//! Engine alloc+free pairs (sizes 8, 64, 256, 4096), plain and with SLAB_POISON|SLAB_RED_ZONE.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use memserver_engine::EngineConfig;
use memserver_engine::testing::OwnedStorage;
use protocol::flags::{SLAB_POISON, SLAB_RED_ZONE};

fn alloc_free(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_free_pair");
    for (label, flags) in [("plain", 0u32), ("poison_redzone", SLAB_POISON | SLAB_RED_ZONE)] {
        for size in [8u32, 64, 256, 4096] {
            let config = EngineConfig::new(1024, 1, 4096);
            let mut storage = OwnedStorage::new(&config);
            let mut e = storage.engine(config);
            e.client_attach(0, 4096, 1024).unwrap();
            let cache = e.cache_create(0, "bench", size, 0, flags, false).unwrap();
            // Keep one object live so the slab stays partial, as in steady state.
            let _keep = e.cache_alloc(0, cache).unwrap();
            group.bench_function(BenchmarkId::new(label, size), |b| {
                b.iter(|| {
                    let a = e.cache_alloc(0, cache).unwrap();
                    e.cache_free(0, cache, std::hint::black_box(a.handle)).unwrap();
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, alloc_free);
criterion_main!(benches);

//! The partition engine without HTTP or actors: lock-free reads, writes, writes that
//! evict, and expiry, on a seeded Zipf key distribution (s = 1.0, the usual model
//! of cache traffic).
//!
//! What this does not measure: the HTTP stack, the actor round trip of a write, or
//! contention between threads. End-to-end figures come from wrk (see README).

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Zipf};
use rustkv::store::{Entry, Limits, PartitionState, Precondition, Put, Shared};

const KEYS: u64 = 100_000;
const BIG: u64 = 1_000_000;
const OPS: usize = 10_000;
const VALUE: &[u8] = br#"{"name":"Alice","age":30,"tags":["a","b"]}"#;

fn zipf_keys(seed: u64, count: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(KEYS, 1.0).expect("valid parameters");
    (0..count)
        .map(|_| format!("key{}", zipf.sample(&mut rng) as u64 - 1))
        .collect()
}

fn put(key: &str, ttl: Option<u64>) -> Put {
    Put {
        entry: Entry::new(key, VALUE),
        ttl,
        precondition: Precondition::default(),
    }
}

fn filled(capacity: u64) -> PartitionState {
    filled_with(capacity, KEYS.min(capacity))
}

fn filled_with(capacity: u64, keys: u64) -> PartitionState {
    let limits = Limits {
        capacity,
        max_memory: u64::MAX / 2,
        eviction: rustkv::config::Eviction::Lru,
    };
    let mut state = PartitionState::new(Arc::new(Shared::default()), limits, 0);
    for index in 0..keys {
        state.put(put(&format!("key{index}"), None), 0).unwrap();
    }
    state
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("partition");
    group.throughput(Throughput::Elements(OPS as u64));
    let keys = zipf_keys(42, OPS);

    let state = filled(KEYS);
    group.bench_function("get (zipf, 100k keys)", |b| {
        b.iter(|| {
            let hits = keys
                .iter()
                .filter(|key| state.shared().get(key, 0).is_some())
                .count();
            // Keep the read buffer from filling, as the actor would.
            state.shared().get("key0", 0);
            hits
        })
    });

    let mut state = filled(KEYS);
    group.bench_function("put replace (zipf, 100k keys)", |b| {
        b.iter(|| {
            keys.iter().for_each(|key| {
                let _ = state.put(put(key, None), 0);
            })
        })
    });

    // The flat-cost case: replacing keys spread evenly over a million, where every
    // lookup misses the CPU caches.
    let mut state = filled_with(BIG, BIG);
    let mut rng = StdRng::seed_from_u64(9);
    let spread: Vec<String> = (0..OPS)
        .map(|_| format!("key{}", rng.gen_range(0..BIG)))
        .collect();
    group.bench_function("put replace (uniform, 1M keys)", |b| {
        b.iter(|| {
            spread.iter().for_each(|key| {
                let _ = state.put(put(key, None), 0);
            })
        })
    });
    drop(state);

    let mut state = filled(KEYS / 10);
    group.bench_function("put with eviction (zipf over 100k, capacity 10k)", |b| {
        b.iter(|| {
            keys.iter().for_each(|key| {
                let _ = state.put(put(key, None), 0);
            })
        })
    });

    group.bench_function("put with ttl then expire all", |b| {
        let mut rng = StdRng::seed_from_u64(7);
        b.iter_batched(
            || filled(0),
            |mut state| {
                for (index, key) in keys.iter().enumerate() {
                    let ttl = rng.gen_range(1..10_000_000_000u64);
                    state
                        .put(put(&format!("{key}-{index}"), Some(ttl)), 0)
                        .unwrap();
                }
                state.tick(20_000_000_000);
                assert!(state.is_empty());
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);

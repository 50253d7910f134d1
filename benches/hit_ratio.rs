//! Hit-ratio simulator: what partitioning the keyspace costs in hits against one
//! global exact LRU of the same total capacity.
//!
//! Each partition is an exact LRU over its own keys, so a partitioned store is only
//! approximately LRU overall: a partition whose keys happen to be hotter evicts
//! entries another partition would have kept. This measures that loss with the real
//! `PartitionState` (skiplist, LRU slab, read buffer), keys routed by a fixed-seed
//! hash the way `Store` routes them, capacity split by `split_limits`.
//!
//! Traces, both seeded and replayed cache-aside (get; on a miss, put), capacity
//! 100,000, no TTLs (`now = 0`):
//! - `zipf`: 2,000,000 requests, Zipf s = 0.99 over 1,000,000 keys;
//! - `zipf + scans`: the same requests with a sequential scan of 50,000 keys never
//!   seen before or again inserted after every 200,000 of them (9 scans). Scan
//!   requests are always misses and count in the ratio.
//!
//! A hit is buffered in the partition's read buffer (4096 slots) and only reaches
//! the LRU list when a put or a tick drains it; hits beyond 4096 between two drains
//! are dropped. With a high hit ratio a run of gets could overflow it, so every
//! partition gets `tick(0)` every 1,000 requests, as the server's periodic tick
//! would; the run asserts no hit was dropped, so both sides are exact LRUs.
//!
//! What this does not measure: speed (see `engine.rs`), TTL expiry, memory limits,
//! or other eviction policies. Run with `cargo bench --bench hit_ratio`.

use std::{
    collections::hash_map::DefaultHasher,
    fmt::Write,
    hash::{BuildHasher, BuildHasherDefault},
    sync::Arc,
    thread,
};

use bytesize::ByteSize;
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Zipf};
use rustkv::{
    config::StoreConfig,
    store::{Entry, PartitionState, Precondition, Put, Shared, split_limits},
};

const CAPACITY: u64 = 100_000;
const KEYS: u64 = 1_000_000;
const REQUESTS: usize = 2_000_000;
const ZIPF_EXPONENT: f64 = 0.99;
const SCAN_EVERY: usize = 200_000;
const SCAN_LENGTH: u64 = 50_000;
/// Requests between two drains of the read buffer (the server's tick).
const TICK_EVERY: usize = 1_000;
const PARTITIONS: [usize; 3] = [2, 4, 8];
const VALUE: &[u8] = br#"{"name":"Alice","age":30,"tags":["a","b"]}"#;

/// Key ids: `0..KEYS` for Zipf keys, `KEYS..` for scan keys (never repeated).
fn zipf_trace() -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(42);
    let zipf = Zipf::new(KEYS, ZIPF_EXPONENT).expect("valid parameters");
    (0..REQUESTS)
        .map(|_| zipf.sample(&mut rng) as u64 - 1)
        .collect()
}

fn with_scans(zipf: &[u64]) -> Vec<u64> {
    let mut trace = Vec::with_capacity(zipf.len() * 2);
    let mut next_scan_key = KEYS;
    for (index, block) in zipf.chunks(SCAN_EVERY).enumerate() {
        if index > 0 {
            trace.extend(next_scan_key..next_scan_key + SCAN_LENGTH);
            next_scan_key += SCAN_LENGTH;
        }
        trace.extend_from_slice(block);
    }
    trace
}

/// `partitions` states splitting `CAPACITY`, with memory that never binds.
fn partitions(count: usize) -> Vec<PartitionState> {
    let config = StoreConfig {
        capacity: CAPACITY,
        max_memory: ByteSize::b(u64::MAX / 2),
        partitions: count,
        ..StoreConfig::default()
    };
    split_limits(&config, count)
        .into_iter()
        .map(|limits| PartitionState::new(Arc::new(Shared::default()), limits, 0))
        .collect()
}

/// Same mapping as `Store`'s (high bits, Lemire's multiply-shift); the hasher is
/// fixed-seed SipHash instead of a random one, so runs repeat exactly.
fn partition_index(hash: u64, count: usize) -> usize {
    ((u128::from(hash) * count as u128) >> 64) as usize
}

/// Replays `trace` cache-aside over `count` partitions; returns the hit ratio.
fn replay(trace: &[u64], count: usize) -> f64 {
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    let mut states = partitions(count);
    let mut key = String::new();
    let mut hits = 0u64;
    for (index, id) in trace.iter().enumerate() {
        key.clear();
        write!(key, "key{id}").expect("writing to a String");
        let state = &mut states[partition_index(hasher.hash_one(&key), count)];
        if state.shared().get(&key, 0).is_some() {
            hits += 1;
        } else {
            let put = Put {
                entry: Entry::new(&key, VALUE),
                ttl: None,
                precondition: Precondition::default(),
            };
            state.put(put, 0).expect("no precondition");
        }
        if index % TICK_EVERY == TICK_EVERY - 1 {
            states.iter_mut().for_each(|state| state.tick(0));
        }
    }
    for state in &states {
        let stats = state.stats();
        assert_eq!(stats.read_drops, 0, "a hit was dropped: not an exact LRU");
        assert_eq!(stats.keys, stats.capacity, "the cache never filled");
    }
    hits as f64 / trace.len() as f64
}

fn report(name: &str, trace: &[u64]) {
    let counts: Vec<usize> = std::iter::once(1).chain(PARTITIONS).collect();
    // One thread per configuration: they share nothing but the trace.
    let ratios: Vec<f64> = thread::scope(|scope| {
        let runs: Vec<_> = counts
            .iter()
            .map(|&count| scope.spawn(move || replay(trace, count)))
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("replay panicked"))
            .collect()
    });
    let global = ratios[0];
    println!("\n{name}: {} requests, capacity {CAPACITY}", trace.len());
    println!("{:<24} {:>9} {:>12}", "cache", "hit ratio", "vs global");
    println!("{:<24} {:>8.3}% {:>12}", "global LRU", global * 100.0, "");
    for (count, ratio) in counts.iter().zip(&ratios).skip(1) {
        let label = format!("{count} partitions");
        let delta = (ratio - global) * 100.0;
        println!("{label:<24} {:>8.3}% {delta:>+9.3} pp", ratio * 100.0);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this is not a criterion bench, so ignore it.
    let started = std::time::Instant::now();
    let zipf = zipf_trace();
    report("zipf (s = 0.99, 1M keys)", &zipf);
    report(
        "zipf + scans (50k-key scan every 200k requests)",
        &with_scans(&zipf),
    );
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
}

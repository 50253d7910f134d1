//! Hit-ratio simulator, two questions.
//!
//! **Which policy hits more.** LRU and W-TinyLFU (`store.eviction`), each one real
//! `PartitionState`, against moka (a `sync::Cache` with TinyLFU admission,
//! `run_pending_tasks()` after every operation so none of its upkeep is skipped),
//! same capacity, same traces, replayed cache-aside (get; on a miss, put).
//! Traces, 1,000,000 requests each, seeded (parameters in `policy_traces`):
//! - `zipf 0.8` and `zipf 0.99`: 100,000 keys, capacity 5,000;
//! - `zipf 0.9 + scans`: 100,000 keys, a scan of 20,000 one-off keys every 100,000
//!   requests, capacity 5,000;
//! - `loop`: 5,500 keys over and over in order, capacity 5,000 (LRU's worst case);
//! - `shifting`: zipf 0.9 over 10,000 keys whose ids move on by 5,000 every
//!   100,000 requests, capacity 2,000;
//! - `mixed`: 70% zipf 0.9 over 10,000 keys, 30% the next key of a loop over 2,500,
//!   and a burst of 2,000 one-off keys every 50,000 requests, capacity 2,000.
//!
//! **What partitioning costs.** Against one global exact LRU of the same total
//! capacity.
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
//! What this does not measure: speed (see `engine.rs`, `benches/instructions.py`),
//! TTL expiry or memory limits. Run with `cargo bench --bench hit_ratio` (add
//! `-- policies` or `-- partitions` for one half); the HTTP
//! replay of the mixed trace against the real server is `benches/hit_ratio_http.py`.

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
    config::{Eviction, StoreConfig},
    store::{Entry, Limits, PartitionState, Precondition, Put, Shared, split_limits},
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

/// One cache-aside request: a get, and on a miss a put. Answers whether it hit.
fn read_through(state: &mut PartitionState, key: &str) -> bool {
    if state.shared().get(key, 0).is_some() {
        return true;
    }
    let put = Put {
        entry: Entry::new(key, VALUE),
        ttl: None,
        precondition: Precondition::default(),
    };
    state.put(put, 0).expect("no precondition");
    false
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
        hits += u64::from(read_through(state, &key));
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

// ---- policies ----

const POLICY_REQUESTS: usize = 1_000_000;

/// A named trace of key ids and the capacity to replay it at.
struct Trace {
    name: &'static str,
    capacity: u64,
    ids: Vec<u64>,
}

fn zipf_ids(rng: &mut StdRng, keys: u64, exponent: f64, count: usize) -> Vec<u64> {
    let zipf = Zipf::new(keys, exponent).expect("valid parameters");
    (0..count).map(|_| zipf.sample(rng) as u64 - 1).collect()
}

fn policy_traces() -> Vec<Trace> {
    let mut rng = StdRng::seed_from_u64(7);
    let n = POLICY_REQUESTS;
    // One-off keys come from far above every other id space.
    let mut one_off = 1u64 << 40;
    let mut fresh = |count: u64| {
        let ids = one_off..one_off + count;
        one_off += count;
        ids
    };
    let zipf_08 = zipf_ids(&mut rng, 100_000, 0.8, n);
    let zipf_099 = zipf_ids(&mut rng, 100_000, 0.99, n);
    let mut scans = Vec::with_capacity(n * 2);
    for (index, block) in zipf_ids(&mut rng, 100_000, 0.9, n)
        .chunks(100_000)
        .enumerate()
    {
        if index > 0 {
            scans.extend(fresh(20_000));
        }
        scans.extend_from_slice(block);
    }
    let looped = (0..n as u64).map(|i| i % 5_500).collect();
    let shifting = zipf_ids(&mut rng, 10_000, 0.9, n)
        .into_iter()
        .enumerate()
        .map(|(i, id)| id + 5_000 * (i / 100_000) as u64)
        .collect();
    let mut mixed = Vec::with_capacity(n + n / 25);
    let (hot, mut loop_at) = (zipf_ids(&mut rng, 10_000, 0.9, n), 0u64);
    let coin = rand::distributions::Bernoulli::new(0.7).expect("a probability");
    for (i, id) in hot.into_iter().enumerate() {
        if i > 0 && i % 50_000 == 0 {
            mixed.extend(fresh(2_000));
        }
        if coin.sample(&mut rng) {
            mixed.push(id);
        } else {
            mixed.push(1_000_000 + loop_at);
            loop_at = (loop_at + 1) % 2_500;
        }
    }
    let trace = |name, capacity, ids| Trace {
        name,
        capacity,
        ids,
    };
    vec![
        trace("zipf 0.8", 5_000, zipf_08),
        trace("zipf 0.99", 5_000, zipf_099),
        trace("zipf 0.9 + scans", 5_000, scans),
        trace("loop", 5_000, looped),
        trace("shifting", 2_000, shifting),
        trace("mixed", 2_000, mixed),
    ]
}

/// Replays `ids` cache-aside through one real partition evicting by `eviction`.
fn replay_partition(ids: &[u64], capacity: u64, eviction: Eviction) -> f64 {
    let limits = Limits {
        capacity,
        max_memory: u64::MAX / 2,
        eviction,
    };
    let mut state = PartitionState::new(Arc::new(Shared::new(eviction)), limits, 0);
    let (mut key, mut hits) = (String::new(), 0u64);
    for (index, id) in ids.iter().enumerate() {
        key.clear();
        write!(key, "key{id}").expect("writing to a String");
        hits += u64::from(read_through(&mut state, &key));
        if index % TICK_EVERY == TICK_EVERY - 1 {
            state.tick(0);
        }
    }
    assert_eq!(state.stats().read_drops, 0, "a read report was dropped");
    hits as f64 / ids.len() as f64
}

/// The same through moka, its maintenance run after every operation.
fn replay_moka(ids: &[u64], capacity: u64) -> f64 {
    let cache = moka::sync::Cache::<u64, ()>::builder()
        .max_capacity(capacity)
        .build();
    let mut hits = 0u64;
    for id in ids {
        if cache.get(id).is_some() {
            hits += 1;
        } else {
            cache.insert(*id, ());
        }
        cache.run_pending_tasks();
    }
    hits as f64 / ids.len() as f64
}

fn compare_policies() {
    let traces = policy_traces();
    println!(
        "
policies: hit ratio, cache-aside, one partition (moka: one cache)"
    );
    println!(
        "{:<18} {:>8} {:>9} {:>9} {:>9} {:>14} {:>14}",
        "trace", "capacity", "lru", "tinylfu", "moka", "tinylfu-lru", "tinylfu-moka"
    );
    for trace in &traces {
        let (ids, capacity) = (&trace.ids, trace.capacity);
        let [lru, tinylfu, moka] = thread::scope(|scope| {
            let lru = scope.spawn(|| replay_partition(ids, capacity, Eviction::Lru));
            let tinylfu = scope.spawn(|| replay_partition(ids, capacity, Eviction::Tinylfu));
            let moka = replay_moka(ids, capacity);
            [lru.join(), tinylfu.join(), Ok(moka)].map(|run| run.expect("replay panicked"))
        });
        println!(
            "{:<18} {:>8} {:>8.2}% {:>8.2}% {:>8.2}% {:>+11.2} pp {:>+11.2} pp",
            trace.name,
            capacity,
            lru * 100.0,
            tinylfu * 100.0,
            moka * 100.0,
            (tinylfu - lru) * 100.0,
            (tinylfu - moka) * 100.0
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this is not a criterion bench, so ignore it.
    let started = std::time::Instant::now();
    // `-- policies` or `-- partitions` runs one half.
    let only = |half: &str| std::env::args().all(|arg| arg != half);
    if only("partitions") {
        compare_policies();
    }
    if !only("policies") {
        println!("\n({:.1} s)", started.elapsed().as_secs_f64());
        return;
    }
    let zipf = zipf_trace();
    report("zipf (s = 0.99, 1M keys)", &zipf);
    report(
        "zipf + scans (50k-key scan every 200k requests)",
        &with_scans(&zipf),
    );
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
}

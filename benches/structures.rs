//! The two pure index structures a partition is built on, alone: the LRU list
//! (`Lru`, a slab-linked list) and the timer wheel (`TimerWheel`), from 1k entries
//! up to 1M (LRU) and 10M (wheel), so the O(1) claims and the cost of cache misses
//! at size are visible as numbers.
//!
//! - LRU `touch`: Zipf-popular (s = 1.0) live slots moved to the front, over a list
//!   whose order has been shuffled so neighbours are not neighbours in memory.
//! - LRU `churn`: `pop_lru` then `insert` at a steady size, what an eviction does.
//! - Wheel `schedule`: n ids into an empty wheel, deadlines log-uniform from 10 ms
//!   to 1 day (so every level is used).
//! - Wheel `deschedule`: the same n timers removed in random order.
//! - Wheel `advance`: one jump past every deadline, expiring all n.
//!
//! What this does not measure: the skiplist, the entries' allocations, the read
//! buffer, actors or HTTP (see `engine.rs` and `read_path.rs`), nor contention: the
//! structures are single-owner by design. Setup (filling a wheel before
//! `deschedule`/`advance`) is excluded from the timings with `iter_batched`.

use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main, measurement::WallTime,
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rand_distr::{Distribution, Zipf};
use rustkv::store::bench_support::{Lru, TimerWheel};

/// Operations per timed iteration of the LRU benches.
const OPS: usize = 10_000;
const LRU_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const WHEEL_SIZES: [usize; 4] = [1_000, 100_000, 1_000_000, 10_000_000];
/// Filling a 10M wheel for every `deschedule` sample would dominate the run.
const DESCHEDULE_MAX: usize = 1_000_000;
/// An arbitrary clock origin, as a long-running process would have.
const START: u64 = 1_000_000_000_000;
const SHORTEST_TTL: f64 = 1e7; // 10 ms
const LONGEST_TTL: f64 = 8.64e13; // 1 day
const ONE_DAY_AND_A_HALF: u64 = 129_600_000_000_000;

fn label(size: usize) -> String {
    match size {
        size if size >= 1_000_000 => format!("{}M", size / 1_000_000),
        size if size >= 1_000 => format!("{}k", size / 1_000),
        size => size.to_string(),
    }
}

/// Large sizes take long per iteration: few flat samples keep the run short.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>, size: usize) {
    if size >= 1_000_000 {
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    } else {
        group.sample_size(50);
        group.sampling_mode(SamplingMode::Auto);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    }
}

/// `0..size` in a seeded random order.
fn permutation(size: usize, seed: u64) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..size as u32).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(seed));
    ids
}

/// A full list whose recency order is a random permutation of its slab order.
fn shuffled_lru(size: usize) -> Lru<u64> {
    let mut lru = Lru::default();
    for value in 0..size as u64 {
        lru.insert(value);
    }
    for slot in permutation(size, 1) {
        lru.touch(slot);
    }
    lru
}

/// `OPS` slots by Zipf popularity; rank r maps to a random slot, so hot entries
/// are scattered through the slab as they would be in a partition.
fn zipf_slots(size: usize) -> Vec<u32> {
    let slots = permutation(size, 2);
    let zipf = Zipf::new(size as u64, 1.0).expect("valid parameters");
    let mut rng = StdRng::seed_from_u64(42);
    (0..OPS)
        .map(|_| slots[zipf.sample(&mut rng) as usize - 1])
        .collect()
}

fn lru(c: &mut Criterion) {
    let mut group = c.benchmark_group("lru");
    group.throughput(Throughput::Elements(OPS as u64));
    for size in LRU_SIZES {
        configure(&mut group, size);
        let mut lru = shuffled_lru(size);
        let slots = zipf_slots(size);
        group.bench_function(format!("touch (zipf, {})", label(size)), |b| {
            b.iter(|| slots.iter().for_each(|&slot| lru.touch(slot)))
        });
        group.bench_function(format!("insert + pop_lru ({})", label(size)), |b| {
            b.iter(|| {
                for value in 0..OPS as u64 {
                    let (_, evicted) = lru.pop_lru().expect("full");
                    lru.insert(evicted ^ value);
                }
            })
        });
        assert_eq!(lru.len(), size);
    }
    group.finish();
}

/// `size` deadlines, log-uniform between 10 ms and 1 day after `START`.
fn deadlines(size: usize) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(7);
    let (low, high) = (SHORTEST_TTL.ln(), LONGEST_TTL.ln());
    (0..size)
        .map(|_| START + rng.gen_range(low..high).exp() as u64)
        .collect()
}

fn filled_wheel(deadlines: &[u64]) -> TimerWheel {
    let mut wheel = TimerWheel::new(START);
    for (id, &deadline) in deadlines.iter().enumerate() {
        wheel.schedule(id as u32, deadline);
    }
    wheel
}

fn wheel(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel");
    for size in WHEEL_SIZES {
        configure(&mut group, size);
        group.throughput(Throughput::Elements(size as u64));
        let deadlines = deadlines(size);
        group.bench_function(format!("schedule ({})", label(size)), |b| {
            b.iter_batched(
                || TimerWheel::new(START),
                |mut wheel| {
                    for (id, &deadline) in deadlines.iter().enumerate() {
                        wheel.schedule(id as u32, deadline);
                    }
                    wheel
                },
                BatchSize::LargeInput,
            )
        });
        if size <= DESCHEDULE_MAX {
            let order = permutation(size, 3);
            group.bench_function(format!("deschedule ({})", label(size)), |b| {
                b.iter_batched(
                    || filled_wheel(&deadlines),
                    |mut wheel| {
                        order.iter().for_each(|&id| wheel.deschedule(id));
                        wheel
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        group.bench_function(format!("advance expiring all ({})", label(size)), |b| {
            b.iter_batched(
                || (filled_wheel(&deadlines), Vec::with_capacity(size)),
                |(mut wheel, mut expired)| {
                    wheel.advance(START + ONE_DAY_AND_A_HALF, &mut expired);
                    assert!(wheel.is_empty() && expired.len() == size);
                    (wheel, expired)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, lru, wheel);
criterion_main!(benches);

//! Ordered scans without HTTP: one page (`Scan::page`, the k-way merge over the
//! partitions' skiplists) of 100 keys at the start, the middle and 90% deep into a
//! store of 1,000,000 keys (by cursor, and as the first page of the prefix `key09`),
//! split over 2 and over 8 partitions.
//!
//! The issue's goal is that a page deep in a 1M-key store costs what the first
//! one does: a page seeks each partition once (O(log n)), then takes one step per
//! key examined, wherever it starts. Keys are `key0000000`..`key0999999`, so byte
//! order is numeric order and "90% deep" is the page after `key0899999`; they are
//! dealt to partitions by a hash of the key, as the server routes them.
//!
//! What this does not measure: HTTP and JSON (see `benches/scan_pages.py`), or
//! scans racing writers (see `benches/scan_soak.py`).

use std::{
    hash::{BuildHasher, BuildHasherDefault, DefaultHasher},
    hint::black_box,
    sync::Arc,
    time::Duration,
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustkv::store::{Entry, Limits, PartitionState, Precondition, Put, Shared, scan::Scan};

const KEYS: u64 = 1_000_000;
const LIMIT: usize = 100;
const VALUE: &[u8] = br#"{"name":"Alice","age":30,"tags":["a","b"]}"#;

fn key(index: u64) -> String {
    format!("key{index:07}")
}

/// `partitions` partitions holding `KEYS` keys between them.
fn store(partitions: usize) -> Vec<PartitionState> {
    let limits = Limits {
        capacity: KEYS,
        max_memory: u64::MAX / 2,
        eviction: rustkv::config::Eviction::Lru,
    };
    let mut states: Vec<PartitionState> = (0..partitions)
        .map(|_| PartitionState::new(Arc::new(Shared::default()), limits, 0))
        .collect();
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    for index in 0..KEYS {
        let key = key(index);
        let partition = (hasher.hash_one(&key) % partitions as u64) as usize;
        let put = Put {
            entry: Entry::new(&key, VALUE),
            ttl: None,
            precondition: Precondition::default(),
        };
        states[partition].put(put, 0).unwrap();
    }
    states
}

/// The page after the key at `after` (the first page for `None`), within `prefix`.
fn page_at(prefix: &str, after: Option<u64>) -> Scan {
    Scan {
        prefix: prefix.as_bytes().to_vec(),
        after: after.map(|index| key(index).into_bytes()),
        limit: LIMIT,
        max_examined: 10_000,
        ..Scan::default()
    }
}

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan page of 100, 1M keys");
    group.throughput(Throughput::Elements(LIMIT as u64));
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for partitions in [2, 8] {
        let states = store(partitions);
        let shared: Vec<&Shared> = states.iter().map(|state| &**state.shared()).collect();
        for (name, prefix, after, first) in [
            ("first", "", None, 0),
            ("at 500k", "", Some(KEYS / 2 - 1), KEYS / 2),
            ("at 900k", "", Some(KEYS * 9 / 10 - 1), KEYS * 9 / 10),
            ("prefix key09 (at 900k)", "key09", None, KEYS * 9 / 10),
        ] {
            let scan = page_at(prefix, after);
            let page = scan.page(&shared, 0);
            assert_eq!(page.items.len(), LIMIT);
            assert_eq!(page.items[0].key(), key(first));
            assert_eq!(page.items[LIMIT - 1].key(), key(first + LIMIT as u64 - 1));
            group.bench_function(format!("{partitions} partitions, {name}"), |b| {
                b.iter(|| black_box(scan.page(black_box(&shared), 0)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);

//! Why reads bypass the partition actor: the lock-free read path against an actor
//! round trip for the same lookup.
//!
//! - `lock-free get`: `Store::get` on a started store (one partition on its own
//!   arbiter, 100k keys): clock read, keyed hash, skiplist lookup, read-buffer push.
//! - `actor round trip, same thread`: `addr.send(Lookup(key)).await` to a bench-only
//!   actor owning a `HashMap` copy of the same data, started on the current thread.
//! - `actor round trip, other thread`: the same, with the actor on its own
//!   `Arbiter`, which is where partition actors run with `placement = "arbiters"`.
//! - `HashMap get, no actor`: the actor's own lookup and value copy, called
//!   directly: subtract it from the round trips to see what the message costs.
//!
//! Keys are Zipf (s = 1.0), seeded, all present. One iteration is one lookup. The
//! actor variants must own their key (`Lookup(String)`) and copy the value out,
//! which a message to a real partition would also have to do; a `HashMap` lookup is
//! cheaper than the skiplist's, which favours the actor.
//!
//! What this does not measure: contention (one reader at a time), HTTP, or writes.
//! The store's read buffer is drained only by its 100 ms tick here, so most hits
//! after the first 4096 of each tick are dropped, as under overload.

use std::{
    collections::HashMap,
    hint::black_box,
    time::{Duration, Instant},
};

use actix::{Actor, Addr, Arbiter, Context, Handler, Message};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Zipf};
use rustkv::{
    config::{Placement, StoreConfig},
    store::{Entry, Precondition, Put, Store},
};

const KEYS: u64 = 100_000;
/// Distinct lookups cycled through by the timed loops.
const LOOKUPS: usize = 10_000;
const VALUE: &[u8] = br#"{"name":"Alice","age":30,"tags":["a","b"]}"#;

/// The bench's stand-in for a partition that would answer reads by message.
struct Lookups {
    map: HashMap<String, Vec<u8>>,
}

impl Actor for Lookups {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Option<Vec<u8>>")]
struct Lookup(String);

impl Handler<Lookup> for Lookups {
    type Result = Option<Vec<u8>>;

    fn handle(&mut self, lookup: Lookup, _: &mut Context<Self>) -> Self::Result {
        self.map.get(&lookup.0).cloned()
    }
}

fn key(id: u64) -> String {
    format!("key{id}")
}

fn zipf_keys() -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(42);
    let zipf = Zipf::new(KEYS, 1.0).expect("valid parameters");
    (0..LOOKUPS)
        .map(|_| key(zipf.sample(&mut rng) as u64 - 1))
        .collect()
}

/// One partition on its own arbiter, filled with `KEYS` keys through its actor.
async fn filled_store() -> Store {
    let config = StoreConfig {
        capacity: KEYS,
        partitions: 1,
        placement: Placement::Arbiters,
        ..StoreConfig::default()
    };
    let store = Store::start(&config, quanta::Clock::new());
    for id in 0..KEYS {
        let put = Put {
            entry: Entry::new(&key(id), VALUE),
            ttl: None,
            precondition: Precondition::default(),
        };
        store.put(put).await.expect("partition running");
    }
    store
}

fn lookups() -> Lookups {
    let map = (0..KEYS).map(|id| (key(id), VALUE.to_vec())).collect();
    Lookups { map }
}

/// Times `iters` round trips, cycling through `keys`.
async fn round_trips(addr: &Addr<Lookups>, keys: &[String], iters: u64) -> Duration {
    let started = Instant::now();
    for key in keys.iter().cycle().take(iters as usize) {
        let value = addr.send(Lookup(key.clone())).await.expect("actor running");
        black_box(value.expect("present"));
    }
    started.elapsed()
}

fn read_path(c: &mut Criterion) {
    // One System for the whole run: its thread runs the same-thread actor whenever
    // `block_on` awaits.
    let system = actix_rt::System::new();
    let store = system.block_on(filled_store());
    let keys = zipf_keys();
    assert!(keys.iter().all(|key| store.get(key).is_some()));
    let same_thread = system.block_on(async { lookups().start() });
    let arbiter = Arbiter::new();
    let map = lookups();
    let other_thread = Lookups::start_in_arbiter(&arbiter.handle(), move |_| map);

    let mut group = c.benchmark_group("read path");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lock-free get", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for key in keys.iter().cycle().take(iters as usize) {
                black_box(store.get(key).expect("present"));
            }
            started.elapsed()
        })
    });
    let map = lookups().map;
    group.bench_function("HashMap get, no actor", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for key in keys.iter().cycle().take(iters as usize) {
                black_box(map.get(black_box(key)).cloned().expect("present"));
            }
            started.elapsed()
        })
    });
    group.bench_function("actor round trip, same thread", |b| {
        b.iter_custom(|iters| system.block_on(round_trips(&same_thread, &keys, iters)))
    });
    group.bench_function("actor round trip, other thread", |b| {
        b.iter_custom(|iters| system.block_on(round_trips(&other_thread, &keys, iters)))
    });
    group.finish();

    store.stop();
    arbiter.stop();
}

criterion_group!(benches, read_path);
criterion_main!(benches);

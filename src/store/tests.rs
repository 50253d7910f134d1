//! Engine tests without HTTP: a partition against a naive model, targeted cases,
//! and the running `Store` on a mock clock.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use proptest::prelude::*;

use super::*;
use crate::config::{Eviction, StoreConfig};

const SPAN: u64 = 1 << 24; // the wheel's finest bucket; see the model's note on time

pub(super) fn state(capacity: u64, max_memory: u64) -> PartitionState {
    state_under(Eviction::Lru, capacity, max_memory)
}

pub(super) fn state_under(eviction: Eviction, capacity: u64, max_memory: u64) -> PartitionState {
    let limits = Limits {
        capacity,
        max_memory,
        eviction,
    };
    PartitionState::new(Arc::new(Shared::new(eviction)), limits, 0)
}

pub(super) fn put(key: &str, value: &str, ttl: Option<u64>) -> Put {
    Put {
        entry: Entry::for_ttl(key, value.as_bytes(), ttl),
        ttl,
        precondition: Precondition::default(),
    }
}

fn delete(key: &str) -> Delete {
    Delete {
        key: key.into(),
        precondition: Precondition::default(),
    }
}

fn read(state: &PartitionState, key: &str, now: u64) -> Option<String> {
    let entry = state.shared().get(key, now)?;
    Some(String::from_utf8(entry.value().to_vec()).unwrap())
}

// ---- model-based test ----

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        value: u16,
        ttl_spans: Option<u64>,
    },
    PutIfAbsent {
        key: u8,
        value: u16,
    },
    Get {
        key: u8,
    },
    Delete {
        key: u8,
    },
    Advance {
        spans: u64,
    },
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..12u8, any::<u16>(), prop::option::of(1..200u64))
            .prop_map(|(key, value, ttl_spans)| Op::Put { key, value, ttl_spans }),
        1 => (0..12u8, any::<u16>()).prop_map(|(key, value)| Op::PutIfAbsent { key, value }),
        4 => (0..12u8).prop_map(|key| Op::Get { key }),
        1 => (0..12u8).prop_map(|key| Op::Delete { key }),
        2 => prop_oneof![0..100u64, Just(1 << 12), Just(1 << 18)].prop_map(|spans| Op::Advance { spans }),
        1 => Just(Op::Tick),
    ]
}

/// The obvious implementation: a map plus a recency queue, with O(n) everything.
#[derive(Default)]
struct Model {
    entries: HashMap<String, (String, u64, Option<u64>)>, // value, version, deadline
    recency: VecDeque<String>,                            // front = most recent
    version: u64,
}

impl Model {
    fn live(&self, key: &str, now: u64) -> Option<&(String, u64, Option<u64>)> {
        self.entries
            .get(key)
            .filter(|(_, _, deadline)| deadline.is_none_or(|d| now < d))
    }

    fn touch(&mut self, key: &str) {
        self.recency.retain(|k| k != key);
        self.recency.push_front(key.to_owned());
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
        self.recency.retain(|k| k != key);
    }

    fn expire(&mut self, now: u64) {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, (_, _, deadline))| deadline.is_some_and(|d| now >= d))
            .map(|(key, _)| key.clone())
            .collect();
        expired.iter().for_each(|key| self.remove(key));
    }

    fn get(&mut self, key: &str, now: u64) -> Option<String> {
        let value = self.live(key, now)?.0.clone();
        self.touch(key);
        Some(value)
    }

    fn put(
        &mut self,
        key: &str,
        value: String,
        deadline: Option<u64>,
        capacity: usize,
    ) -> (bool, u64) {
        let created = !self.entries.contains_key(key);
        if created && self.entries.len() == capacity {
            let victim = self.recency.pop_back().unwrap();
            self.entries.remove(&victim);
        }
        self.version += 1;
        self.entries
            .insert(key.to_owned(), (value, self.version, deadline));
        self.touch(key);
        (created, self.version)
    }
}

fn run_model(capacity: u64, ops: Vec<Op>) {
    let mut real = state(capacity, u64::MAX / 2);
    let mut model = Model::default();
    // Time moves in whole spans of the wheel's finest bucket, so "expired" means the
    // same thing to the model (deadline <= now) and to the wheel (bucket passed).
    let mut now = 0u64;
    for op in ops {
        match op {
            Op::Put {
                key,
                value,
                ttl_spans,
            } => {
                let key = format!("k{key}");
                let value = value.to_string();
                let ttl = ttl_spans.map(|spans| spans * SPAN);
                model.expire(now);
                let expected =
                    model.put(&key, value.clone(), ttl.map(|t| now + t), capacity as usize);
                let written = real.put(put(&key, &value, ttl), now).unwrap();
                assert_eq!((written.created, written.version), expected, "put {key}");
            }
            Op::PutIfAbsent { key, value } => {
                let key = format!("k{key}");
                let value = value.to_string();
                model.expire(now);
                let mut request = put(&key, &value, None);
                request.precondition.if_none_match = Some(Tags::Any);
                let result = real.put(request, now);
                match model.live(&key, now).map(|entry| entry.1) {
                    Some(current) => assert_eq!(
                        result,
                        Err(PreconditionFailed {
                            current: Some(current)
                        })
                    ),
                    None => {
                        let expected = model.put(&key, value, None, capacity as usize);
                        let written = result.unwrap();
                        assert_eq!((written.created, written.version), expected);
                    }
                }
            }
            Op::Get { key } => {
                let key = format!("k{key}");
                assert_eq!(
                    read(&real, &key, now),
                    model.get(&key, now),
                    "get {key} at {now}"
                );
            }
            Op::Delete { key } => {
                let key = format!("k{key}");
                model.expire(now);
                let expected = model.live(&key, now).map(|entry| entry.1);
                model.remove(&key);
                assert_eq!(
                    real.delete(&delete(&key), now).unwrap(),
                    expected,
                    "delete {key}"
                );
            }
            Op::Advance { spans } => now += spans * SPAN,
            Op::Tick => {
                model.expire(now);
                real.tick(now);
                assert_eq!(
                    real.keys_by_recency(),
                    model.recency.iter().cloned().collect::<Vec<_>>()
                );
            }
        }
        real.validate();
        assert!(real.len() as u64 <= capacity);
    }
}

/// W-TinyLFU chooses its victims by frequency, so the model cannot predict them:
/// it learns after each step which keys the partition dropped, and checks that
/// nothing was dropped while there was room, that what is held has the value and
/// version last written, and every answer against that.
fn run_tinylfu_model(capacity: u64, ops: Vec<Op>) {
    let mut real = state_under(Eviction::Tinylfu, capacity, u64::MAX / 2);
    let mut model = Model::default();
    let mut now = 0u64;
    for op in ops {
        // Expired keys stay in the model until the partition reclaims them.
        match op {
            Op::Put {
                key,
                value,
                ttl_spans,
            } => {
                let (key, value) = (format!("k{key}"), value.to_string());
                let ttl = ttl_spans.map(|spans| spans * SPAN);
                let created = model.live(&key, now).is_none();
                model.version += 1;
                let deadline = ttl.map(|t| now + t);
                model
                    .entries
                    .insert(key.clone(), (value.clone(), model.version, deadline));
                let written = real.put(put(&key, &value, ttl), now).unwrap();
                assert_eq!(
                    (written.created, written.version),
                    (created, model.version),
                    "put {key}"
                );
            }
            Op::PutIfAbsent { key, value } => {
                let (key, value) = (format!("k{key}"), value.to_string());
                let mut request = put(&key, &value, None);
                request.precondition.if_none_match = Some(Tags::Any);
                let result = real.put(request, now);
                match model.live(&key, now).map(|entry| entry.1) {
                    Some(current) => assert_eq!(
                        result,
                        Err(PreconditionFailed {
                            current: Some(current)
                        })
                    ),
                    None => {
                        model.version += 1;
                        model.entries.insert(key, (value, model.version, None));
                        assert_eq!(result.unwrap().version, model.version);
                    }
                }
            }
            Op::Get { key } => {
                let key = format!("k{key}");
                let expected = model.live(&key, now).map(|entry| entry.0.clone());
                assert_eq!(read(&real, &key, now), expected, "get {key} at {now}");
            }
            Op::Delete { key } => {
                let key = format!("k{key}");
                let expected = model.live(&key, now).map(|entry| entry.1);
                model.remove(&key);
                assert_eq!(
                    real.delete(&delete(&key), now).unwrap(),
                    expected,
                    "delete {key}"
                );
            }
            Op::Advance { spans } => now += spans * SPAN,
            Op::Tick => real.tick(now),
        }
        real.validate();
        assert!(real.len() as u64 <= capacity);
        // Learn what was dropped; with room for every live key, nothing may be.
        let live = model
            .entries
            .keys()
            .filter(|key| model.live(key, now).is_some())
            .count();
        let held: Vec<String> = model.entries.keys().cloned().collect();
        for key in held {
            match real.shared().peek(key.as_bytes()) {
                Some(entry) => {
                    let (value, version, _) = &model.entries[&key];
                    assert_eq!(entry.value(), value.as_bytes(), "{key} holds another value");
                    assert_eq!(entry.version(), *version, "{key} holds another version");
                }
                None if model.live(&key, now).is_some() => {
                    assert!(live as u64 > capacity, "{key} dropped while there was room");
                    model.remove(&key);
                }
                None => model.remove(&key),
            }
        }
        assert_eq!(
            real.len(),
            model.entries.len(),
            "the partition holds a key nobody wrote"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn partition_matches_naive_model(capacity in 1..8u64, ops in prop::collection::vec(op(), 1..200)) {
        run_model(capacity, ops);
    }

    #[test]
    fn tinylfu_partition_keeps_the_model_invariants(capacity in 1..8u64, ops in prop::collection::vec(op(), 1..200)) {
        run_tinylfu_model(capacity, ops);
    }
}

// ---- targeted cases ----

#[test]
fn hits_refresh_recency_and_misses_do_not() {
    let mut state = state(2, u64::MAX / 2);
    state.put(put("a", "1", None), 0).unwrap();
    state.put(put("b", "2", None), 0).unwrap();
    assert_eq!(read(&state, "a", 0).as_deref(), Some("1"));
    assert_eq!(read(&state, "zzz", 0), None);
    state.put(put("c", "3", None), 0).unwrap();
    assert_eq!(read(&state, "b", 0), None, "b was least recently used");
    assert_eq!(state.keys_by_recency(), ["c", "a"]);
    assert_eq!(state.stats().evictions_capacity, 1);
}

#[test]
fn expired_entries_go_before_live_ones() {
    let mut state = state(2, u64::MAX / 2);
    state.put(put("live", "1", None), 0).unwrap();
    state.put(put("short", "2", Some(50_000_000)), 0).unwrap(); // 50 ms, most recent
    state.put(put("new", "3", None), 100_000_000).unwrap();
    assert_eq!(read(&state, "live", 100_000_000).as_deref(), Some("1"));
    assert_eq!(read(&state, "short", 100_000_000), None);
    let stats = state.stats();
    assert_eq!((stats.expirations, stats.evictions_capacity), (1, 0));
}

#[test]
fn memory_limit_evicts_lru_until_the_new_entry_fits() {
    let one = entry::charge(1, 10);
    let mut state = state(100, one * 3);
    for key in ["a", "b", "c"] {
        state.put(put(key, "0123456789", None), 0).unwrap();
    }
    // Twice the size of one entry's value: evicts a and b.
    let big = "x".repeat(10 + 10 + entry::ENTRY_OVERHEAD as usize);
    state.put(put("d", &big, None), 0).unwrap();
    assert_eq!(state.keys_by_recency(), ["d", "c"]);
    assert_eq!(state.stats().evictions_memory, 2);
    state.validate();
}

/// Regression test: a replace that grows past `max_memory` counted an expired LRU
/// victim (one the wheel had not reached yet) as a memory eviction.
#[test]
fn memory_eviction_during_a_replace_counts_expired_victims_as_expirations() {
    let one = entry::charge(1, 10);
    let mut state = state(100, one * 2 + 5);
    // Deadline 1 ns: expired from t = 1, but the wheel's first bucket ends at SPAN.
    state.put(put("a", "0123456789", Some(1)), 0).unwrap();
    state.put(put("b", "0123456789", None), 0).unwrap();
    state.put(put("c", "0123456789", None), 1).unwrap(); // evicts expired a: room
    state.put(put("d", "0123456789", Some(1)), 1).unwrap(); // evicts b: memory
    let stats = state.stats();
    assert_eq!((stats.expirations, stats.evictions_memory), (1, 1));

    // Now at t = 2, d has expired unreached and is the LRU tail. Growing c's value
    // by 10 bytes pushes the partition over max_memory, and d is the one to go.
    state
        .put(put("c", "01234567890123456789", None), 2)
        .unwrap();
    assert_eq!(state.keys_by_recency(), ["c"]);
    let stats = state.stats();
    assert_eq!((stats.expirations, stats.evictions_memory), (2, 1));
    state.validate();
}

#[test]
fn versions_never_repeat_for_a_key_even_after_delete() {
    let mut state = state(10, u64::MAX / 2);
    let first = state.put(put("k", "1", None), 0).unwrap().version;
    state.delete(&delete("k"), 0).unwrap();
    let second = state.put(put("k", "1", None), 0).unwrap();
    assert!(second.created);
    assert!(second.version > first);
}

#[test]
fn ttl_reads_miss_at_the_deadline_and_wheel_reclaims_within_a_tick() {
    let mut state = state(10, u64::MAX / 2);
    state.put(put("k", "1", Some(1_000_000_000)), 0).unwrap();
    assert!(read(&state, "k", 999_999_999).is_some());
    assert!(
        read(&state, "k", 1_000_000_000).is_none(),
        "lazy expiry on read"
    );
    state.tick(1_000_000_000 + 100_000_000 + SPAN);
    assert!(
        state.is_empty(),
        "active expiry within a tick plus the finest span"
    );
    assert_eq!(state.stats().expirations, 1);
    assert_eq!(state.stats().expired_reads, 1);
}

#[test]
fn overwrite_resets_or_clears_the_ttl() {
    let mut state = state(10, u64::MAX / 2);
    state.put(put("k", "1", Some(10 * SPAN)), 0).unwrap();
    state.put(put("k", "2", None), 5 * SPAN).unwrap();
    state.tick(100 * SPAN);
    assert_eq!(read(&state, "k", 100 * SPAN).as_deref(), Some("2"));
    state
        .put(put("k", "3", Some(10 * SPAN)), 100 * SPAN)
        .unwrap();
    assert!(read(&state, "k", 109 * SPAN).is_some());
    assert!(read(&state, "k", 110 * SPAN).is_none());
    state.validate();
}

#[test]
fn preconditions_are_checked_against_the_live_version() {
    let mut state = state(10, u64::MAX / 2);
    let v1 = state.put(put("k", "1", None), 0).unwrap().version;
    let mut stale = put("k", "2", None);
    stale.precondition.if_match = Some(Tags::Versions(vec![v1 + 100]));
    assert_eq!(
        state.put(stale, 0),
        Err(PreconditionFailed { current: Some(v1) })
    );
    let mut fresh = put("k", "2", None);
    fresh.precondition.if_match = Some(Tags::Versions(vec![v1]));
    assert!(!state.put(fresh, 0).unwrap().created);
    let mut guarded = delete("k");
    guarded.precondition.if_match = Some(Tags::Versions(vec![v1]));
    assert!(state.delete(&guarded, 0).is_err());
    assert_eq!(read(&state, "k", 0).as_deref(), Some("2"));
}

#[test]
fn limits_split_to_exact_totals() {
    let config = StoreConfig {
        capacity: 1001,
        max_memory: bytesize::ByteSize::b(10_007),
        ..StoreConfig::default()
    };
    let parts = split_limits(&config, 4);
    assert_eq!(parts.iter().map(|p| p.capacity).sum::<u64>(), 1001);
    assert_eq!(parts.iter().map(|p| p.max_memory).sum::<u64>(), 10_007);
    assert!(parts.iter().all(|p| p.capacity >= 250 && p.capacity <= 251));
}

#[test]
fn partition_index_stays_in_range() {
    for count in [1, 2, 3, 7, 64] {
        for hash in [0, 1, u64::MAX / 3, u64::MAX - 1, u64::MAX] {
            assert!(partition_index(hash, count) < count);
        }
    }
    assert_eq!(partition_index(u64::MAX, 4), 3);
    assert_eq!(partition_index(0, 4), 0);
}

// ---- the running store, on a mock clock ----

#[test]
fn store_routes_reads_and_writes_through_partitions() {
    let system = actix::System::new();
    system.block_on(async {
        let (clock, mock) = quanta::Clock::mock();
        let config = StoreConfig {
            capacity: 4096,
            partitions: 4,
            placement: crate::config::Placement::Arbiters,
            ..StoreConfig::default()
        };
        let store = Store::start(&config, clock);
        assert_eq!(store.partition_count(), 4);
        for index in 0..100 {
            let written = store
                .put(put(&format!("k{index}"), "1", Some(1_000_000_000)))
                .await
                .unwrap();
            assert!(written.created);
        }
        assert!((0..100).all(|index| store.get(&format!("k{index}")).is_some()));
        assert_eq!(
            store.delete(delete("k0")).await.unwrap().map(|v| v > 0),
            Some(true)
        );
        assert_eq!(store.delete(delete("k0")).await.unwrap(), None);
        let stats = store.stats();
        assert_eq!(stats.total.keys, 99);
        assert_eq!(stats.total.capacity, 4096);
        assert!(
            stats.partitions.iter().all(|p| p.keys > 0),
            "keys spread over partitions"
        );
        mock.increment(Duration::from_secs(1));
        assert!(store.get("k1").is_none(), "expired on the mock clock");
        store.stop();
    });
}

#[test]
fn partitions_without_a_running_actor_are_reported_until_adopted() {
    let system = actix::System::new();
    system.block_on(async {
        let config = StoreConfig {
            capacity: 4096,
            partitions: 3,
            placement: crate::config::Placement::Workers,
            ..StoreConfig::default()
        };
        let store = Store::start(&config, quanta::Clock::new());
        // No worker thread has attached: nothing can take writes yet.
        assert_eq!(store.unavailable_partitions(), vec![0, 1, 2]);
        store.attach_worker_thread(1);
        assert_eq!(store.unavailable_partitions(), Vec::<usize>::new());
        assert!(store.put(put("k", "1", None)).await.unwrap().created);
    });
}

/// A replica's stream waits behind a transaction holding the partition (so a
/// read-only one reads one state); a replayed transaction applies on every
/// partition it touches and lets them go (the HTTP test checks it lands whole).
#[test]
fn replays_wait_for_a_held_partition() {
    let system = actix::System::new();
    system.block_on(async {
        let config = StoreConfig {
            capacity: 4096,
            partitions: 2,
            placement: crate::config::Placement::Arbiters,
            ..StoreConfig::default()
        };
        let store = Store::start(&config, quanta::Clock::new());
        let replica_put = |key: &str, version| Replica::Put {
            entry: Entry::new(key, b"1"),
            version,
            deadline: NO_DEADLINE,
        };
        let partition = store.inner.router.partition_of(b"a");
        let held = store.hold(vec![partition], 7).await.unwrap();
        let addr = &held[&partition];
        let replay = Replay {
            changes: vec![replica_put("a", 1)],
            txn: None,
        };
        let reply = addr.send(replay).await.unwrap();
        assert!(
            matches!(reply, messages::Reply::Later(_)),
            "queued behind the hold"
        );
        assert!(store.get("a").is_none(), "not applied while held");
        group::release(&held, 7);
        reply.get().await.expect("applied once released");
        assert!(store.get("a").is_some());

        // Keys on both partitions, so the transaction has two parts.
        let keys: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
        let changes = keys.iter().map(|key| replica_put(key, 5)).collect();
        store.apply_txn(changes).await.unwrap();
        assert!(keys.iter().all(|key| store.get(key).is_some()));
        let reply = addr.send(Replay {
            changes: vec![replica_put("a", 9)],
            txn: None,
        });
        assert!(
            matches!(reply.await.unwrap(), messages::Reply::Now(_)),
            "released"
        );
        store.stop();
    });
}

// ---- W-TinyLFU ----

/// Hot keys read many times, then a scan of 1,000 one-off keys (10x what the
/// partition holds; read-through: a miss, then a put): how many hot keys survive.
fn hot_keys_left_after_a_scan(eviction: Eviction, capacity: u64, max_memory: u64) -> usize {
    let mut state = state_under(eviction, capacity, max_memory);
    let hot: Vec<String> = (0..capacity / 2).map(|i| format!("hot{i:04}")).collect();
    for round in 0..5 {
        for key in &hot {
            if read(&state, key, 0).is_none() {
                state.put(put(key, "0123456789", None), 0).unwrap();
            }
        }
        if round == 0 {
            state.tick(0);
        }
    }
    state.tick(0);
    for i in 0..1_000 {
        let key = format!("scan{i:05}");
        assert_eq!(read(&state, &key, 0), None);
        state.put(put(&key, "0123456789", None), 0).unwrap();
        if i % 100 == 0 {
            state.validate();
        }
    }
    hot.iter()
        .filter(|key| read(&state, key, 0).is_some())
        .count()
}

#[test]
fn tinylfu_keeps_frequent_keys_through_a_scan_that_flushes_lru() {
    let charge = entry::charge(11, 10); // "hot0000" + value; the scan keys are a byte longer
    for (capacity, max_memory) in [(100, u64::MAX / 2), (10_000, 100 * charge)] {
        let hot = (capacity.min(100) / 2) as usize;
        assert_eq!(
            hot_keys_left_after_a_scan(Eviction::Lru, capacity, max_memory),
            0
        );
        let kept = hot_keys_left_after_a_scan(Eviction::Tinylfu, capacity, max_memory);
        assert!(
            kept >= hot * 9 / 10,
            "{kept} of {hot} kept (capacity {capacity})"
        );
    }
}

/// A key readers keep asking for is admitted once it is put: misses count.
#[test]
fn tinylfu_counts_misses_toward_admission() {
    let mut state = state_under(Eviction::Tinylfu, 10, u64::MAX / 2);
    for i in 0..10 {
        state.put(put(&format!("k{i}"), "v", None), 0).unwrap();
    }
    for _ in 0..5 {
        assert_eq!(read(&state, "wanted", 0), None);
    }
    state.put(put("wanted", "v", None), 0).unwrap(); // enters the window
    state.put(put("next", "v", None), 0).unwrap(); // pushes it out: a candidate
    assert!(read(&state, "wanted", 0).is_some(), "the candidate lost");
    assert_eq!(state.len(), 10);
    assert_eq!(state.stats().evictions_capacity, 2);
    state.validate();
}

/// A restart loads entries without frequencies: with less room than before, the
/// least recent go, as under LRU, instead of the newcomers losing every duel.
#[test]
fn tinylfu_loading_evicts_the_least_recent() {
    let mut state = state_under(Eviction::Tinylfu, 3, u64::MAX / 2);
    for (version, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        state.restore(Entry::new(key, b"v"), version as u64 + 1, entry::NEVER, 0);
    }
    let mut held: Vec<String> = state.keys_by_recency();
    held.sort();
    assert_eq!(held, ["c", "d", "e"]);
    state.validate();
}

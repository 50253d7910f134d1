//! Engine tests without HTTP: a partition against a naive model, targeted cases,
//! and the running `Store` on a mock clock.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use proptest::prelude::*;

use super::*;
use crate::config::StoreConfig;

const SPAN: u64 = 1 << 24; // the wheel's finest bucket; see the model's note on time

pub(super) fn state(capacity: u64, max_memory: u64) -> PartitionState {
    let limits = Limits {
        capacity,
        max_memory,
    };
    PartitionState::new(Arc::new(Shared::default()), limits, 0)
}

pub(super) fn put(key: &str, value: &str, ttl: Option<u64>) -> Put {
    Put {
        entry: Entry::new(key, value.as_bytes()),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn partition_matches_naive_model(capacity in 1..8u64, ops in prop::collection::vec(op(), 1..200)) {
        run_model(capacity, ops);
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

//! The journal against a replay: whatever a partition did, including a snapshot
//! walked in steps between its writes, replaying what it handed its journal (the
//! last finished snapshot, then the changes since that snapshot began) rebuilds
//! exactly its live entries, values and versions. This is what a restart relies on.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::config::Eviction;

use proptest::prelude::*;

use super::{
    journal::{Change, Item, Journal, Outbox, WriteHealth},
    tests::{put, state, state_under},
    *,
};

const SPAN: u64 = 1 << 24;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        value: u16,
        ttl: Option<u64>,
    },
    Delete {
        key: u8,
    },
    Get {
        key: u8,
    },
    Advance {
        spans: u64,
    },
    Tick,
    SnapshotStart,
    SnapshotStep {
        budget: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..10u8, any::<u16>(), prop::option::of(1..50u64))
            .prop_map(|(key, value, ttl)| Op::Put { key, value, ttl }),
        2 => (0..10u8).prop_map(|key| Op::Delete { key }),
        4 => (0..10u8).prop_map(|key| Op::Get { key }),
        1 => (0..20u64).prop_map(|spans| Op::Advance { spans }),
        1 => Just(Op::Tick),
        1 => Just(Op::SnapshotStart),
        3 => (1..4usize).prop_map(|budget| Op::SnapshotStep { budget }),
    ]
}

/// What the disk holds, built from the journal's items as the log writer would.
#[derive(Default)]
struct Disk {
    snapshot: Vec<Entry>,
    log: Vec<Change>,
    /// A snapshot under way, and the changes since it began.
    pending: Option<(Vec<Entry>, Vec<Change>)>,
}

impl Disk {
    fn take(&mut self, item: Item) {
        match item {
            Item::Change(_, change) => {
                if let Some((_, since)) = &mut self.pending {
                    since.push(change.clone());
                }
                self.log.push(change);
            }
            Item::SnapshotStart => self.pending = Some((Vec::new(), Vec::new())),
            Item::SnapshotChunk(entries) => {
                self.pending.as_mut().expect("started").0.extend(entries)
            }
            Item::SnapshotEnd => {
                let (snapshot, since) = self.pending.take().expect("started");
                self.snapshot = snapshot;
                self.log = since;
            }
        }
    }

    /// A fresh partition loaded from the disk at `now`, as recovery does.
    fn replay(&self, eviction: Eviction, now: u64) -> PartitionState {
        let mut loaded = state_under(eviction, 1_000, u64::MAX / 2);
        let puts = self.snapshot.iter().map(|entry| (entry, true));
        // These tests run no transactions: their markers never appear.
        let changes = self.log.iter().filter_map(|change| match change {
            Change::Put(entry) => Some((entry, true)),
            Change::Remove(entry, _) => Some((entry, false)),
            Change::TxnBegin { .. } | Change::TxnCommit { .. } | Change::TxnFloor { .. } => None,
        });
        for (entry, present) in puts.chain(changes) {
            match entry.deadline() {
                Some(deadline) if deadline <= now => loaded.forget(entry.key_bytes()),
                _ if !present => loaded.forget(entry.key_bytes()),
                deadline => {
                    let copy = Entry::new(entry.key(), entry.value());
                    let deadline = deadline.unwrap_or(u64::MAX);
                    loaded.restore(copy, entry.version(), deadline, now);
                }
            }
        }
        loaded
    }
}

/// Live keys with their value and version.
fn contents(state: &PartitionState, now: u64) -> BTreeMap<String, (Vec<u8>, u64)> {
    state
        .entries_oldest_first()
        .filter(|entry| !entry.is_expired(now))
        .map(|entry| {
            let found = (entry.value().to_vec(), entry.version());
            (entry.key().to_owned(), found)
        })
        .collect()
}

fn run(eviction: Eviction, capacity: u64, ops: Vec<Op>) {
    let outbox = Arc::new(Outbox::new(Arc::new(WriteHealth::default()), 0));
    let mut real = state_under(eviction, capacity, u64::MAX / 2);
    real.attach_journal(Journal::new(Arc::clone(&outbox)));
    let mut now = 0;
    for op in ops {
        match op {
            Op::Put { key, value, ttl } => {
                let ttl = ttl.map(|spans| spans * SPAN);
                let request = put(&format!("k{key}"), &value.to_string(), ttl);
                real.put(request, now).unwrap();
            }
            Op::Delete { key } => {
                let delete = Delete {
                    key: format!("k{key}").into(),
                    precondition: Precondition::default(),
                };
                real.delete(&delete, now).unwrap();
            }
            Op::Get { key } => {
                real.shared().get(&format!("k{key}"), now);
            }
            Op::Advance { spans } => now += spans * SPAN,
            Op::Tick => real.tick(now),
            Op::SnapshotStart => {
                real.start_snapshot();
            }
            Op::SnapshotStep { budget } => {
                real.snapshot_step(budget);
            }
        }
        real.commit();
        real.validate();
    }
    let mut disk = Disk::default();
    let mut items = Vec::new();
    outbox.take(&mut items, Duration::ZERO);
    items.into_iter().for_each(|item| disk.take(item));
    assert_eq!(
        contents(&disk.replay(eviction, now), now),
        contents(&real, now)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn replaying_the_journal_rebuilds_the_partition(
        capacity in 3..8u64,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(Eviction::Lru, capacity, ops);
    }

    /// The same under W-TinyLFU, whose entries also move between regions (lists)
    /// while a walk is under way.
    #[test]
    fn replaying_the_journal_rebuilds_a_tinylfu_partition(
        capacity in 3..8u64,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(Eviction::Tinylfu, capacity, ops);
    }
}

/// A walk whose cursor entry is touched, replaced or removed between steps keeps
/// its place (the cursor moves on first), so no entry is left out.
#[test]
fn a_snapshot_walk_survives_its_cursor_moving() {
    let ops = vec![
        Op::Put {
            key: 1,
            value: 1,
            ttl: None,
        },
        Op::Put {
            key: 2,
            value: 2,
            ttl: None,
        },
        Op::Put {
            key: 3,
            value: 3,
            ttl: None,
        },
        Op::SnapshotStart,
        Op::SnapshotStep { budget: 1 },
        // The cursor is on k2 now: touch it, then remove it, between steps.
        Op::Get { key: 2 },
        Op::Tick,
        Op::Delete { key: 2 },
        Op::SnapshotStep { budget: 1 },
        Op::SnapshotStep { budget: 3 },
    ];
    run(Eviction::Lru, 10, ops);
}

/// Regression (found by the proptest above): a read of the entry under the cursor,
/// when that entry was already the most recent, moved the cursor past the end and
/// left the entry out of the snapshot.
#[test]
fn touching_the_most_recent_entry_under_the_cursor_keeps_it_in_the_snapshot() {
    let put = |key| Op::Put {
        key,
        value: 0,
        ttl: None,
    };
    let ops = vec![
        put(1),
        put(0),
        put(4),
        put(3),
        Op::SnapshotStart,
        Op::SnapshotStep { budget: 3 },
        Op::Get { key: 3 },
        put(0),
        put(4),
        Op::SnapshotStep { budget: 1 },
    ];
    run(Eviction::Lru, 4, ops);
}

/// Versions jump to the store's version floor (a new epoch) at the next write.
#[test]
fn versions_follow_the_version_floor() {
    let health = Arc::new(WriteHealth::default());
    let outbox = Arc::new(Outbox::new(Arc::clone(&health), 0));
    let mut real = state(10, u64::MAX / 2);
    real.attach_journal(Journal::new(outbox));
    assert_eq!(real.put(put("a", "1", None), 0).unwrap().version, 1);
    health
        .version_floor
        .store(5 << 40, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(real.put(put("a", "2", None), 0).unwrap().version, 5 << 40);
    assert_eq!(
        real.put(put("b", "3", None), 0).unwrap().version,
        (5 << 40) + 1
    );
}

/// A snapshot replaces the logs holding this partition's transaction parts, and
/// the new log's floor is all that says those transactions were whole. One closed
/// behind an older, still open one is not below the floor: its part must not
/// vanish into a snapshot yet, or recovery would drop its other parts as those of
/// an unfinished transaction (the crash test's "part of a transaction").
#[test]
fn a_snapshot_waits_until_the_floor_passes_every_transaction_with_a_part_here() {
    let health = Arc::new(WriteHealth::default());
    let outbox = Arc::new(Outbox::new(Arc::clone(&health), 0));
    let mut real = state_under(Eviction::Lru, 10, u64::MAX / 2);
    real.attach_journal(Journal::new(outbox));
    let older = health.txns.open(); // still waiting for its partitions
    let newer = health.txns.open();
    let from = real.open_part(newer, 2);
    real.put(put("k", "1", None), 0).unwrap();
    real.close_part(newer, from);
    real.commit();
    health.txns.close(newer); // every part written
    assert!(
        !real.start_snapshot(),
        "floor {} <= {newer}",
        health.txns.floor()
    );
    health.txns.close(older);
    assert!(real.start_snapshot());
}

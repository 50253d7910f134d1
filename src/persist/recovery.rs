//! Start-up: replaying each partition's snapshot and logs into fresh partitions.
//!
//! A partition replays its snapshot (entries least recently used first, so loading
//! them in order restores the LRU order approximately), then its logs in order:
//! puts with their own version and absolute expiry, removals. An entry whose expiry
//! passed while the process was down is not loaded (and removes any older copy).
//! Loading goes through the partition's usual rules, so if `capacity` or
//! `max_memory` shrank since, the least recently used entries are evicted.
//!
//! With the partition count unchanged, each old partition's files load into the
//! same partition, all partitions in parallel. With a new count, every record is
//! routed by its key, as a write would be.
//!
//! A transaction has one part in the log of each partition it wrote. Before the
//! replay, a survey of the logs finds which transactions came through whole
//! (every part complete, or below a `TxnFloor` some log recorded); the replay
//! applies only their parts, so a transaction comes back whole or not at all.

use std::{collections::HashMap, path::Path};

use crate::store::{Entry, PartitionState, Router, StoreClock};

use super::{
    dir::{DataDir, PartitionFiles},
    record::{FileKind, Record},
    segment::{self, SegmentError},
};

/// NEVER, the store's "no deadline".
const NO_DEADLINE: u64 = u64::MAX;

/// What replaying found.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    pub records: u64,
    pub bytes: u64,
    /// Of `bytes`, those in logs (not snapshots): what compaction measures.
    pub log_bytes: u64,
    /// Entries not loaded because they expired while the process was down.
    pub expired: u64,
    /// Bytes cut off torn tails.
    pub truncated: u64,
    /// The highest change number seen (a partition's logs continue after it).
    pub last_seq: u64,
    /// Logs that held no record (a start with no write before the next): dropped
    /// from the manifest rather than kept until the next compaction.
    pub empty_logs: Vec<String>,
    /// Transaction parts not applied because another part of theirs is missing.
    pub txn_parts_dropped: u64,
    /// The highest transaction id seen (new ids must be above it).
    pub top_txn: u64,
}

impl Replayed {
    pub fn add(&mut self, other: &Replayed) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.log_bytes += other.log_bytes;
        self.expired += other.expired;
        self.truncated += other.truncated;
        self.last_seq = self.last_seq.max(other.last_seq);
        self.empty_logs.extend_from_slice(&other.empty_logs);
        self.txn_parts_dropped += other.txn_parts_dropped;
        self.top_txn = self.top_txn.max(other.top_txn);
    }
}

/// Which transactions came through whole, from a survey of every log.
#[derive(Debug, Default)]
struct Verdicts {
    /// Every transaction below it was whole when some log began.
    floor: u64,
    /// Per transaction: its number of parts, and the complete parts found.
    parts: HashMap<u64, (u32, u32)>,
    top: u64,
    /// Torn tails the survey cut off, by old partition.
    truncated: Vec<u64>,
}

impl Verdicts {
    fn whole(&self, id: u64) -> bool {
        id < self.floor || self.parts.get(&id).is_some_and(|(want, got)| got >= want)
    }

    /// Reads every log (snapshots hold no transaction records) for its
    /// transaction parts and floors. Damage is left for the replay to report.
    fn survey(dir: &DataDir, files: &[PartitionFiles]) -> Verdicts {
        let mut verdicts = Verdicts {
            truncated: vec![0; files.len()],
            ..Verdicts::default()
        };
        for (index, partition) in files.iter().enumerate() {
            for name in &partition.logs {
                let mut open: Option<(u64, u32)> = None;
                let mut found = |record: Record<'_>| match record {
                    Record::TxnBegin { id, parts } => {
                        verdicts.top = verdicts.top.max(id);
                        open = Some((id, parts));
                    }
                    Record::TxnCommit { id, .. } => {
                        if let Some((begun, parts)) = open.take().filter(|(begun, _)| *begun == id)
                        {
                            verdicts.parts.entry(begun).or_insert((parts, 0)).1 += 1;
                        }
                    }
                    Record::TxnFloor { id } => verdicts.floor = verdicts.floor.max(id),
                    Record::Put { .. }
                    | Record::Remove { .. }
                    | Record::Synced { .. }
                    | Record::Ping { .. } => {}
                };
                let read = segment::read(&dir.file(name), FileKind::Log, false, |_, r| found(r));
                if let Ok(summary) = read {
                    verdicts.truncated[index] += summary.torn.map_or(0, |damage| damage.dropped);
                }
            }
        }
        verdicts.top = verdicts.top.max(verdicts.floor);
        verdicts
    }
}

/// Loads every partition's files into `states`. Answers per-state totals.
pub fn replay(
    dir: &DataDir,
    files: &[PartitionFiles],
    states: &mut [PartitionState],
    router: &Router,
    clock: &StoreClock,
    truncate_corrupt: bool,
) -> Result<Vec<Replayed>, SegmentError> {
    let now = clock.now();
    let verdicts = Verdicts::survey(dir, files);
    let verdicts = &verdicts;
    if files.len() != states.len() {
        let mut totals = vec![Replayed::default(); states.len()];
        for partition in files {
            let mut loaded = Replayed::default();
            replay_partition(
                dir,
                partition,
                truncate_corrupt,
                verdicts,
                &mut loaded,
                |record, loaded| {
                    let key = record_key(&record);
                    let target = key.map_or(0, |key| router.partition_of(key));
                    apply(&mut states[target], record, clock, now, loaded);
                },
            )?;
            // Numbers restart in a new layout: keep only the totals.
            loaded.last_seq = 0;
            totals[0].add(&loaded);
        }
        totals[0].truncated += verdicts.truncated.iter().sum::<u64>();
        totals[0].top_txn = verdicts.top;
        return Ok(totals);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = states
            .iter_mut()
            .zip(files)
            .enumerate()
            .map(|(index, (state, partition))| {
                scope.spawn(move || {
                    let mut loaded = Replayed {
                        truncated: verdicts.truncated[index],
                        top_txn: verdicts.top,
                        ..Replayed::default()
                    };
                    replay_partition(
                        dir,
                        partition,
                        truncate_corrupt,
                        verdicts,
                        &mut loaded,
                        |record, loaded| apply(state, record, clock, now, loaded),
                    )
                    .map(|()| loaded)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("replay does not panic"))
            .collect()
    })
}

fn record_key<'a>(record: &Record<'a>) -> Option<&'a [u8]> {
    match record {
        Record::Put { key, .. } | Record::Remove { key, .. } => Some(key),
        Record::TxnBegin { .. }
        | Record::TxnCommit { .. }
        | Record::Synced { .. }
        | Record::Ping { .. }
        | Record::TxnFloor { .. } => None,
    }
}

/// Replays one old partition's snapshot, then its logs, through `each`.
fn replay_partition(
    dir: &DataDir,
    files: &PartitionFiles,
    truncate_corrupt: bool,
    verdicts: &Verdicts,
    loaded: &mut Replayed,
    mut each: impl FnMut(Record<'_>, &mut Replayed),
) -> Result<(), SegmentError> {
    let snapshot = files.snapshot.iter().map(|name| (name, FileKind::Snapshot));
    let logs = files.logs.iter().map(|name| (name, FileKind::Log));
    for (name, kind) in snapshot.chain(logs) {
        let path = dir.file(name);
        let records = read_file(&path, kind, truncate_corrupt, verdicts, loaded, &mut each)?;
        if kind == FileKind::Log && records == 0 {
            loaded.empty_logs.push(name.clone());
        }
    }
    Ok(())
}

fn read_file(
    path: &Path,
    kind: FileKind,
    truncate_corrupt: bool,
    verdicts: &Verdicts,
    loaded: &mut Replayed,
    each: &mut impl FnMut(Record<'_>, &mut Replayed),
) -> Result<u64, SegmentError> {
    let mut last_seq = 0;
    let mut counted = Replayed::default();
    let mut transaction = Transaction::default();
    let summary = segment::read(path, kind, truncate_corrupt, |seq, record| {
        last_seq = seq;
        counted.records += 1;
        if let Some((id, ready)) = transaction.hold(record) {
            if verdicts.whole(id) {
                for record in ready {
                    each(record.as_record(), &mut counted);
                }
            } else {
                log::warn!("transaction {id}: a part is missing from another log: not applied");
                counted.txn_parts_dropped += 1;
            }
        } else if !transaction.open() {
            each(record, &mut counted);
        }
    })?;
    if transaction.open() {
        log::warn!(
            "{}: a transaction without its commit at the end: not applied",
            path.display()
        );
    }
    counted.bytes = summary.bytes;
    if kind == FileKind::Log {
        counted.log_bytes = summary.bytes;
    }
    counted.truncated += summary.torn.map_or(0, |damage| damage.dropped);
    // An empty file still says where numbering stood when it was made.
    let before_first = summary
        .header
        .map_or(0, |header| header.first_seq.saturating_sub(1));
    counted.last_seq = last_seq.max(before_first);
    loaded.add(&counted);
    Ok(summary.records)
}

/// Records of a transaction are held back until its commit: a transaction whose
/// commit never reached the log is not applied at all.
#[derive(Default)]
struct Transaction {
    id: Option<u64>,
    held: Vec<Owned>,
}

impl Transaction {
    fn open(&self) -> bool {
        self.id.is_some()
    }

    /// Takes `record` if it belongs to a transaction; answers the transaction's
    /// id and records when `record` commits it.
    fn hold(&mut self, record: Record<'_>) -> Option<(u64, Vec<Owned>)> {
        match record {
            Record::TxnBegin { id, .. } => {
                self.id = Some(id);
                self.held.clear();
                None
            }
            Record::TxnCommit { id, .. } if self.id == Some(id) => {
                self.id = None;
                Some((id, std::mem::take(&mut self.held)))
            }
            Record::TxnCommit { .. }
            | Record::Synced { .. }
            | Record::Ping { .. }
            | Record::TxnFloor { .. } => None,
            other if self.open() => {
                self.held.push(Owned::from(other));
                None
            }
            _ => None,
        }
    }
}

/// A record copied out of the read buffer.
enum Owned {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        version: u64,
        expires_at: Option<u64>,
    },
    Remove {
        key: Vec<u8>,
        cause: super::record::Cause,
    },
}

impl From<Record<'_>> for Owned {
    fn from(record: Record<'_>) -> Owned {
        match record {
            Record::Put {
                key,
                value,
                version,
                expires_at,
            } => Owned::Put {
                key: key.to_vec(),
                value: value.to_vec(),
                version,
                expires_at,
            },
            Record::Remove { key, cause } => Owned::Remove {
                key: key.to_vec(),
                cause,
            },
            Record::TxnBegin { .. }
            | Record::TxnCommit { .. }
            | Record::Synced { .. }
            | Record::Ping { .. }
            | Record::TxnFloor { .. } => unreachable!("held only data"),
        }
    }
}

impl Owned {
    fn as_record(&self) -> Record<'_> {
        match self {
            Owned::Put {
                key,
                value,
                version,
                expires_at,
            } => Record::Put {
                key,
                value,
                version: *version,
                expires_at: *expires_at,
            },
            Owned::Remove { key, cause } => Record::Remove { key, cause: *cause },
        }
    }
}

/// Applies one record to `state` at store time `now`.
fn apply(
    state: &mut PartitionState,
    record: Record<'_>,
    clock: &StoreClock,
    now: u64,
    loaded: &mut Replayed,
) {
    match record {
        Record::Put {
            key,
            value,
            version,
            expires_at,
        } => {
            let deadline = match expires_at.map(|wall| clock.from_wall(wall)) {
                None => NO_DEADLINE,
                Some(Some(at)) if at > now => at,
                Some(_) => {
                    loaded.expired += 1;
                    state.forget(key);
                    return;
                }
            };
            // Keys were `str`s when written; a record that passed its checksum and
            // is not UTF-8 was written by something else.
            let Ok(key) = std::str::from_utf8(key) else {
                log::warn!("skipping a record whose key is not UTF-8");
                return;
            };
            let ttl = (deadline != NO_DEADLINE).then_some(deadline);
            state.restore(Entry::for_ttl(key, value, ttl), version, deadline, now);
        }
        Record::Remove { key, .. } => state.forget(key),
        // Stream-only kinds never belong in a file: nothing to replay.
        Record::TxnBegin { .. }
        | Record::TxnCommit { .. }
        | Record::Synced { .. }
        | Record::Ping { .. }
        | Record::TxnFloor { .. } => {}
    }
}

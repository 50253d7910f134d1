//! The log writer: one thread per partition that turns its outbox into files.
//!
//! The partition's actor never touches a file (it runs on an HTTP worker thread).
//! This thread takes everything queued since its last round, encodes it, writes it
//! with one `write(2)`, syncs it under `fsync = "always"`, and only then publishes
//! the progress that lets the waiting writes answer. Writes that arrive while it
//! writes or syncs queue up and share the next round: group commit.
//!
//! It also writes snapshots: on `SnapshotStart` it closes the current log (synced)
//! and opens a new one, which the manifest lists at once, so whatever happens next
//! the records are replayed; on `SnapshotEnd` the finished snapshot and the new log
//! replace everything before, in one manifest write.
//!
//! A failed write or sync faults the log: the writes it held are answered 503, the
//! node refuses writes, and the file is never written or synced again (after a failed
//! `fsync` the kernel may have dropped the dirty pages: retrying it can report
//! success for data that is gone). Every `retry_interval` the writer asks its
//! partition for a snapshot; one that completes starts a fresh log from memory and
//! heals the node.

use std::{
    fs::File,
    io::Write,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use crate::{
    config::Fsync,
    store::{
        Shared, StoreClock,
        journal::{Cause as StoreCause, Change, Item, Outbox},
    },
};

mod snapshot;

use super::{
    SyncHook,
    aof::EPOCH_SHIFT,
    layout::Layout,
    record::{self, Cause, Record},
};

/// Bytes encoded before they are written, while a round or a snapshot chunk runs.
const FLUSH_BYTES: usize = 1 << 20;

/// An open file this writer appends to.
pub struct Open {
    pub file: File,
    pub name: String,
    pub bytes: u64,
}

/// Everything one partition's writer owns.
pub struct Writer {
    pub index: usize,
    pub outbox: Arc<Outbox>,
    pub shared: Arc<Shared>,
    pub layout: Arc<Layout>,
    pub clock: StoreClock,
    pub fsync: Fsync,
    pub sync: SyncHook,
    pub rewrite_percentage: u64,
    pub rewrite_min_size: u64,
    pub retry_interval: Duration,
    /// The log being appended to (`None` while faulted).
    pub log: Option<Open>,
    /// Log bytes since the last snapshot, all segments (the compaction measure).
    pub log_bytes: u64,
    /// The next change number, for a new file's header.
    pub next_seq: u64,
}

/// How one round went.
struct Round {
    buf: Vec<u8>,
    last_seq: Option<u64>,
    /// The first change of the round not yet counted as written.
    first_seq: Option<u64>,
    /// The highest version the round's records carry.
    top_version: u64,
}

impl Writer {
    /// Runs until the outbox is closed and drained; the final round is synced.
    pub fn run(mut self) {
        // Whatever ends this thread, even a panic, writes waiting on it are told.
        let _stopped = Stopped(Arc::clone(&self.outbox));
        let mut items = Vec::new();
        let mut state = Runtime {
            snapshot: None,
            fault: None,
            last_sync: Instant::now(),
            dirty: false,
            retry_at: None,
            lost_after: None,
        };
        loop {
            let alive = self.outbox.take(&mut items, self.wait(&state));
            self.round(&mut items, &mut state);
            self.housekeeping(&mut state, !alive);
            if !alive {
                break;
            }
        }
    }

    fn wait(&self, state: &Runtime) -> Duration {
        match (self.fsync, state.fault.is_some()) {
            (_, true) => self.retry_interval.min(Duration::from_millis(100)),
            (Fsync::Everysec, _) => Duration::from_millis(200),
            _ => Duration::from_secs(1),
        }
    }

    /// Writes what was queued and publishes how far it got.
    fn round(&mut self, items: &mut Vec<Item>, state: &mut Runtime) {
        let mut round = Round {
            buf: Vec::new(),
            last_seq: None,
            first_seq: None,
            top_version: 0,
        };
        for item in items.drain(..) {
            match item {
                Item::Change(seq, change) => self.encode(seq, &change, &mut round),
                Item::SnapshotStart => self.start_snapshot(&mut round, state),
                Item::SnapshotChunk(entries) => {
                    self.snapshot_chunk(&entries, state);
                    self.outbox.chunk_done();
                }
                Item::SnapshotEnd => self.finish_snapshot(&mut round, state),
            }
        }
        self.flush(&mut round, state);
        if self.fsync == Fsync::Always && state.dirty {
            self.sync_log(state);
        }
        self.settle(&mut round, state);
        self.renew_epoch(round.top_version);
    }

    /// Moves every partition to a new epoch once any has used half of the current
    /// one's 2^40 versions, so none can ever run into the next epoch's range (a
    /// restart's, whose versions must be new). Stored before it is used.
    fn renew_epoch(&self, top_version: u64) {
        let epoch = self.layout.epoch();
        if !runs_low(top_version, epoch) {
            return;
        }
        match self.layout.next_epoch(epoch) {
            Ok(next) => {
                let floor = next << EPOCH_SHIFT;
                self.outbox.health.version_floor.fetch_max(floor, Relaxed);
                log::info!("partition {}: versions move on to epoch {next}", self.index);
            }
            Err(error) => {
                log::warn!("cannot store a new epoch (retried on the next write): {error}")
            }
        }
    }

    fn encode(&mut self, seq: u64, change: &Change, round: &mut Round) {
        round.first_seq.get_or_insert(seq);
        round.last_seq = Some(seq);
        self.next_seq = seq + 1;
        if let Change::Put(entry) = change {
            round.top_version = round.top_version.max(entry.version());
        }
        record::encode(&change_record(change, &self.clock), &mut round.buf);
    }

    /// Writes the round's encoded records to the log (`write(2)`), or drops them
    /// into the lost range while faulted.
    fn flush(&mut self, round: &mut Round, state: &mut Runtime) {
        if round.buf.is_empty() {
            return;
        }
        let Some(log) = &mut self.log else {
            round.buf.clear();
            return;
        };
        match log.file.write_all(&round.buf) {
            Ok(()) => {
                let written = round.buf.len() as u64;
                log.bytes += written;
                self.log_bytes += written;
                self.outbox.health.counters.add_bytes(written);
                state.dirty = true;
                round.buf.clear();
            }
            Err(error) => {
                let reason = format!("cannot write {}: {error}", log.name);
                round.buf.clear();
                self.fault(reason, state);
            }
        }
    }

    fn sync_log(&mut self, state: &mut Runtime) {
        let Some(log) = &self.log else {
            return;
        };
        let started = Instant::now();
        match (self.sync)(&log.file) {
            Ok(()) => {
                self.outbox.health.counters.add_sync(started.elapsed());
                state.dirty = false;
                state.last_sync = Instant::now();
            }
            Err(error) => {
                let reason = format!("cannot sync {}: {error}", log.name);
                self.fault(reason, state);
            }
        }
    }

    /// Publishes the outcome of the changes since the last settle: safe, or lost
    /// to a fault (with every change lost since the fault began).
    fn settle(&mut self, round: &mut Round, state: &mut Runtime) {
        let (Some(first), Some(last)) = (round.first_seq.take(), round.last_seq.take()) else {
            return;
        };
        if state.fault.is_some() {
            let after = *state.lost_after.get_or_insert(first - 1);
            self.outbox
                .publish(|progress| progress.lost = (after, last));
        } else {
            self.outbox.publish(|progress| progress.acked = last);
        }
    }

    /// Faults the log: it is dropped and never written or synced again.
    fn fault(&mut self, reason: String, state: &mut Runtime) {
        if let Some(snapshot) = state.snapshot.take() {
            let _ = std::fs::remove_file(self.layout.dir.file(&snapshot.open.name));
        }
        self.log = None;
        state.dirty = false;
        if state.fault.is_none() {
            log::error!(
                "partition {}: {reason}; refusing writes until a fresh log can be written",
                self.index
            );
            self.outbox.health.fault(reason.clone());
        } else {
            log::warn!("partition {}: retry failed: {reason}", self.index);
            self.outbox.health.still_faulted(reason.clone());
        }
        state.fault = Some(reason);
        state.retry_at = Some(Instant::now() + self.retry_interval);
    }

    /// After a round: everysec syncs, the final sync, compaction and retries.
    fn housekeeping(&mut self, state: &mut Runtime, last: bool) {
        let due = state.last_sync.elapsed() >= Duration::from_secs(1);
        if state.dirty && (last || (self.fsync == Fsync::Everysec && due)) {
            self.sync_log(state);
        }
        self.outbox.log_bytes.store(self.log_bytes, Relaxed);
        if state.snapshot.is_some() {
            return;
        }
        if state.fault.is_some() {
            if state.retry_at.is_some_and(|at| Instant::now() >= at) {
                state.retry_at = Some(Instant::now() + self.retry_interval);
                self.outbox.request_snapshot();
            }
            return;
        }
        let live = self.shared.counters.memory.load(Relaxed);
        let threshold =
            (live.saturating_mul(self.rewrite_percentage) / 100).max(self.rewrite_min_size);
        if self.log_bytes > threshold {
            self.outbox.request_snapshot();
        }
    }
}

/// Publishes that the writer stopped when dropped.
struct Stopped(Arc<Outbox>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.publish(|progress| progress.stopped = true);
    }
}

/// What changes between rounds.
struct Runtime {
    snapshot: Option<snapshot::Snapshot>,
    /// Why the log is faulted, if it is.
    fault: Option<String>,
    last_sync: Instant,
    /// Written since the last sync.
    dirty: bool,
    retry_at: Option<Instant>,
    /// The last change safe before the current fault: the lost range starts after it.
    lost_after: Option<u64>,
}

/// The record of a change: the same in a log and in the replication stream.
pub fn change_record<'a>(change: &'a Change, clock: &StoreClock) -> Record<'a> {
    match change {
        Change::Put(entry) => put_record(entry, clock),
        Change::Remove(entry, cause) => Record::Remove {
            key: entry.key_bytes(),
            cause: match cause {
                StoreCause::Deleted => Cause::Deleted,
                StoreCause::Evicted => Cause::Evicted,
                StoreCause::Expired => Cause::Expired,
            },
        },
        &Change::TxnBegin { id, parts } => Record::TxnBegin { id, parts },
        &Change::TxnCommit { id, records } => Record::TxnCommit { id, records },
        &Change::TxnFloor { id } => Record::TxnFloor { id },
    }
}

/// The record of a stored entry: the same in a log, a snapshot written by the
/// writer, and one written at start-up. Its deadline becomes absolute wall time.
pub fn put_record<'a>(entry: &'a crate::store::Entry, clock: &StoreClock) -> Record<'a> {
    Record::Put {
        key: entry.key_bytes(),
        value: entry.value(),
        version: entry.version(),
        expires_at: entry.deadline().map(|at| clock.to_wall(at)),
    }
}

/// Whether `version` has used half of `epoch`'s range of versions.
fn runs_low(version: u64, epoch: u64) -> bool {
    version >= (epoch << EPOCH_SHIFT) + (1 << (EPOCH_SHIFT - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_runs_low_at_half_its_range() {
        let half = 1u64 << (EPOCH_SHIFT - 1);
        assert!(!runs_low((3 << EPOCH_SHIFT) + half - 1, 3));
        assert!(runs_low((3 << EPOCH_SHIFT) + half, 3));
        // A version of an older epoch (loaded at start-up) is not this epoch's.
        assert!(!runs_low((2 << EPOCH_SHIFT) + half * 2 - 1, 3));
    }
}

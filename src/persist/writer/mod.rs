//! The log writer: one thread per partition that turns its outbox into files.
//!
//! The partition's actor never touches a file (it runs on an HTTP worker thread).
//! This thread takes everything queued since its last round, encodes it, writes it
//! with one `write(2)`, syncs it under `fsync = "always"`, and only then publishes
//! the progress that lets the waiting writes answer. Writes that arrive while it
//! writes or syncs queue up and share the next round: group commit. Under
//! `everysec` the sync runs about once a second on a short-lived thread of its own,
//! so that writes go on being written and answered while the disk catches up.
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
            syncing: None,
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

    /// Syncs the log here and now (after any sync under way elsewhere, whose
    /// failure faults the log instead: a second sync of that file could report
    /// success for pages the first one lost).
    fn sync_log(&mut self, state: &mut Runtime) {
        self.settle_sync(state, true);
        let Some(log) = &self.log else {
            return;
        };
        match counted_sync(&self.sync, &log.file, &self.outbox) {
            Ok(()) => {
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
        // A sync still running on the dropped log says nothing more that matters.
        state.syncing = None;
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

    /// Starts an everysec sync on a thread of its own, so that this thread goes
    /// on writing (and writes go on being answered) while it runs, as Redis's
    /// everysec syncs run on a background thread. Falls back to syncing here.
    fn sync_in_background(&mut self, state: &mut Runtime) {
        let Some(log) = &self.log else {
            return;
        };
        let Ok(file) = log.file.try_clone() else {
            return self.sync_log(state);
        };
        let (sync, outbox) = (Arc::clone(&self.sync), Arc::clone(&self.outbox));
        let spawned = std::thread::Builder::new()
            .name(format!("rustkv-sync-{}", self.index))
            .spawn(move || counted_sync(&sync, &file, &outbox));
        match spawned {
            Ok(thread) => {
                let name = log.name.clone();
                state.syncing = Some(Syncing { thread, name });
                state.dirty = false;
                state.last_sync = Instant::now();
            }
            Err(_) => self.sync_log(state),
        }
    }

    /// Takes the outcome of the background sync once it is done (or waits for it):
    /// a failed one faults the log.
    fn settle_sync(&mut self, state: &mut Runtime, wait: bool) {
        let Some(syncing) = state
            .syncing
            .take_if(|syncing| wait || syncing.thread.is_finished())
        else {
            return;
        };
        let synced = syncing
            .thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
        if let Err(error) = synced {
            let reason = format!("cannot sync {}: {error}", syncing.name);
            self.fault(reason, state);
        }
    }

    /// After a round: everysec syncs, the final sync, compaction and retries.
    fn housekeeping(&mut self, state: &mut Runtime, last: bool) {
        self.settle_sync(state, last);
        let due = state.last_sync.elapsed() >= Duration::from_secs(1);
        if state.dirty && last {
            self.sync_log(state);
        } else if state.dirty && self.fsync == Fsync::Everysec && due && state.syncing.is_none() {
            self.sync_in_background(state);
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

/// Syncs `file` through the hook; a sync that succeeds is counted, with its time.
fn counted_sync(sync: &SyncHook, file: &File, outbox: &Outbox) -> std::io::Result<()> {
    let started = Instant::now();
    sync(file)?;
    outbox.health.counters.add_sync(started.elapsed());
    Ok(())
}

/// A sync of the log running on a thread of its own.
struct Syncing {
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    /// The log it syncs, for the fault's reason.
    name: String,
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
    /// Written since the last sync (or the start of the one under way).
    dirty: bool,
    /// An everysec sync running on its own thread.
    syncing: Option<Syncing>,
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

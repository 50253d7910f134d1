//! What a partition tells its log, and how a write learns that its record is safe.
//!
//! The store knows nothing of files. A partition with persistence on holds a
//! `Journal`: at the end of every message its actor hands the changes it made
//! (`Item`s) to the journal's `Outbox`, one lock per message, and the write carries
//! a `Durable` ticket for the last of them. Whoever consumes the outbox (the
//! `persist` log writer, on its own thread) writes the items out and publishes its
//! `Progress`; a single write's answer is held until the ticket is settled (see
//! `partition::Settled`), other messages' callers await their tickets. So a write is
//! visible to readers as soon as the actor applies it, and acknowledged only once
//! its record is written (and synced, under `fsync = "always"`).
//!
//! Every change is an item, including evictions and expirations, so a restart never
//! brings back a key that left. A snapshot travels the same queue (`SnapshotStart`,
//! chunks of live entries, `SnapshotEnd`), so it stays in order with the changes.

use std::sync::{
    Arc, Condvar, Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
};

use tokio::sync::watch;

pub use super::durable::Durable;
use super::entry::Entry;

/// Why a key left the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Deleted,
    Evicted,
    Expired,
}

/// One change to a partition, in the order the actor made it.
#[derive(Clone, Debug)]
pub enum Change {
    /// The entry as published: key, value, version and deadline.
    Put(Entry),
    /// The entry that left, and why.
    Remove(Entry, Cause),
    /// The changes up to the matching `TxnCommit` are this partition's part of
    /// transaction `id`, one of `parts` (see `TxnLedger`).
    TxnBegin { id: u64, parts: u32 },
    /// Ends this partition's part of transaction `id`, `records` changes long.
    TxnCommit { id: u64, records: u32 },
    /// Every transaction below `id` has all its parts in the logs (a new log
    /// starts with it, so the fact outlives the logs a snapshot replaces).
    TxnFloor { id: u64 },
}

/// The store's transactions as the logs need them: unique ids, and which ones
/// may still have a part not yet written.
///
/// A transaction writes one part per partition, each in its own log. After a
/// crash, recovery applies a part only when every part made it (or when the
/// transaction is below a floor some log recorded): so a transaction comes back
/// whole or not at all. Ids start from the wall clock at start-up, so they keep
/// growing across restarts.
#[derive(Debug, Default)]
pub struct TxnLedger {
    next: AtomicU64,
    /// Transactions whose parts are not all written yet.
    open: Mutex<std::collections::BTreeSet<u64>>,
}

impl TxnLedger {
    /// Ids from now on are above `floor`.
    pub fn raise(&self, floor: u64) {
        self.next.fetch_max(floor, Relaxed);
    }

    /// A new transaction's id, open until `close`.
    pub fn open(&self) -> u64 {
        let mut open = self.open.lock().expect("not poisoned");
        let id = self.next.fetch_add(1, Relaxed) + 1;
        open.insert(id);
        id
    }

    /// Transaction `id` has all its parts written (or gave up).
    pub fn close(&self, id: u64) {
        self.open.lock().expect("not poisoned").remove(&id);
    }

    /// Every transaction below this id is closed.
    pub fn floor(&self) -> u64 {
        let open = self.open.lock().expect("not poisoned");
        let next = self.next.load(Relaxed) + 1;
        open.first().copied().unwrap_or(next)
    }
}

/// What the log writer is asked to do, in order.
#[derive(Debug)]
pub enum Item {
    /// A change, numbered by the outbox (`seq`).
    Change(u64, Change),
    /// Starts a new log: changes after this go to it, and the chunks that follow
    /// make a snapshot of the partition as it was here.
    SnapshotStart,
    /// Live entries, least recently used first. Only entries unchanged since
    /// `SnapshotStart` (the others are in the new log).
    SnapshotChunk(Vec<Entry>),
    /// The snapshot is complete: it and the new log replace everything before.
    SnapshotEnd,
}

/// How far the log writer has come, in change numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every change up to here is safe (written, or synced under `always`), except
    /// those in `lost`.
    pub acked: u64,
    /// The changes the last disk fault lost: after `lost.0`, up to `lost.1`. Only
    /// the last fault is kept: a waiter is woken by a fault long before the log
    /// heals and faults again.
    pub lost: (u64, u64),
    /// The writer has stopped: what it has not acked, it never will.
    pub stopped: bool,
}

impl Progress {
    /// Whether change `seq` is settled, and if so whether it is safe.
    pub fn outcome(&self, seq: u64) -> Option<bool> {
        if seq > self.lost.0 && seq <= self.lost.1 {
            Some(false)
        } else if seq <= self.acked {
            Some(true)
        } else {
            self.stopped.then_some(false)
        }
    }
}

/// Why a write was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether the node accepts writes: shared by every partition's journal. A log that
/// failed to write or sync refuses writes store-wide until it is healthy again.
#[derive(Debug, Default)]
pub struct WriteHealth {
    faulted: AtomicUsize,
    reason: Mutex<String>,
    /// Versions handed out from now on are at least this (the current epoch's
    /// base, see `persist::aof::EPOCH_SHIFT`); raised when an epoch runs low.
    pub version_floor: AtomicU64,
    /// What the logs did, for `/metrics`.
    pub counters: LogCounters,
    /// Transaction ids, and which transactions may not be whole in the logs yet.
    pub txns: TxnLedger,
    /// Where the epoch is kept on disk, once the logs are open. Weak: the log
    /// writers own the directory (and its lock), and release it when they stop.
    pub epochs: std::sync::OnceLock<std::sync::Weak<dyn Epochs>>,
}

/// The epoch kept with the data: a restart's versions start in the epoch above it.
pub trait Epochs: Send + Sync + std::fmt::Debug {
    /// Raises the kept epoch to at least `epoch`, durably.
    fn raise_to(&self, epoch: u64) -> std::io::Result<()>;
}

/// Upper bounds of the sync-latency buckets, in seconds: 50 µs to about 1.6 s.
pub const SYNC_BUCKETS: [f64; 16] = {
    let mut bounds = [0.0; 16];
    let mut i = 0;
    let mut bound = 0.000_05;
    while i < 16 {
        bounds[i] = bound;
        bound *= 2.0;
        i += 1;
    }
    bounds
};

/// Counters of the logs' work since start-up (all partitions).
#[derive(Debug, Default)]
pub struct LogCounters {
    pub bytes_written: AtomicU64,
    pub syncs: AtomicU64,
    /// Time spent in `fdatasync`, in nanoseconds.
    pub sync_nanos: AtomicU64,
    /// Syncs by duration: bucket `i` counts those of at most `SYNC_BUCKETS[i]`
    /// seconds (and above the previous bound); the last counts the rest.
    pub sync_histogram: [AtomicU64; SYNC_BUCKETS.len() + 1],
    /// Snapshots completed (each replaces a partition's log).
    pub rewrites: AtomicU64,
    /// Times a log failed to write or sync and writes were refused.
    pub faults: AtomicU64,
    /// How long the start-up recovery took, in nanoseconds.
    pub recovery_nanos: AtomicU64,
    /// Records replayed at start-up.
    pub records_loaded: AtomicU64,
    /// Entries not loaded at start-up because they had expired meanwhile.
    pub records_expired: AtomicU64,
    /// Bytes cut off damaged file tails at start-up.
    pub bytes_truncated: AtomicU64,
}

impl LogCounters {
    pub fn add_bytes(&self, bytes: u64) {
        self.bytes_written.fetch_add(bytes, Relaxed);
    }

    pub fn add_sync(&self, took: std::time::Duration) {
        self.syncs.fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sync_nanos.fetch_add(nanos, Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = SYNC_BUCKETS.iter().position(|&bound| seconds <= bound);
        self.sync_histogram[bucket.unwrap_or(SYNC_BUCKETS.len())].fetch_add(1, Relaxed);
    }

    pub fn add_rewrite(&self) {
        self.rewrites.fetch_add(1, Relaxed);
    }
}

impl WriteHealth {
    /// Why writes are refused, if they are.
    pub fn refusal(&self) -> Option<String> {
        if self.faulted.load(Relaxed) == 0 {
            return None;
        }
        Some(self.reason.lock().expect("not poisoned").clone())
    }

    /// A log became faulted (`reason` says how); counted in `counters.faults`.
    pub fn fault(&self, reason: String) {
        *self.reason.lock().expect("not poisoned") = reason;
        self.faulted.fetch_add(1, Relaxed);
        self.counters.faults.fetch_add(1, Relaxed);
    }

    /// A faulted log failed again (a retry): the reason shown is the latest.
    pub fn still_faulted(&self, reason: String) {
        *self.reason.lock().expect("not poisoned") = reason;
    }

    /// A faulted log is healthy again.
    pub fn heal(&self) {
        self.faulted.fetch_sub(1, Relaxed);
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Item>,
    /// The number of the last change queued.
    seq: u64,
    /// No more items will come: the writer finishes what is queued and stops.
    closed: bool,
}

/// The queue between one partition's actor and its log writer.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the writer when the queue stops being empty.
    ready: Condvar,
    progress: watch::Sender<Progress>,
    /// Set by the writer when the partition should snapshot (its log has grown, or
    /// a fault needs a fresh start); the actor starts one at its next tick.
    wants_snapshot: AtomicBool,
    /// Snapshot chunks queued and not yet written: the actor waits for zero before
    /// it walks further, so a slow disk never holds many entries alive.
    chunks_queued: AtomicUsize,
    /// Bytes of live log since the last snapshot, for the compaction decision.
    pub log_bytes: AtomicU64,
    pub health: Arc<WriteHealth>,
}

impl Outbox {
    pub fn new(health: Arc<WriteHealth>, first_seq: u64) -> Self {
        let progress = Progress {
            acked: first_seq,
            lost: (0, 0),
            stopped: false,
        };
        Self {
            queue: Mutex::new(Queue {
                seq: first_seq,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            progress: watch::channel(progress).0,
            wants_snapshot: AtomicBool::new(false),
            chunks_queued: AtomicUsize::new(0),
            log_bytes: AtomicU64::new(0),
            health,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().expect("not poisoned")
    }

    /// Queues `items` (changes numbered here); answers the last change's number,
    /// and whether the queue was empty (the writer may be asleep: see `wake`).
    fn push(&self, items: impl Iterator<Item = Pending>) -> (u64, bool) {
        let mut queue = self.lock();
        let was_empty = queue.items.is_empty();
        for pending in items {
            let item = match pending {
                Pending::Change(change) => {
                    queue.seq += 1;
                    Item::Change(queue.seq, change)
                }
                Pending::Control(item) => item,
            };
            if matches!(item, Item::SnapshotChunk(_)) {
                self.chunks_queued.fetch_add(1, Relaxed);
            }
            queue.items.push(item);
        }
        (queue.seq, was_empty)
    }

    /// Wakes the writer if it waits. Separate from `push` so that the actor can
    /// wake it once for all the writes of an event-loop pass (a wake is a futex
    /// call, and a writer woken per write writes one record per `write(2)`).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// The writer's side: waits up to `timeout` for items and moves them into
    /// `into`. Answers false once the outbox is closed and drained.
    pub fn take(&self, into: &mut Vec<Item>, timeout: std::time::Duration) -> bool {
        let mut queue = self.lock();
        if queue.items.is_empty() && !queue.closed {
            queue = self
                .ready
                .wait_timeout(queue, timeout)
                .expect("not poisoned")
                .0;
        }
        std::mem::swap(&mut queue.items, into);
        !(queue.closed && into.is_empty())
    }

    /// No more items: the writer drains the queue and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// The writer wrote one snapshot chunk.
    pub fn chunk_done(&self) {
        self.chunks_queued.fetch_sub(1, Relaxed);
    }

    pub fn chunks_queued(&self) -> usize {
        self.chunks_queued.load(Relaxed)
    }

    pub fn request_snapshot(&self) {
        self.wants_snapshot.store(true, Relaxed);
    }

    /// Whether a snapshot was asked for since the last call.
    pub fn snapshot_requested(&self) -> bool {
        self.wants_snapshot.swap(false, Relaxed)
    }

    /// Publishes the writer's progress, waking every write waiting on it.
    pub fn publish(&self, update: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(update);
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// A receiver that sees every change of the progress.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// An item the actor has made but not yet handed over.
#[derive(Debug)]
enum Pending {
    Change(Change),
    Control(Item),
}

/// A partition's side of its log: collects the items of one message, then hands
/// them over in one go.
#[derive(Debug)]
pub struct Journal {
    outbox: Arc<Outbox>,
    pending: Vec<Pending>,
    /// The queue went from empty to not since the writer was last woken.
    wake_due: bool,
}

impl Journal {
    pub fn new(outbox: Arc<Outbox>) -> Self {
        Self {
            outbox,
            pending: Vec::new(),
            wake_due: false,
        }
    }

    /// Whether the writer must be woken for what was committed (once).
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake_due)
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn record(&mut self, change: Change) {
        self.pending.push(Pending::Change(change));
    }

    /// Changes recorded in this message so far.
    pub fn changes_pending(&self) -> usize {
        let changes = self.pending.iter();
        changes
            .filter(|pending| matches!(pending, Pending::Change(_)))
            .count()
    }

    pub fn control(&mut self, item: Item) {
        self.pending.push(Pending::Control(item));
    }

    /// Hands over what this message changed. The ticket covers all of it (and
    /// everything before), or is `None` if nothing changed. The writer is not
    /// woken here: see `take_wake`.
    pub fn commit(&mut self) -> Option<Durable> {
        if self.pending.is_empty() {
            return None;
        }
        let changed = self
            .pending
            .iter()
            .any(|pending| matches!(pending, Pending::Change(_)));
        let (seq, was_empty) = self.outbox.push(self.pending.drain(..));
        self.wake_due |= was_empty;
        changed.then(|| Durable::new(seq, Arc::clone(&self.outbox)))
    }
}

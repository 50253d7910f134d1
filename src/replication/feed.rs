//! The feed: a node's backlog, filled by its partitions (a primary) or by its
//! follower (a replica), and read by the streams serving its replicas.
//!
//! A primary's partitions record changes through `Tap`, each right after
//! applying it, under the backlog's lock: the lock numbers the change, so the
//! node-wide order is the order changes were recorded. A replica's follower
//! appends the records it applied, at its primary's positions, so the two
//! histories share positions and a promoted replica's other replicas resume from
//! it (PSYNC2).
//!
//! A transaction's parts are kept aside as their partitions record them, and
//! appended as one run (`TxnBegin`, its changes, `TxnCommit`) once every part is
//! applied, before its partitions are released: a replica applies the run as a
//! whole, and no later change of the transaction's keys can precede it.
//!
//! Streams wait for new records on a `Notify`. A partition wakes it only when a
//! stream said it waits (`waiting`), so a busy primary pays an atomic swap per
//! change, not a wake-up.

use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use tokio::sync::Notify;

use super::backlog::{Backlog, Gone, Position};
use crate::{
    persist::{
        change_record,
        record::{self, Record},
    },
    store::{StoreClock, Tap, journal::Change},
};

#[derive(Debug)]
pub struct Feed {
    /// Partitions record their changes: on once a primary serves (or may serve)
    /// replicas, off on a replica, whose follower records instead.
    tapping: AtomicBool,
    backlog: Mutex<Backlog>,
    /// Turns deadlines into the absolute times records carry.
    clock: StoreClock,
    /// Transactions' changes recorded by their partitions, by transaction id,
    /// until `txn_done` appends them in one run.
    parts: Mutex<HashMap<u64, Pending>>,
    /// A stream waits for records past the head.
    waiting: AtomicBool,
    arrived: Notify,
}

impl Feed {
    pub fn new(clock: StoreClock, limit: usize) -> Self {
        Self {
            tapping: AtomicBool::new(false),
            backlog: Mutex::new(Backlog::new(limit, Position::default())),
            clock,
            parts: Mutex::new(HashMap::new()),
            waiting: AtomicBool::new(false),
            arrived: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Backlog> {
        self.backlog.lock().expect("not poisoned")
    }

    pub fn head(&self) -> Position {
        self.lock().head()
    }

    pub fn tapping(&self) -> bool {
        self.tapping.load(SeqCst)
    }

    pub fn set_tapping(&self, on: bool) {
        self.tapping.store(on, SeqCst);
    }

    /// Appends records a follower applied (whole frames), at the next positions.
    pub fn append(&self, frames: &[u8], records: u64) {
        if records > 0 {
            self.lock().append(frames, records);
            self.wake();
        }
    }

    /// Starts the history over at `head` (a full copy ended there).
    pub fn reset(&self, head: Position) {
        self.lock().reset(head);
    }

    /// The records after position `from` (appended to `out`), and the position
    /// after them; waits up to `patience` when there are none yet.
    pub async fn read(
        &self,
        from: Position,
        out: &mut Vec<u8>,
        patience: Duration,
    ) -> Result<Position, Gone> {
        let arrived = self.arrived.notified();
        let mut arrived = std::pin::pin!(arrived);
        // Registered before the check, so a record appended in between wakes it.
        arrived.as_mut().enable();
        self.waiting.store(true, SeqCst);
        let next = self.lock().read(from, out)?;
        if next != from {
            return Ok(next);
        }
        let _ = actix_rt::time::timeout(patience, arrived).await;
        // Woken by the first new record: let the requests already runnable on this
        // thread record theirs too, so one socket write carries them all.
        actix_rt::task::yield_now().await;
        self.lock().read(from, out)
    }

    fn wake(&self) {
        if self.waiting.swap(false, SeqCst) {
            self.arrived.notify_waiters();
        }
    }
}

impl Tap for Feed {
    fn enabled(&self) -> bool {
        self.tapping.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn record(&self, change: &Change) {
        let record = change_record(change, &self.clock);
        self.lock()
            .append_with(1, |out| record::encode(&record, out));
        self.wake();
    }

    fn record_in(&self, txn: u64, change: &Change) {
        let record = change_record(change, &self.clock);
        let mut parts = self.parts.lock().expect("not poisoned");
        let part = parts.entry(txn).or_default();
        record::encode(&record, &mut part.frames);
        part.records += 1;
    }

    /// Appends the transaction's changes as one run, `TxnBegin` to `TxnCommit`,
    /// which a replica applies as a whole.
    fn txn_done(&self, txn: u64) {
        let Some(part) = self.parts.lock().expect("not poisoned").remove(&txn) else {
            return; // it changed nothing (or nothing while tapping was on)
        };
        let begin = Record::TxnBegin { id: txn, parts: 1 };
        let records = u32::try_from(part.records).unwrap_or(u32::MAX);
        let commit = Record::TxnCommit { id: txn, records };
        self.lock().append_with(part.records + 2, |out| {
            record::encode(&begin, out);
            out.extend_from_slice(&part.frames);
            record::encode(&commit, out);
        });
        self.wake();
    }
}

/// A transaction's changes recorded so far, encoded.
#[derive(Debug, Default)]
struct Pending {
    frames: Vec<u8>,
    records: u64,
}

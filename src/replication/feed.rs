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
//! Streams wait for new records on a `Notify`. A partition wakes it only when a
//! stream said it waits (`waiting`), so a busy primary pays an atomic swap per
//! change, not a wake-up.

use std::{
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use tokio::sync::Notify;

use super::backlog::{Backlog, Gone, Position};
use crate::{
    persist::{change_record, record},
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
        from: u64,
        out: &mut Vec<u8>,
        patience: Duration,
    ) -> Result<Position, Gone> {
        let arrived = self.arrived.notified();
        let mut arrived = std::pin::pin!(arrived);
        // Registered before the check, so a record appended in between wakes it.
        arrived.as_mut().enable();
        self.waiting.store(true, SeqCst);
        let next = self.lock().read(from, out)?;
        if next.records != from {
            return Ok(next);
        }
        let _ = actix_rt::time::timeout(patience, arrived).await;
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
        // A transaction's log markers are for recovery; the stream carries its
        // writes (a replica applies them one by one, see the README).
        if let Change::TxnBegin { .. } | Change::TxnCommit { .. } | Change::TxnFloor { .. } = change
        {
            return;
        }
        let record = change_record(change, &self.clock);
        self.lock()
            .append_with(1, |out| record::encode(&record, out));
        self.wake();
    }
}

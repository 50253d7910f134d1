//! What a partition shares with readers: the skiplist, the read buffer, the counters.
//!
//! Readers (HTTP workers) look entries up here without a lock and without a message
//! to the actor. Only the partition's actor inserts or removes. A hit is reported to
//! the actor through a bounded queue, Caffeine's "read buffer": when it is full the
//! hit is dropped rather than making the reader wait, so recency is best-effort under
//! overload but exact for a sequential client (the actor drains the queue before each
//! write).

use crossbeam::queue::ArrayQueue;
use crossbeam_skiplist::SkipMap;

use super::{entry::Entry, stats::Counters};

/// Hits buffered per partition between two drains (a write or a tick).
pub const READ_BUFFER: usize = 4096;

/// A reader's report that it used the entry at `slot` in `version`.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub slot: u32,
    /// Lets the actor ignore a hit on an entry replaced or removed since.
    pub version: u64,
}

#[derive(Debug)]
pub struct Shared {
    pub(super) map: SkipMap<Entry, ()>,
    pub(super) reads: ArrayQueue<Hit>,
    pub counters: Counters,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            map: SkipMap::new(),
            reads: ArrayQueue::new(READ_BUFFER),
            counters: Counters::default(),
        }
    }
}

impl Shared {
    /// Looks `key` up as of `now`: an entry past its deadline is a miss at once,
    /// whether or not the wheel has reclaimed it yet. A hit is reported for LRU.
    pub fn get(&self, key: &str, now: u64) -> Option<Entry> {
        let Some(found) = self.map.get(key.as_bytes()) else {
            Counters::bump(&self.counters.misses);
            return None;
        };
        let entry = found.key().clone();
        if entry.is_expired(now) {
            Counters::bump(&self.counters.misses);
            Counters::bump(&self.counters.expired_reads);
            return None;
        }
        Counters::bump(&self.counters.hits);
        let hit = Hit {
            slot: entry.slot(),
            version: entry.version(),
        };
        if self.reads.push(hit).is_err() {
            Counters::bump(&self.counters.read_drops);
        }
        Some(entry)
    }

    /// Looks `key` up without counting or reporting anything (the actor's own view).
    pub(super) fn peek(&self, key: &[u8]) -> Option<Entry> {
        self.map.get(key).map(|found| found.key().clone())
    }
}

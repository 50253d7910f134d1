//! What a partition shares with readers: the skiplist, its replace counter, the read
//! buffer, the counters.
//!
//! Readers (HTTP workers) look entries up here without a lock and without a message
//! to the actor. Only the partition's actor inserts or removes. A hit is reported to
//! the actor through a bounded queue, Caffeine's "read buffer": when it is full the
//! hit is dropped rather than making the reader wait, so recency is best-effort under
//! overload but exact for a sequential client (the actor drains the queue before each
//! write).
//!
//! ## Why a replace counter
//! crossbeam-skiplist 0.1's `insert` over an existing key marks the old node removed,
//! searches again and only then links the new node: for that moment the key is in
//! neither node, and a reader that walks past would answer 404 for a key that was
//! never absent. The actor therefore wraps every replace in a window of the
//! partition's `replacing` counter (odd while it runs, like a seqlock's sequence).
//! A reader that misses checks the counter: if a replace started or ran during its
//! lookup it looks again. Hits never retry and pay one load of the counter; the
//! layout stays one allocation per entry with nothing added per key. A range walk
//! (scans) uses the same check per step (`seek`, `step`), so it cannot skip a
//! key being replaced either.
//!
//! ## Why intents
//! A transaction writes several partitions, one after another, yet a reader must
//! never see part of it. Each partition the transaction writes records, before it
//! publishes a new entry, an `Intent`: the entry readers saw before, and the
//! transaction's commit flag. A reader that finds a key with an uncommitted intent
//! answers the entry from before. The flag is set once every partition has applied
//! its part, so a reader that saw one of the transaction's writes (the flag was
//! set) cannot then see another partition without it. Plain reads pay one load
//! of the `pending` count, on the cache line they load anyway.

use std::{
    hash::{BuildHasher, RandomState},
    ops::Bound,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst},
    },
};

use crossbeam::{queue::ArrayQueue, utils::CachePadded};
use crossbeam_skiplist::SkipMap;

use super::{entry::Entry, key::Probe, stats::Counters};
use crate::config::Eviction;

/// A place in a partition's skiplist, held by an ordered walk. It keeps its node
/// alive (not the key in the map) until dropped.
pub type Cursor<'a> = crossbeam_skiplist::map::Entry<'a, Entry, ()>;

/// Reads buffered per partition between two drains (a write or a tick).
pub const READ_BUFFER: usize = 4096;

/// Spins on an odd counter before yielding: a replace window lasts well under a
/// microsecond unless its thread is preempted, and then only yielding helps.
const SPINS_BEFORE_YIELD: u32 = 64;

/// What a reader reports to the partition's actor.
#[derive(Clone, Copy, Debug)]
pub enum Read {
    /// It used the entry at `slot` in `version` (the version lets the actor ignore
    /// a hit on an entry replaced or removed since).
    Hit { slot: u32, version: u64 },
    /// It looked for the key with this frequency hash and did not find it: under
    /// W-TinyLFU a miss counts as a use, so a key that keeps being asked for is
    /// admitted once it is put.
    Miss { hash: u64 },
}

/// What readers of every key load: on its own cache line, written only by the
/// actor's replaces and transactions.
#[derive(Debug, Default)]
struct Gates {
    /// Odd while the actor replaces an entry; see the module docs.
    replacing: AtomicU64,
    /// Intents in `intents`: zero, nearly always, spares readers the lookup.
    pending: AtomicUsize,
}

/// What readers see of a key a transaction writes, until it commits.
#[derive(Clone, Debug)]
pub(super) struct Intent {
    pub committed: Arc<AtomicBool>,
    /// The live entry before the transaction's first write of the key.
    pub prior: Option<Entry>,
}

#[derive(Debug)]
pub struct Shared {
    pub(super) map: SkipMap<Entry, ()>,
    gates: CachePadded<Gates>,
    intents: SkipMap<Box<[u8]>, Intent>,
    pub(super) reads: ArrayQueue<Read>,
    pub counters: Counters,
    /// The frequency sketch's key hash under W-TinyLFU (`None` under LRU, whose
    /// readers report no misses).
    pub(super) frequency: Option<RandomState>,
}

impl Default for Shared {
    fn default() -> Self {
        Self::new(Eviction::Lru)
    }
}

impl Shared {
    /// The shared side of a partition evicting by `eviction`.
    pub fn new(eviction: Eviction) -> Self {
        Self {
            map: SkipMap::new(),
            gates: CachePadded::new(Gates::default()),
            intents: SkipMap::new(),
            reads: ArrayQueue::new(READ_BUFFER),
            counters: Counters::default(),
            // Keys drawn per process, so a client cannot aim keys at one counter.
            frequency: (eviction == Eviction::Tinylfu).then(RandomState::new),
        }
    }

    /// The frequency sketch's hash of `key`, under W-TinyLFU.
    pub(super) fn frequency_hash(&self, key: &[u8]) -> Option<u64> {
        self.frequency.as_ref().map(|hasher| hasher.hash_one(key))
    }
}

impl Shared {
    /// Looks `key` up as of `now`: an entry past its deadline is a miss at once,
    /// whether or not the wheel has reclaimed it yet. A hit is reported for LRU.
    pub fn get(&self, key: &str, now: u64) -> Option<Entry> {
        let found = self.lookup(key.as_bytes());
        self.account(key, self.visible(key.as_bytes(), found), now)
    }

    /// `get` as the partition's actor sees it: its own writes, committed or not
    /// (a transaction's get after its own put sees the put).
    pub(super) fn get_own(&self, key: &str, now: u64) -> Option<Entry> {
        self.account(key, self.peek(key.as_bytes()), now)
    }

    /// The key's live entry for a transaction's compares, counting nothing. Read
    /// while the transaction holds the partition, so no other intent is pending.
    pub fn current(&self, key: &[u8], now: u64) -> Option<Entry> {
        self.lookup(key).filter(|entry| !entry.is_expired(now))
    }

    /// Counts a read that found `found` and reports it; an entry past its deadline
    /// is a miss.
    fn account(&self, key: &str, found: Option<Entry>, now: u64) -> Option<Entry> {
        let Some(entry) = found else {
            self.missed(key);
            return None;
        };
        if entry.is_expired(now) {
            Counters::bump(&self.counters.expired_reads);
            self.missed(key);
            return None;
        }
        Counters::bump(&self.counters.hits);
        self.report(Read::Hit {
            slot: entry.slot(),
            version: entry.version(),
        });
        Some(entry)
    }

    /// What a reader may see of `key`, having found `found`: the entry from
    /// before an uncommitted transaction's write, else `found`.
    pub(super) fn visible(&self, key: &[u8], found: Option<Entry>) -> Option<Entry> {
        if self.gates.pending.load(SeqCst) == 0 {
            return found;
        }
        match self.intents.get(key) {
            Some(intent) if !intent.value().committed.load(SeqCst) => intent.value().prior.clone(),
            _ => found,
        }
    }

    /// Records, before the transaction's first write of `key` is published, what
    /// readers see until it commits. Actor only.
    pub(super) fn hold(&self, key: &[u8], committed: &Arc<AtomicBool>, prior: Option<Entry>) {
        if self.intents.contains_key(key) {
            return; // written earlier in the same transaction: the first prior stands
        }
        self.gates.pending.fetch_add(1, SeqCst);
        let intent = Intent {
            committed: Arc::clone(committed),
            prior,
        };
        self.intents.insert(key.into(), intent);
    }

    /// Drops the intents of a committed (or abandoned) transaction. Actor only.
    pub(super) fn release(&self) {
        while let Some(intent) = self.intents.pop_front() {
            drop(intent);
            self.gates.pending.fetch_sub(1, SeqCst);
        }
    }

    fn missed(&self, key: &str) {
        Counters::bump(&self.counters.misses);
        if let Some(hash) = self.frequency_hash(key.as_bytes()) {
            self.report(Read::Miss { hash });
        }
    }

    /// Queues `read` for the actor, or drops it (counted) when the buffer is full:
    /// a reader never waits for the actor.
    fn report(&self, read: Read) {
        if self.reads.push(read).is_err() {
            Counters::bump(&self.counters.read_drops);
        }
    }

    /// Where an ordered walk starts: the first entry at or after `from`, never
    /// skipping a key that a concurrent replace has briefly unlinked. Expiry is
    /// the caller's to judge.
    pub fn seek(&self, from: Bound<&[u8]>) -> Option<Cursor<'_>> {
        // Unlike a lookup, a search that found something may still have skipped a
        // closer key being replaced: only an undisturbed search counts.
        self.validated(true, |map| map.lower_bound::<[u8]>(from))
    }

    /// The entry after `at`: one link followed when no replace ran meanwhile (the
    /// common case), else a search from the top, as `seek`. A followed link skips
    /// removed nodes, so a replace's moment without the key would be skipped too:
    /// the counter tells.
    pub fn step<'a>(&'a self, at: &Cursor<'a>) -> Option<Cursor<'a>> {
        let before = self.gates.replacing.load(SeqCst);
        if before.is_multiple_of(2) {
            let next = at.next();
            if self.gates.replacing.load(SeqCst) == before {
                return next;
            }
        }
        self.seek(Bound::Excluded(at.key().key_bytes()))
    }

    /// Looks `key` up without counting or reporting anything (the actor's own view:
    /// it never runs concurrently with its own replaces, so it needs no retry).
    pub(super) fn peek(&self, key: &[u8]) -> Option<Entry> {
        let probe = Probe::new(key);
        self.map
            .get(probe.ordered())
            .map(|found| found.key().clone())
    }

    /// Runs `replace` (the actor's unlink-and-relink of one key) inside a window
    /// readers can see. The actor is the only writer of the counter.
    pub(super) fn replacing<T>(&self, replace: impl FnOnce() -> T) -> T {
        self.gates.replacing.fetch_add(1, SeqCst);
        let result = replace();
        self.gates.replacing.fetch_add(1, SeqCst);
        result
    }

    /// `peek` for readers that run concurrently with the actor.
    fn lookup(&self, key: &[u8]) -> Option<Entry> {
        // A hit is always right (a live node of this key), so only misses are checked.
        let probe = Probe::new(key);
        let search =
            |map: &SkipMap<Entry, ()>| map.get(probe.ordered()).map(|found| found.key().clone());
        self.validated(false, search)
    }

    /// Runs `search` until its answer is trustworthy: a hit when `check_hits` is
    /// false, or any answer given while no replace started or ran. SeqCst on both
    /// sides: a search that missed a node because of a replace saw the old node's
    /// removal mark, which the actor set after making the counter odd, so the
    /// second load sees the counter moved.
    fn validated<'a, T>(
        &'a self,
        check_hits: bool,
        search: impl Fn(&'a SkipMap<Entry, ()>) -> Option<T>,
    ) -> Option<T> {
        let mut spins = 0u32;
        loop {
            let before = self.gates.replacing.load(SeqCst);
            let found = search(&self.map);
            if found.is_some() && !check_hits {
                return found;
            }
            if before.is_multiple_of(2) && self.gates.replacing.load(SeqCst) == before {
                return found;
            }
            spins += 1;
            if spins < SPINS_BEFORE_YIELD {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

//! A partition's mutable state and the rules for changing it, with time passed in.
//!
//! `PartitionState` is what the partition actor owns: the LRU slab, the timer wheel,
//! the memory account and the write side of the shared skiplist. It never reads a
//! clock and never awaits, so the model tests drive it directly with a mock clock.
//! Every operation is O(1) apart from the skiplist's O(log n) lookup and insert.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering::Relaxed},
};

use crate::config::Eviction;

mod tinylfu;
mod walk;

use tinylfu::{PROBATION, REGIONS, TinyLfu};

use super::{
    entry::{Entry, NEVER},
    journal::{Cause, Change, Durable, Journal},
    lru::Lru,
    messages::{Delete, PreconditionFailed, Put, Written},
    op::{Op, Outcome},
    shared::{Read, Shared},
    stats::{Counters, PartitionStats},
    tap::{Replica, Replicated},
    wheel::TimerWheel,
};

/// Why an entry left the partition without being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    Expired,
    Capacity,
    Memory,
}

/// One partition's share of the store's limits, and how it keeps within them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries.
    pub capacity: u64,
    /// Approximate bytes (see `entry::charge`).
    pub max_memory: u64,
    pub eviction: Eviction,
}

/// Where a write comes from: a client's, which counts as a use of the key, or a
/// log's being loaded, which does not (and, under W-TinyLFU, skips the window), or
/// a primary's, which also never evicts (a replica holds what its primary holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Client,
    Log,
    Replica,
}

#[derive(Debug)]
pub struct PartitionState {
    shared: Arc<Shared>,
    lru: Lru<Entry>,
    /// W-TinyLFU's state, or `None` for plain LRU (one list in `lru`).
    policy: Option<Box<TinyLfu>>,
    wheel: TimerWheel,
    limits: Limits,
    memory: u64,
    /// The last version handed out; partition-wide, so never reused for any key.
    version: u64,
    /// Scratch buffer for the wheel's expired ids, kept to avoid reallocating.
    expired: Vec<u32>,
    /// Where changes are recorded when persistence is on.
    journal: Option<Journal>,
    /// A snapshot being walked, chunk by chunk, between messages.
    walk: Option<walk::Walk>,
    /// Where changes are told when the store replicates, and whether it follows.
    replicated: Option<Arc<Replicated>>,
    /// The transaction whose part is being applied, if one is (see `open_part`).
    part: Option<u64>,
    /// The highest transaction id with a part in this partition's logs: a snapshot
    /// waits until the ledger's floor has passed it (see `start_snapshot`).
    top_part: u64,
}

impl PartitionState {
    pub fn new(shared: Arc<Shared>, limits: Limits, now: u64) -> Self {
        let tinylfu = limits.eviction == Eviction::Tinylfu;
        assert!(
            !tinylfu || shared.frequency.is_some(),
            "a W-TinyLFU partition needs its readers to report misses: Shared::new(Tinylfu)"
        );
        Self {
            shared,
            lru: Lru::with_lists(if tinylfu { REGIONS } else { 1 }),
            policy: tinylfu.then(|| Box::new(TinyLfu::new(limits))),
            wheel: TimerWheel::new(now),
            limits,
            memory: 0,
            version: 0,
            expired: Vec::new(),
            journal: None,
            walk: None,
            replicated: None,
            part: None,
            top_part: 0,
        }
    }

    /// Tells `replicated`'s tap every change from now on, and obeys its flags.
    pub fn attach_replication(&mut self, replicated: Arc<Replicated>) {
        self.replicated = Some(replicated);
    }

    /// Whether the store follows a primary (client writes are refused).
    pub fn following(&self) -> bool {
        self.replicated.as_ref().is_some_and(|r| r.following())
    }

    /// Why client writes are refused on a fenced primary, if it is fenced.
    pub fn fence(&self) -> Option<&'static str> {
        self.replicated.as_ref()?.fence()
    }

    /// Whether changes are recorded anywhere (a journal, or a tap that is on).
    fn recording(&self) -> bool {
        self.journal.is_some() || self.replicated.as_ref().is_some_and(|r| r.tap.enabled())
    }

    /// Records every change from now on in `journal`.
    pub fn attach_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Versions from now on are above `floor` (a restart's epoch, see `persist`).
    pub fn raise_version(&mut self, floor: u64) {
        self.version = self.version.max(floor);
    }

    /// Hands the changes made since the last commit to the journal; the ticket
    /// says when they are safe. `None` without persistence or without changes.
    pub fn commit(&mut self) -> Option<Durable> {
        self.journal.as_mut().and_then(Journal::commit)
    }

    /// The outbox whose writer must be woken for what was committed, once.
    pub fn wake_due(&mut self) -> Option<&Arc<super::journal::Outbox>> {
        let journal = self.journal.as_mut()?;
        journal.take_wake().then(|| journal.outbox())
    }

    fn record(&mut self, change: impl FnOnce() -> Change) {
        let tap = self
            .replicated
            .as_ref()
            .map(|r| &r.tap)
            .filter(|tap| tap.enabled());
        if self.journal.is_none() && tap.is_none() {
            return;
        }
        let change = change();
        match (tap, self.part) {
            (Some(tap), Some(txn)) => tap.record_in(txn, &change),
            (Some(tap), None) => tap.record(&change),
            (None, _) => {}
        }
        if let Some(journal) = &mut self.journal {
            journal.record(change);
        }
    }

    /// Moves the state out, leaving an empty one with the same skiplist and limits
    /// (the actor's `Drop`, which must hand its state on).
    pub fn take(&mut self) -> Self {
        let mut empty = Self::new(Arc::clone(&self.shared), self.limits, 0);
        empty.replicated = self.replicated.clone();
        std::mem::replace(self, empty)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn len(&self) -> usize {
        self.lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lru.is_empty()
    }

    pub fn stats(&self) -> PartitionStats {
        self.shared
            .counters
            .snapshot(self.limits.capacity, self.limits.max_memory)
    }

    /// Keys from most to least recently used (tests only: O(n)).
    pub fn keys_by_recency(&self) -> Vec<String> {
        self.lru
            .iter()
            .map(|entry| entry.key().to_owned())
            .collect()
    }

    /// The live entries from least to most recently used (a snapshot at start-up).
    pub fn entries_oldest_first(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.lru.iter_oldest_first()
    }

    /// Periodic upkeep: apply buffered hits and reclaim expired entries.
    pub fn tick(&mut self, now: u64) {
        self.drain_reads();
        // A replica's keys leave when its primary says so; readers treat one past
        // its deadline as missing meanwhile.
        if !self.following() {
            self.expire(now);
        }
        self.publish_gauges();
    }

    pub fn put(&mut self, put: Put, now: u64) -> Result<Written, PreconditionFailed> {
        self.drain_reads();
        self.expire(now);
        let current = self.live(put.entry.key_bytes(), now);
        let current_version = current.as_ref().map(|entry| entry.version());
        if !put.precondition.allows(current_version) {
            return Err(PreconditionFailed {
                current: current_version,
            });
        }
        self.version += 1;
        if let Some(journal) = &self.journal {
            let floor = journal.outbox().health.version_floor.load(Relaxed);
            self.version = self.version.max(floor);
        }
        if let Some(replicated) = &self.replicated {
            self.version = self.version.max(replicated.version_floor());
        }
        let deadline = put
            .ttl
            .map_or(NEVER, |ttl| now.saturating_add(ttl).min(NEVER - 1));
        let version = self.version;
        let written = self.write(current, put.entry, version, deadline, now, Origin::Client);
        self.publish_gauges();
        Ok(written)
    }

    /// Loads an entry read back from a log or snapshot, with its own version and
    /// deadline, as the most recently used. Recorded nowhere.
    pub fn restore(&mut self, entry: Entry, version: u64, deadline: u64, now: u64) {
        self.version = self.version.max(version);
        let Some(entry) = self.restore_new(entry, version, deadline) else {
            return;
        };
        let current = self.live(entry.key_bytes(), now);
        self.write(current, entry, version, deadline, now, Origin::Log);
        self.publish_gauges();
    }

    /// `restore`'s fast path, for a key not yet loaded while there is room (nearly
    /// every record of a snapshot): one skiplist walk instead of a lookup and then
    /// an insert, which profiling showed as half of the start-up time. Hands the
    /// entry back, unpublished, if the key is present or room must be made.
    fn restore_new(&mut self, mut entry: Entry, version: u64, deadline: u64) -> Option<Entry> {
        let charge = entry.charge();
        let room = (self.lru.len() as u64) < self.limits.capacity
            && self.memory + charge <= self.limits.max_memory;
        if !room || self.journal.is_some() {
            return Some(entry);
        }
        let list = if self.policy.is_some() { PROBATION } else { 0 };
        let slot = self.link(list, &mut entry, version, deadline);
        let inserted = {
            let found = self.shared.map.get_or_insert(entry.clone(), ());
            found.key().same(&entry)
        };
        if !inserted {
            // Present already: undo, and take the general path with it.
            self.lru.remove(slot);
            return Some(entry);
        }
        self.admitted(slot, charge, deadline);
        self.publish_gauges();
        None
    }

    /// Applies a change as the primary made it: its version and deadline, no
    /// expiry or eviction of its own. Recorded in the journal (a replica that
    /// persists keeps its copy), never refused.
    /// Under a transaction (`txn` is its commit flag), readers see the key's
    /// prior entry until the commit, as for a client's transaction.
    pub fn apply(&mut self, change: Replica, now: u64, txn: Option<&Arc<AtomicBool>>) {
        self.drain_reads();
        if let Some(committed) = txn {
            let key = change.key();
            self.shared.hold(key, committed, self.shared.peek(key));
        }
        match change {
            Replica::Put {
                entry,
                version,
                deadline,
            } => {
                self.version = self.version.max(version);
                let current = self.shared.peek(entry.key_bytes());
                self.write(current, entry, version, deadline, now, Origin::Replica);
            }
            Replica::Remove { key, cause } => {
                if let Some(entry) = self.shared.peek(&key) {
                    self.remove(entry.slot());
                    self.record(|| Change::Remove(entry, cause));
                    Counters::bump(&self.shared.counters.deletes);
                }
            }
        }
        self.publish_gauges();
    }

    /// Removes up to `limit` entries (a replica about to take a full copy),
    /// recorded as deletions. Answers whether any are left.
    pub fn clear(&mut self, limit: usize) -> bool {
        for _ in 0..limit {
            let Some((slot, _)) = self.lru.peek_lru() else {
                break;
            };
            if let Some(entry) = self.remove(slot) {
                self.record(|| Change::Remove(entry, Cause::Deleted));
            }
        }
        self.publish_gauges();
        !self.lru.is_empty()
    }

    /// Removes `key` as a log read back says it left. Recorded nowhere.
    pub fn forget(&mut self, key: &[u8]) {
        if let Some(entry) = self.shared.peek(key) {
            self.remove(entry.slot());
            self.publish_gauges();
        }
    }

    fn write(
        &mut self,
        current: Option<Entry>,
        entry: Entry,
        version: u64,
        deadline: u64,
        now: u64,
        origin: Origin,
    ) -> Written {
        match current {
            Some(old) => self.replace(&old, entry, version, deadline, now, origin),
            None => self.insert(entry, version, deadline, now, origin),
        }
    }

    pub fn delete(&mut self, delete: &Delete, now: u64) -> Result<Option<u64>, PreconditionFailed> {
        self.drain_reads();
        self.expire(now);
        let current = self.live(delete.key.as_bytes(), now);
        let current_version = current.as_ref().map(|entry| entry.version());
        if !delete.precondition.allows(current_version) {
            return Err(PreconditionFailed {
                current: current_version,
            });
        }
        if let Some(entry) = current {
            self.remove(entry.slot());
            self.record(|| Change::Remove(entry, Cause::Deleted));
            Counters::bump(&self.shared.counters.deletes);
        }
        self.publish_gauges();
        Ok(current_version)
    }

    /// Opens this partition's part of transaction `id` (one of `parts`): the tap
    /// keeps its changes together, and the journal frames them; answers where its
    /// changes start in the journal. `None` without persistence.
    pub fn open_part(&mut self, id: u64, parts: u32) -> Option<usize> {
        self.part = Some(id);
        self.top_part = self.top_part.max(id);
        let journal = self.journal.as_mut()?;
        journal.record(Change::TxnBegin { id, parts });
        Some(journal.changes_pending())
    }

    /// Closes the part `open_part` opened, counting the changes it holds.
    pub fn close_part(&mut self, id: u64, from: Option<usize>) {
        self.part = None;
        if let (Some(from), Some(journal)) = (from, &mut self.journal) {
            let records = u32::try_from(journal.changes_pending() - from).unwrap_or(u32::MAX);
            journal.record(Change::TxnCommit { id, records });
        }
    }

    /// Applies one op of a batch or transaction. Under a transaction (`txn` is its
    /// commit flag) a write first records what readers see until the commit.
    pub fn apply_op(&mut self, op: Op, now: u64, txn: Option<&Arc<AtomicBool>>) -> Outcome {
        if let Some(committed) = txn.filter(|_| op.is_write()) {
            let prior = self.live(op.key(), now);
            self.shared.hold(op.key(), committed, prior);
        }
        let failed = |failed: PreconditionFailed| Outcome::Failed(failed.into());
        match op {
            Op::Get { key } => self
                .shared
                .get_own(&key, now)
                .map_or(Outcome::Missing, Outcome::Found),
            Op::Put(put) => self.put(put, now).map_or_else(failed, Outcome::Written),
            Op::Delete(delete) => match self.delete(&delete, now) {
                Ok(Some(version)) => Outcome::Deleted(version),
                Ok(None) => Outcome::Missing,
                Err(error) => failed(error),
            },
        }
    }

    /// The key's entry if it is present and not expired. An expired one found here is
    /// reclaimed at once, so the write that follows sees the key as absent.
    fn live(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        let entry = self.shared.peek(key)?;
        if entry.is_expired(now) {
            self.evict(entry.slot(), Removal::Expired);
            return None;
        }
        Some(entry)
    }

    fn replace(
        &mut self,
        old: &Entry,
        mut entry: Entry,
        version: u64,
        deadline: u64,
        now: u64,
        origin: Origin,
    ) -> Written {
        let slot = old.slot();
        entry.stamp(version, deadline, slot);
        self.memory = self.memory - old.charge() + entry.charge();
        self.schedule(slot, deadline);
        let list = self.lru.list_of(slot);
        self.weigh_out(slot, old.charge());
        *self.lru.get_mut(slot).expect("live entry has a slot") = entry.clone();
        self.weigh_in(list, entry.charge());
        if self.policy.is_some() && origin == Origin::Client {
            self.accessed(slot);
        } else {
            self.touch(slot);
        }
        // The skiplist unlinks the old node before linking the new one: readers
        // must know (see `shared`), or they would answer 404 for a live key.
        let map = &self.shared.map;
        let logged = self.recording().then(|| entry.clone());
        self.shared.replacing(|| map.insert(entry, ()));
        if let Some(entry) = logged {
            self.record(|| Change::Put(entry));
        }
        Counters::bump(&self.shared.counters.updates);
        // A larger value may push the partition over its memory budget.
        // (Under W-TinyLFU `rebalance` evicts; `evict_lru` would take the window's
        // least recent entry, not the policy's victim.)
        if origin == Origin::Replica {
            // A replica evicts nothing on its own: its primary's removals follow.
        } else if self.policy.is_some() {
            self.rebalance(origin == Origin::Client, now);
        } else {
            while self.memory > self.limits.max_memory && self.lru.len() > 1 {
                self.evict_lru(Removal::Memory, now);
            }
        }
        Written {
            created: false,
            version,
        }
    }

    fn insert(
        &mut self,
        mut entry: Entry,
        version: u64,
        deadline: u64,
        now: u64,
        origin: Origin,
    ) -> Written {
        let charge = entry.charge();
        // LRU makes room first; W-TinyLFU lets the newcomer in (to the window, or
        // when loading to probation) and then decides who goes.
        let list = match (self.policy.is_some(), origin) {
            (false, Origin::Replica) => 0,
            (false, _) => {
                self.make_room(charge, now);
                0
            }
            (true, Origin::Client) => tinylfu::WINDOW,
            (true, Origin::Log | Origin::Replica) => PROBATION,
        };
        let slot = self.link(list, &mut entry, version, deadline);
        if origin == Origin::Client {
            self.count_insert(entry.key_bytes());
        }
        let logged = self.recording().then(|| entry.clone());
        self.shared.map.insert(entry, ());
        if let Some(entry) = logged {
            self.record(|| Change::Put(entry));
        }
        self.admitted(slot, charge, deadline);
        if self.policy.is_some() {
            self.weigh_in(list, charge);
            if origin != Origin::Replica {
                self.rebalance(origin == Origin::Client, now);
            }
        }
        Written {
            created: true,
            version,
        }
    }

    /// Stamps a new entry with its version, deadline and a fresh slot (as the most
    /// recent of `list`), before it is published.
    fn link(&mut self, list: u8, entry: &mut Entry, version: u64, deadline: u64) -> u32 {
        self.lru.insert_with_in(list, |slot| {
            entry.stamp(version, deadline, slot);
            entry.clone()
        })
    }

    /// Accounts for a new entry once it is published at `slot`.
    fn admitted(&mut self, slot: u32, charge: u64, deadline: u64) {
        self.memory += charge;
        self.schedule(slot, deadline);
        Counters::bump(&self.shared.counters.inserts);
    }

    /// Evicts least recently used entries until one more entry of `charge` fits.
    /// Expired entries the wheel has found go first (`expire` ran just before); an
    /// expired entry that reaches the LRU tail is counted as expired, not evicted.
    fn make_room(&mut self, charge: u64, now: u64) {
        while !self.lru.is_empty() {
            let cause = if self.lru.len() as u64 + 1 > self.limits.capacity {
                Removal::Capacity
            } else if self.memory + charge > self.limits.max_memory {
                Removal::Memory
            } else {
                return;
            };
            self.evict_lru(cause, now);
        }
    }

    /// Evicts the least recently used entry for `cause`; one already expired (the
    /// wheel has not reached its bucket yet) is counted as expired, not evicted.
    fn evict_lru(&mut self, cause: Removal, now: u64) {
        if let Some((slot, victim)) = self.lru.peek_lru() {
            let cause = if victim.is_expired(now) {
                Removal::Expired
            } else {
                cause
            };
            self.evict(slot, cause);
        }
    }

    fn evict(&mut self, slot: u32, cause: Removal) {
        let Some(entry) = self.remove(slot) else {
            return;
        };
        self.record(|| {
            let cause = match cause {
                Removal::Expired => Cause::Expired,
                Removal::Capacity | Removal::Memory => Cause::Evicted,
            };
            Change::Remove(entry, cause)
        });
        let counters = &self.shared.counters;
        Counters::bump(match cause {
            Removal::Expired => &counters.expirations,
            Removal::Capacity => &counters.evictions_capacity,
            Removal::Memory => &counters.evictions_memory,
        });
    }

    fn remove(&mut self, slot: u32) -> Option<Entry> {
        let charge = self.lru.get(slot)?.charge();
        self.step_walk_past(slot, false);
        self.weigh_out(slot, charge);
        let entry = self.lru.remove(slot)?;
        self.wheel.deschedule(slot);
        self.memory -= entry.charge();
        self.shared.map.remove(entry.key_bytes());
        Some(entry)
    }

    /// Marks `slot` most recently used on its list.
    fn touch(&mut self, slot: u32) {
        self.step_walk_past(slot, true);
        self.lru.touch(slot);
    }

    /// Moves `slot` to the front of another list (a W-TinyLFU region).
    fn move_region(&mut self, slot: u32, list: u8) {
        self.walk_past_move(slot);
        self.lru.move_to_front(slot, list);
    }

    fn schedule(&mut self, slot: u32, deadline: u64) {
        if deadline == NEVER {
            self.wheel.deschedule(slot);
        } else {
            self.wheel.reschedule(slot, deadline);
        }
    }

    fn expire(&mut self, now: u64) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.advance(now, &mut expired);
        for slot in expired.drain(..) {
            self.evict(slot, Removal::Expired);
        }
        self.expired = expired;
    }

    fn drain_reads(&mut self) {
        while let Some(read) = self.shared.reads.pop() {
            match read {
                Read::Hit { slot, version } => {
                    if self.lru.get(slot).map(Entry::version) != Some(version) {
                        continue;
                    }
                    if self.policy.is_some() {
                        self.accessed(slot);
                    } else {
                        self.touch(slot);
                    }
                }
                Read::Miss { hash } => self.count_miss(hash),
            }
        }
    }

    fn publish_gauges(&self) {
        let counters = &self.shared.counters;
        counters.keys.store(self.lru.len() as u64, Relaxed);
        counters.memory.store(self.memory, Relaxed);
    }

    /// Checks the invariants tying the slab, wheel, skiplist and memory account
    /// together; panics on the first broken one. For tests.
    pub fn validate(&self) {
        self.lru.validate();
        assert_eq!(
            self.shared.map.len(),
            self.lru.len(),
            "skiplist and LRU disagree"
        );
        assert!(
            self.lru.len() as u64 <= self.limits.capacity,
            "over capacity"
        );
        let memory: u64 = self.lru.iter().map(|entry| entry.charge()).sum();
        assert_eq!(memory, self.memory, "memory account drifted");
        let with_ttl = self.lru.iter().filter(|e| e.deadline().is_some()).count();
        assert_eq!(with_ttl, self.wheel.len(), "wheel and TTL entries disagree");
        self.validate_regions();
        for entry in self.lru.iter() {
            let indexed = self
                .shared
                .peek(entry.key_bytes())
                .expect("entry missing from skiplist");
            assert!(indexed.same(entry), "skiplist holds another entry");
            assert_eq!(self.wheel.deadline(entry.slot()), entry.deadline());
        }
    }
}

//! A partition's mutable state and the rules for changing it, with time passed in.
//!
//! `PartitionState` is what the partition actor owns: the LRU slab, the timer wheel,
//! the memory account and the write side of the shared skiplist. It never reads a
//! clock and never awaits, so the model tests drive it directly with a mock clock.
//! Every operation is O(1) apart from the skiplist's O(log n) lookup and insert.

use std::sync::{Arc, atomic::Ordering::Relaxed};

use super::{
    entry::{Entry, NEVER},
    lru::Lru,
    messages::{Delete, PreconditionFailed, Put, Written},
    shared::Shared,
    stats::{Counters, PartitionStats},
    wheel::TimerWheel,
};

/// Why an entry left the partition without being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    Expired,
    Capacity,
    Memory,
}

/// One partition's share of the store's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries.
    pub capacity: u64,
    /// Approximate bytes (see `entry::charge`).
    pub max_memory: u64,
}

#[derive(Debug)]
pub struct PartitionState {
    shared: Arc<Shared>,
    lru: Lru<Entry>,
    wheel: TimerWheel,
    limits: Limits,
    memory: u64,
    /// The last version handed out; partition-wide, so never reused for any key.
    version: u64,
    /// Scratch buffer for the wheel's expired ids, kept to avoid reallocating.
    expired: Vec<u32>,
}

impl PartitionState {
    pub fn new(shared: Arc<Shared>, limits: Limits, now: u64) -> Self {
        Self {
            shared,
            lru: Lru::default(),
            wheel: TimerWheel::new(now),
            limits,
            memory: 0,
            version: 0,
            expired: Vec::new(),
        }
    }

    /// Moves the state out, leaving an empty one with the same skiplist and limits
    /// (the actor's `Drop`, which must hand its state on).
    pub fn take(&mut self) -> Self {
        let empty = Self::new(Arc::clone(&self.shared), self.limits, 0);
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

    /// Periodic upkeep: apply buffered hits and reclaim expired entries.
    pub fn tick(&mut self, now: u64) {
        self.drain_reads();
        self.expire(now);
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
        let deadline = put
            .ttl
            .map_or(NEVER, |ttl| now.saturating_add(ttl).min(NEVER - 1));
        let written = match current {
            Some(old) => self.replace(&old, put, deadline, now),
            None => self.insert(put, deadline, now),
        };
        self.publish_gauges();
        Ok(written)
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
        if let Some(entry) = &current {
            self.remove(entry.slot());
            Counters::bump(&self.shared.counters.deletes);
        }
        self.publish_gauges();
        Ok(current_version)
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

    fn replace(&mut self, old: &Entry, put: Put, deadline: u64, now: u64) -> Written {
        let slot = old.slot();
        let mut entry = put.entry;
        entry.stamp(self.version, deadline, slot);
        self.memory = self.memory - old.charge() + entry.charge();
        self.schedule(slot, deadline);
        self.lru.touch(slot);
        *self.lru.get_mut(slot).expect("live entry has a slot") = entry.clone();
        // The skiplist unlinks the old node before linking the new one: readers
        // must know (see `shared`), or they would answer 404 for a live key.
        let map = &self.shared.map;
        self.shared.replacing(|| map.insert(entry, ()));
        Counters::bump(&self.shared.counters.updates);
        // A larger value may push the partition over its memory budget.
        while self.memory > self.limits.max_memory && self.lru.len() > 1 {
            self.evict_lru(Removal::Memory, now);
        }
        Written {
            created: false,
            version: self.version,
        }
    }

    fn insert(&mut self, put: Put, deadline: u64, now: u64) -> Written {
        let charge = put.entry.charge();
        self.make_room(charge, now);
        let version = self.version;
        let mut entry = put.entry;
        let slot = self.lru.insert_with(|slot| {
            entry.stamp(version, deadline, slot);
            entry.clone()
        });
        self.memory += charge;
        self.schedule(slot, deadline);
        self.shared.map.insert(entry, ());
        Counters::bump(&self.shared.counters.inserts);
        Written {
            created: true,
            version,
        }
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
        self.remove(slot);
        let counters = &self.shared.counters;
        Counters::bump(match cause {
            Removal::Expired => &counters.expirations,
            Removal::Capacity => &counters.evictions_capacity,
            Removal::Memory => &counters.evictions_memory,
        });
    }

    fn remove(&mut self, slot: u32) {
        let Some(entry) = self.lru.remove(slot) else {
            return;
        };
        self.wheel.deschedule(slot);
        self.memory -= entry.charge();
        self.shared.map.remove(entry.key_bytes());
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
        while let Some(hit) = self.shared.reads.pop() {
            let current = self.lru.get(hit.slot).map(|entry| entry.version());
            if current == Some(hit.version) {
                self.lru.touch(hit.slot);
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

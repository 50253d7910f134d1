//! Per-partition counters, shared by the actor and the lock-free readers.
//!
//! Plain relaxed atomics: a reader bumps `hits` or `misses` on every GET, so the
//! counters must cost no more than an uncontended add. They are statistics, not
//! synchronization; a snapshot may be a few operations out of date.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub inserts: AtomicU64,
    pub updates: AtomicU64,
    pub deletes: AtomicU64,
    pub evictions_capacity: AtomicU64,
    pub evictions_memory: AtomicU64,
    /// Expired entries reclaimed by the wheel or found expired by a write.
    pub expirations: AtomicU64,
    /// Reads that found an entry past its deadline (counted in `misses` too).
    pub expired_reads: AtomicU64,
    /// Hits not recorded for LRU because the read buffer was full.
    pub read_drops: AtomicU64,
    /// Batch and transaction messages applied (one per partition a group touches).
    pub group_messages: AtomicU64,
    /// Gauges written by the actor after each change.
    pub keys: AtomicU64,
    pub memory: AtomicU64,
}

/// A point-in-time copy of one partition's counters and gauges (or, in the totals,
/// of all partitions added up). Counters count since start-up.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PartitionStats {
    /// Live entries (gauge).
    pub keys: u64,
    /// Most entries held (`store.capacity`, split across partitions).
    pub capacity: u64,
    /// Approximate bytes of keys, values and per-entry overhead (gauge).
    pub memory: u64,
    /// `store.max_memory`, split across partitions.
    pub max_memory: u64,
    /// GETs that found a live entry.
    pub hits: u64,
    /// GETs that found nothing live.
    pub misses: u64,
    /// Writes that created a key.
    pub inserts: u64,
    /// Writes that replaced a live key.
    pub updates: u64,
    /// Deletes that removed a live key.
    pub deletes: u64,
    /// Entries evicted because the partition was at capacity.
    pub evictions_capacity: u64,
    /// Entries evicted to stay within max_memory.
    pub evictions_memory: u64,
    /// Expired entries reclaimed.
    pub expirations: u64,
    /// GETs that found an entry past its deadline (answered as misses).
    pub expired_reads: u64,
    /// Hits not recorded for LRU order because the read buffer was full.
    pub read_drops: u64,
    /// Batch and transaction messages the partition applied: one per partition a
    /// batch or transaction sends ops to, however many ops it sends.
    pub group_messages: u64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Zeroes the activity counters (not the gauges): loading persisted data goes
    /// through the write path, but `/v1/stats` counts what happened since start-up.
    pub fn reset_activity(&self) {
        let activity = [
            &self.hits,
            &self.misses,
            &self.inserts,
            &self.updates,
            &self.deletes,
            &self.evictions_capacity,
            &self.evictions_memory,
            &self.expirations,
            &self.expired_reads,
            &self.read_drops,
            &self.group_messages,
        ];
        activity
            .iter()
            .for_each(|counter| counter.store(0, Relaxed));
    }

    pub fn snapshot(&self, capacity: u64, max_memory: u64) -> PartitionStats {
        PartitionStats {
            keys: self.keys.load(Relaxed),
            capacity,
            memory: self.memory.load(Relaxed),
            max_memory,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            inserts: self.inserts.load(Relaxed),
            updates: self.updates.load(Relaxed),
            deletes: self.deletes.load(Relaxed),
            evictions_capacity: self.evictions_capacity.load(Relaxed),
            evictions_memory: self.evictions_memory.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            expired_reads: self.expired_reads.load(Relaxed),
            read_drops: self.read_drops.load(Relaxed),
            group_messages: self.group_messages.load(Relaxed),
        }
    }
}

impl PartitionStats {
    /// Adds `other` into `self`, for store-wide totals.
    pub fn accumulate(&mut self, other: &PartitionStats) {
        self.keys += other.keys;
        self.capacity += other.capacity;
        self.memory += other.memory;
        self.max_memory += other.max_memory;
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.updates += other.updates;
        self.deletes += other.deletes;
        self.evictions_capacity += other.evictions_capacity;
        self.evictions_memory += other.evictions_memory;
        self.expirations += other.expirations;
        self.expired_reads += other.expired_reads;
        self.read_drops += other.read_drops;
        self.group_messages += other.group_messages;
    }
}

//! One stored key: what a reader needs, immutable once published.
//!
//! A write never changes an `Entry` in place; it publishes a new one with a new
//! version, so a reader holding an `Arc<Entry>` always sees a whole value (never a
//! torn one) without any lock. The key lives only here: the skiplist indexes entries
//! through `EntryKey`, and the LRU slab holds the same `Arc`, so there is one copy.

use std::{borrow::Borrow, cmp::Ordering, sync::Arc};

/// Deadline meaning "no TTL".
pub const NEVER: u64 = u64::MAX;

/// Approximate bytes an entry costs beyond its key and value: the `Arc` block and
/// this struct (~72), the skiplist node and its tower (~48 on average), the LRU slab
/// cell (~24) and the timer-wheel node (~24). Used for `max_memory` accounting.
pub const ENTRY_OVERHEAD: u64 = 168;

#[derive(Debug)]
pub struct Entry {
    key: Box<str>,
    /// The value as validated JSON text, served as is: a GET never re-serializes.
    value: Box<[u8]>,
    /// Unique per key for the life of the process (the partition's write counter).
    version: u64,
    /// Nanoseconds on the store's clock; `NEVER` if the entry has no TTL.
    deadline: u64,
    /// The entry's LRU slab index, so a reader can report a hit without a lookup.
    slot: u32,
}

impl Entry {
    pub fn new(key: Box<str>, value: Box<[u8]>, version: u64, deadline: u64, slot: u32) -> Self {
        Self {
            key,
            value,
            version,
            deadline,
            slot,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn deadline(&self) -> Option<u64> {
        (self.deadline != NEVER).then_some(self.deadline)
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// True once `now` has reached the deadline: from then on the entry is a miss.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.deadline
    }

    /// The approximate memory the entry is charged for.
    pub fn charge(&self) -> u64 {
        charge(self.key.len(), self.value.len())
    }
}

/// What an entry of these sizes is charged for under `max_memory`.
pub fn charge(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64 + ENTRY_OVERHEAD
}

/// The skiplist key: an entry, ordered and looked up by its key string.
#[derive(Clone, Debug)]
pub struct EntryKey(pub Arc<Entry>);

impl Borrow<str> for EntryKey {
    fn borrow(&self) -> &str {
        &self.0.key
    }
}

impl PartialEq for EntryKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key == other.0.key
    }
}

impl Eq for EntryKey {}

impl PartialOrd for EntryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntryKey {
    // Must agree with `str`'s order, since lookups borrow the key as `&str`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key.cmp(&other.0.key)
    }
}

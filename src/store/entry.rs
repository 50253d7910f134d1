//! One stored key and its value, in a single allocation, immutable once published.
//!
//! An `Entry` is a `triomphe::ThinArc<(), u8>`: one 8-byte pointer to an allocation
//! holding a single reference count, the length, then a 24-byte header (version,
//! deadline, LRU slot, key length), the key and the value. One allocation per entry
//! is what keeps memory per key low: the skiplist indexes entries by this same
//! pointer (its key borrows the bytes) and the LRU slab holds another reference to
//! it, so the key is stored once. A thin pointer rather than std's `Arc<[u8]>` (a
//! 16-byte fat pointer, and a weak count nobody uses) because both the skiplist node
//! and the slab cell hold one per key: 8 bytes less in each.
//!
//! The HTTP handler builds the entry (the only allocation of a write) and the actor
//! stamps version, deadline and slot into the header while it still holds the only
//! reference (`Arc::get_mut`), before publishing it. After that a write never changes
//! an entry: it publishes a new one, so a reader holding an `Entry` always sees a
//! whole value, never a torn one, without any lock.

use std::{borrow::Borrow, cmp::Ordering, fmt};

use triomphe::{Arc, ThinArc};

use super::key::{self, Ordered};

/// Deadline meaning "no TTL".
pub const NEVER: u64 = u64::MAX;

/// Approximate bytes an entry costs beyond its key and value: the `Arc` counts (16)
/// and header (24), the skiplist node with its average tower (~40) and the LRU slab
/// cell (24) make 104 by arithmetic; allocator size classes and the slab's and
/// skiplist's growth slack add the rest. Calibrated on `benches/memory_vs_redis.py`,
/// which measured 188-229 bytes of RSS per key for ~51 bytes of key and value, so
/// that `max_memory` bounds what the process really holds. Used for `max_memory`
/// accounting.
pub const ENTRY_OVERHEAD: u64 = 160;

const VERSION: usize = 0;
const DEADLINE: usize = 8;
const SLOT: usize = 16;
const KEY_LEN: usize = 20;
const HEADER: usize = 24;

#[derive(Clone)]
pub struct Entry(ThinArc<(), u8>);

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl Entry {
    /// A new, unpublished entry: version 0, no deadline, slot 0 until `stamp`ed.
    pub fn new(key: &str, value: &[u8]) -> Self {
        let key_len = u32::try_from(key.len()).expect("keys are limited far below 4 GiB");
        // One allocation of the exact size, zeroed (a memset), then three copies:
        // copying byte by byte through an iterator chain measured as a tenth of
        // start-up time when loading a million entries.
        let zeros = std::iter::repeat_n(0u8, HEADER + key.len() + value.len());
        let mut entry = Entry(ThinArc::from_header_and_iter((), zeros));
        entry.write(|cells| {
            cells[DEADLINE..DEADLINE + 8].copy_from_slice(&NEVER.to_le_bytes());
            cells[KEY_LEN..KEY_LEN + 4].copy_from_slice(&key_len.to_le_bytes());
            cells[HEADER..HEADER + key.len()].copy_from_slice(key.as_bytes());
            cells[HEADER + key.len()..].copy_from_slice(value);
        });
        entry
    }

    /// The whole allocation after the count and length: header, key, value.
    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    /// Runs `write` on the bytes of an entry no one else holds.
    ///
    /// # Panics
    ///
    /// If the entry has already been shared (cloned).
    fn write(&mut self, write: impl FnOnce(&mut [u8])) {
        self.0.with_arc_mut(|arc| {
            let bytes = Arc::get_mut(arc)
                .expect("Entry::stamp: an entry stamped after being shared (cloned)");
            write(bytes.slice_mut());
        });
    }

    /// Writes the header fields the actor decides, before the entry is published.
    ///
    /// # Panics
    ///
    /// If the entry has already been shared (cloned): the write path stamps an entry
    /// it holds alone, so a shared one is a bug. Copying would hide it, and leave the
    /// other handle with a header that names no version the store ever handed out.
    pub fn stamp(&mut self, version: u64, deadline: u64, slot: u32) {
        self.write(|bytes| {
            bytes[VERSION..VERSION + 8].copy_from_slice(&version.to_le_bytes());
            bytes[DEADLINE..DEADLINE + 8].copy_from_slice(&deadline.to_le_bytes());
            bytes[SLOT..SLOT + 4].copy_from_slice(&slot.to_le_bytes());
        });
    }

    fn key_len(&self) -> usize {
        read_u32(self.bytes(), KEY_LEN) as usize
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.bytes()[HEADER..HEADER + self.key_len()]
    }

    /// The key as text (it was a `&str` when the entry was built).
    pub fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).expect("built from a str")
    }

    /// The value as validated JSON text, served as is: a GET never re-serializes.
    pub fn value(&self) -> &[u8] {
        &self.bytes()[HEADER + self.key_len()..]
    }

    /// Unique per key for the life of the process (the partition's write counter).
    pub fn version(&self) -> u64 {
        read_u64(self.bytes(), VERSION)
    }

    /// Nanoseconds on the store's clock, if the entry has a TTL.
    pub fn deadline(&self) -> Option<u64> {
        let deadline = read_u64(self.bytes(), DEADLINE);
        (deadline != NEVER).then_some(deadline)
    }

    /// The entry's LRU slab index, so a reader can report a hit without a lookup.
    pub fn slot(&self) -> u32 {
        read_u32(self.bytes(), SLOT)
    }

    /// True once `now` has reached the deadline: from then on the entry is a miss.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= read_u64(self.bytes(), DEADLINE)
    }

    /// The approximate memory the entry is charged for.
    pub fn charge(&self) -> u64 {
        charge(self.key_len(), self.value().len())
    }

    /// True if both handles name the same published entry.
    pub fn same(&self, other: &Entry) -> bool {
        self.0.ptr() == other.0.ptr()
    }
}

/// What an entry of these sizes is charged for under `max_memory`.
pub fn charge(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64 + ENTRY_OVERHEAD
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key())
            .field("value", &String::from_utf8_lossy(self.value()))
            .field("version", &self.version())
            .field("deadline", &self.deadline())
            .field("slot", &self.slot())
            .finish()
    }
}

// The skiplist orders and finds entries by key bytes, which order like the `str`s.
impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key_bytes()
    }
}

// Point lookups compare prefixes first (see `key`); same order as the bytes.
impl<'a> Borrow<dyn Ordered + 'a> for Entry {
    fn borrow(&self) -> &(dyn Ordered + 'a) {
        self
    }
}

impl Ordered for Entry {
    /// Read as one word from where the key starts when the allocation holds 8
    /// bytes there (the value follows the key), then masked to the key's length:
    /// no copy of a short key into a padded buffer on every node a lookup passes.
    #[inline]
    fn prefix(&self) -> u64 {
        match self.bytes().get(HEADER..HEADER + 8) {
            Some(word) => key::masked(
                u64::from_be_bytes(word.try_into().expect("8 bytes")),
                self.key_len(),
            ),
            None => key::prefix(self.key_bytes()),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.key_bytes()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes() == other.key_bytes()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// By prefix first, as lookups compare (see `key`): an insert's searches compare an
// entry with the nodes it passes.
impl Ord for Entry {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        key::compare(self, other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_key_and_value_are_intact() {
        let mut entry = Entry::new("clé", br#"{"a":[1,2]}"#);
        assert_eq!(
            (entry.version(), entry.deadline(), entry.slot()),
            (0, None, 0)
        );
        entry.stamp(u64::MAX - 1, 12_345, u32::MAX - 1);
        assert_eq!(entry.key(), "clé");
        assert_eq!(entry.value(), br#"{"a":[1,2]}"#);
        assert_eq!(entry.version(), u64::MAX - 1);
        assert_eq!(entry.deadline(), Some(12_345));
        assert_eq!(entry.slot(), u32::MAX - 1);
        assert!(!entry.is_expired(12_344));
        assert!(entry.is_expired(12_345));
    }

    /// Stamping a shared entry is a bug in the caller: it must fail loudly, not
    /// silently stamp a copy while the other handle keeps the old header.
    #[test]
    #[should_panic(expected = "stamped after being shared")]
    fn stamping_a_shared_entry_panics() {
        let mut entry = Entry::new("k", b"1");
        let _published = entry.clone();
        entry.stamp(7, NEVER, 3);
    }

    #[test]
    fn empty_value_and_order_by_key_bytes() {
        let a = Entry::new("a", b"");
        let b = Entry::new("b", b"zzz");
        assert_eq!(a.value(), b"");
        assert!(a < b);
        assert_eq!(a, Entry::new("a", b"other"));
    }
}

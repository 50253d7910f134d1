//! One stored key and its value, in a single allocation, immutable once published.
//!
//! An `Entry` is a `triomphe::ThinArc<(), u8>`: one 8-byte pointer to an allocation
//! holding a single reference count and the length, then a 13-byte header, the key,
//! the value and, only for an entry with a TTL, its deadline. One allocation per
//! entry is what keeps memory per key low: the skiplist indexes entries by this same
//! pointer (its key borrows the bytes) and the LRU slab holds another reference to
//! it, so the key is stored once. A thin pointer rather than std's `Arc<[u8]>` (a
//! 16-byte fat pointer, and a weak count nobody uses) because both the skiplist node
//! and the slab cell hold one per key: 8 bytes less in each.
//!
//! ## Layout
//! `version` (u64) | `slot` (u32) | key length byte | key | value | [long key's
//! length, u32] | [deadline, u64]. Every byte counts: with 16 bytes of count and length,
//! a 9-byte key and a 42-byte value make 80 bytes, one of mimalloc's size classes,
//! where 81 would take 96. So the version stays 64 bits (ETags, logs and replicas
//! name writes by it, and a restart's epoch lives in its high bits) and the slot 32
//! (a partition may hold more than 2^24 entries), but the key length takes one byte
//! for keys shorter than 127 bytes (`store.max_key_bytes` allows 65,536, which then
//! take four more, after the value), and the deadline is there only if the entry was
//! built with room for one: most caches' keys have no TTL, and those pay nothing for
//! it. The length byte's top bit says whether the room is there. The key always
//! starts at byte 13, so a skiplist comparison reads its 8-byte prefix from a fixed
//! place, masked by the length byte alone (a long key's byte, 127, masks nothing).
//!
//! The HTTP handler builds the entry (the only allocation of a write), with room for
//! a deadline when the write has a TTL, and the actor stamps version, deadline and
//! slot while it still holds the only reference (`Arc::get_mut`), before publishing
//! it. After that a write never changes an entry: it publishes a new one, so a reader
//! holding an `Entry` always sees a whole value, never a torn one, without any lock.

use std::{borrow::Borrow, cmp::Ordering, fmt};

use triomphe::{Arc, ThinArc};

use super::key::{self, Ordered};

/// Deadline meaning "no TTL".
pub const NEVER: u64 = u64::MAX;

/// Approximate bytes an entry costs beyond its key and value: the allocation's
/// count, length and header (29), the skiplist node with its average tower (~32) and
/// the LRU slab cell (16) make 77 by arithmetic; allocator size classes and pages
/// add the rest. Calibrated on `benches/memory_vs_redis.py` (2026-11-29), which
/// measured 142.9 bytes of RSS per key under LRU and 147.1 under W-TinyLFU without
/// its sketch (8 bytes per entry of capacity on top) for 51 bytes of key and value:
/// 92 and 96 bytes of overhead, rounded up with a margin so that `max_memory` bounds
/// what the process really holds (the margin also covers part of what a TTL adds:
/// 8 bytes in the entry and a 24-byte timer node). Used for `max_memory` accounting.
pub const ENTRY_OVERHEAD: u64 = 112;

const VERSION: usize = 0;
const SLOT: usize = 8;
/// The key length byte: the length itself below `LONG_KEY`, else `LONG_KEY` (the
/// length is then a u32 after the value); `HAS_DEADLINE` set when the allocation
/// ends with a deadline.
const KEY_LEN: usize = 12;
const HAS_DEADLINE: u8 = 0x80;
const LONG_KEY: u8 = 0x7f;
const KEY_AT: usize = 13;
const LONG_KEY_BYTES: usize = 4;
const DEADLINE_BYTES: usize = 8;

#[derive(Clone)]
pub struct Entry(ThinArc<(), u8>);

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

impl Entry {
    /// A new, unpublished entry without a TTL: version 0, slot 0 until `stamp`ed.
    pub fn new(key: &str, value: &[u8]) -> Self {
        Self::build(key, value, false)
    }

    /// A new, unpublished entry for a write with `ttl` (whatever its unit): with
    /// room for a deadline if there is one, so that stamping it needs no copy.
    pub fn for_ttl<T>(key: &str, value: &[u8], ttl: Option<T>) -> Self {
        Self::build(key, value, ttl.is_some())
    }

    fn build(key: &str, value: &[u8], deadline: bool) -> Self {
        let long = key.len() >= LONG_KEY as usize;
        let value_at = KEY_AT + key.len();
        let end = value_at + value.len();
        let room =
            if long { LONG_KEY_BYTES } else { 0 } + if deadline { DEADLINE_BYTES } else { 0 };
        // One allocation of the exact size, zeroed (a memset), then the copies:
        // copying byte by byte through an iterator chain measured as a tenth of
        // start-up time when loading a million entries.
        let zeros = std::iter::repeat_n(0u8, end + room);
        let mut entry = Entry(ThinArc::from_header_and_iter((), zeros));
        entry.write(|cells| {
            let length = if long { LONG_KEY } else { key.len() as u8 };
            cells[KEY_LEN] = length | if deadline { HAS_DEADLINE } else { 0 };
            cells[KEY_AT..value_at].copy_from_slice(key.as_bytes());
            cells[value_at..end].copy_from_slice(value);
            if long {
                let key_len = u32::try_from(key.len()).expect("keys are limited far below 4 GiB");
                cells[end..end + LONG_KEY_BYTES].copy_from_slice(&key_len.to_le_bytes());
            }
            if deadline {
                let at = cells.len() - DEADLINE_BYTES;
                cells[at..].copy_from_slice(&NEVER.to_le_bytes());
            }
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
    /// An entry built without room for a deadline that gets one is copied once
    /// into an allocation with room (a write path that did not say it had a TTL).
    ///
    /// # Panics
    ///
    /// If the entry has already been shared (cloned): the write path stamps an entry
    /// it holds alone, so a shared one is a bug. Copying would hide it, and leave the
    /// other handle with a header that names no version the store ever handed out.
    pub fn stamp(&mut self, version: u64, deadline: u64, slot: u32) {
        if deadline != NEVER && !self.has_deadline() {
            self.write(|_| {}); // the same check, before the copy would hide it
            *self = Self::build(self.key(), self.value(), true);
        }
        let room = self.has_deadline();
        self.write(|bytes| {
            bytes[VERSION..VERSION + 8].copy_from_slice(&version.to_le_bytes());
            bytes[SLOT..SLOT + 4].copy_from_slice(&slot.to_le_bytes());
            if room {
                let at = bytes.len() - DEADLINE_BYTES;
                bytes[at..].copy_from_slice(&deadline.to_le_bytes());
            }
        });
    }

    fn has_deadline(&self) -> bool {
        self.bytes()[KEY_LEN] & HAS_DEADLINE != 0
    }

    /// Bytes after the value: a long key's length, then the deadline.
    #[inline]
    fn trailer(&self) -> usize {
        let long = self.bytes()[KEY_LEN] & !HAS_DEADLINE == LONG_KEY;
        let long = if long { LONG_KEY_BYTES } else { 0 };
        long + if self.has_deadline() {
            DEADLINE_BYTES
        } else {
            0
        }
    }

    #[inline]
    fn key_len(&self) -> usize {
        let bytes = self.bytes();
        match bytes[KEY_LEN] & !HAS_DEADLINE {
            LONG_KEY => read_u32(bytes, bytes.len() - self.trailer()) as usize,
            short => short as usize,
        }
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.bytes()[KEY_AT..KEY_AT + self.key_len()]
    }

    /// The key as text (it was a `&str` when the entry was built).
    pub fn key(&self) -> &str {
        std::str::from_utf8(self.key_bytes()).expect("built from a str")
    }

    /// The value as validated JSON text, served as is: a GET never re-serializes.
    pub fn value(&self) -> &[u8] {
        let bytes = self.bytes();
        &bytes[KEY_AT + self.key_len()..bytes.len() - self.trailer()]
    }

    /// Unique per key for the life of the process (the partition's write counter).
    pub fn version(&self) -> u64 {
        read_u64(self.bytes(), VERSION)
    }

    /// The deadline as stored: `NEVER` without one.
    #[inline]
    fn raw_deadline(&self) -> u64 {
        if self.has_deadline() {
            let bytes = self.bytes();
            read_u64(bytes, bytes.len() - DEADLINE_BYTES)
        } else {
            NEVER
        }
    }

    /// Nanoseconds on the store's clock, if the entry has a TTL.
    pub fn deadline(&self) -> Option<u64> {
        let deadline = self.raw_deadline();
        (deadline != NEVER).then_some(deadline)
    }

    /// The entry's LRU slab index, so a reader can report a hit without a lookup.
    pub fn slot(&self) -> u32 {
        read_u32(self.bytes(), SLOT)
    }

    /// True once `now` has reached the deadline: from then on the entry is a miss.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.raw_deadline()
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
        let bytes = self.bytes();
        match bytes.get(KEY_AT..KEY_AT + 8) {
            // A long key's length byte (127) masks nothing, as its length would not.
            Some(word) => key::masked(
                u64::from_be_bytes(word.try_into().expect("8 bytes")),
                usize::from(bytes[KEY_LEN] & !HAS_DEADLINE),
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

    /// Keys either side of the one-byte length, with and without a deadline,
    /// stamped with and without one: key, value and header read back intact.
    #[test]
    fn key_lengths_and_deadline_room_round_trip() {
        for key_len in [0, 1, 7, 8, 9, 126, 127, 128, 1024, 65_536] {
            let key = "k".repeat(key_len);
            for ttl in [None, Some(1)] {
                for deadline in [NEVER, 0, 99] {
                    let mut entry = Entry::for_ttl(&key, b"[1,2]", ttl);
                    entry.stamp(5, deadline, 6);
                    let case = (key_len, ttl, deadline);
                    assert_eq!(entry.key(), key, "{case:?}");
                    assert_eq!(entry.value(), b"[1,2]", "{case:?}");
                    assert_eq!((entry.version(), entry.slot()), (5, 6), "{case:?}");
                    assert_eq!(entry.deadline(), (deadline != NEVER).then_some(deadline));
                    assert_eq!(entry.is_expired(99), deadline != NEVER, "{case:?}");
                    assert_eq!(entry.prefix(), key::prefix(key.as_bytes()), "{case:?}");
                    assert_eq!(entry.charge(), charge(key_len, 5), "{case:?}");
                }
            }
        }
    }

    /// What the layout is for: one pointer per reference, and the memory bench's
    /// entry (a 9-byte key, a 42-byte value) in 80 bytes with the count and length
    /// (mimalloc's 80-byte class; one byte more takes 96). A TTL adds 8.
    #[test]
    fn a_benchmark_entry_fits_in_80_bytes() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 8);
        let value = br#"{"name":"Alice","age":30,"tags":["a","b"]}"#;
        let count_and_length = 16;
        let entry = Entry::new("key123456", value);
        assert_eq!(count_and_length + entry.bytes().len(), 80);
        let expiring = Entry::for_ttl("key123456", value, Some(1));
        assert_eq!(count_and_length + expiring.bytes().len(), 88);
    }
}

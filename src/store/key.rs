//! How a point lookup compares keys in the skiplist: by an 8-byte prefix first.
//!
//! A lookup compares the key it looks for with ~24 nodes of a 5,000-key
//! partition. Comparing them as `[u8]` is a `memcmp` call per node (~22
//! instructions in glibc's for short keys, plus the call and the length
//! tie-break): callgrind put the comparisons at 40% of a batch GET's key. Here
//! each side is first reduced to its first 8 bytes as a big-endian word, zero
//! padded: two words that differ order as the keys do, so most nodes cost a
//! load and a compare; only an equal prefix (the key itself, or keys sharing 8
//! bytes) compares the bytes.
//!
//! Inserts and removes search the same way: `Entry`'s own `Ord` is this one.
//!
//! The skiplist takes a lookup key of any type `Q` its keys `Borrow`; without
//! `unsafe` there is no `&[u8] -> &NewType` cast, so `Q` is the trait object
//! `dyn Ordered`: an `Entry` borrows itself as one (its prefix read from its
//! header's allocation, see `Entry::prefix`), and a `Probe` carries the looked-for
//! key with its prefix computed once.

use std::cmp::Ordering;

/// A key as a point lookup compares it.
pub trait Ordered {
    /// The key's first 8 bytes as a big-endian word, zero padded.
    fn prefix(&self) -> u64;
    /// The whole key.
    fn bytes(&self) -> &[u8];
}

/// The key a lookup looks for.
pub struct Probe<'a> {
    prefix: u64,
    key: &'a [u8],
}

impl<'a> Probe<'a> {
    pub fn new(key: &'a [u8]) -> Self {
        Self {
            prefix: prefix(key),
            key,
        }
    }

    /// As the skiplist takes it.
    pub fn ordered(&self) -> &(dyn Ordered + 'a) {
        self
    }
}

impl Ordered for Probe<'_> {
    fn prefix(&self) -> u64 {
        self.prefix
    }

    fn bytes(&self) -> &[u8] {
        self.key
    }
}

/// `key`'s first 8 bytes as a big-endian word, zero padded.
pub fn prefix(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let len = key.len().min(8);
    word[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(word)
}

/// `word` (8 bytes read from where a key of `len` bytes starts) with the bytes
/// past the key zeroed, as `prefix` pads them.
pub fn masked(word: u64, len: usize) -> u64 {
    match len {
        // `len` 0 masks all: `u64::MAX >> 0` is all ones.
        0..8 => word & !(u64::MAX >> (len * 8)),
        _ => word,
    }
}

/// `a` against `b` in byte order, as `[u8]` orders: prefixes that differ first
/// differ at a byte both keys have, or where the shorter one's padding (0) meets a
/// nonzero byte of the longer one, which then follows it.
///
/// Always inlined: the skiplist's searches call it on every node, and as a call
/// (LLVM left it one) its prologue and epilogue cost as much as the prefixes.
#[inline(always)]
pub fn compare<A, B>(a: &A, b: &B) -> Ordering
where
    A: Ordered + ?Sized,
    B: Ordered + ?Sized,
{
    match a.prefix().cmp(&b.prefix()) {
        Ordering::Equal => a.bytes().cmp(b.bytes()),
        unequal => unequal,
    }
}

impl Ord for dyn Ordered + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}

impl PartialOrd for dyn Ordered + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn Ordered + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.prefix() == other.prefix() && self.bytes() == other.bytes()
    }
}

impl Eq for dyn Ordered + '_ {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Entry;

    /// Keys around the 8-byte boundary, with zero bytes that a zero-padded prefix
    /// could confuse with padding.
    const KEYS: &[&str] = &[
        "",
        "\0",
        "\0\0",
        "a",
        "a\0",
        "a\0\0",
        "a\u{1}",
        "ab",
        "abcdefg",
        "abcdefg\0",
        "abcdefgh",
        "abcdefgh\0",
        "abcdefgha",
        "abcdefgi",
        "abcdefghij",
        "b",
        "é",
        "key0",
        "key10",
        "key9999",
        "\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}\u{7f}",
    ];

    #[test]
    fn orders_as_bytes_do() {
        for a in KEYS {
            for b in KEYS {
                let (probe_a, probe_b) = (Probe::new(a.as_bytes()), Probe::new(b.as_bytes()));
                let expected = a.as_bytes().cmp(b.as_bytes());
                assert_eq!(
                    probe_a.ordered().cmp(probe_b.ordered()),
                    expected,
                    "{a:?} vs {b:?}"
                );
                assert_eq!(
                    probe_a.ordered() == probe_b.ordered(),
                    a == b,
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn an_entry_orders_as_its_probe() {
        for a in KEYS {
            for value in ["", "1", r#"{"long":"enough to read past the key"}"#] {
                let entry = Entry::new(a, value.as_bytes());
                assert_eq!(entry.prefix(), prefix(a.as_bytes()), "{a:?} with {value:?}");
                for b in KEYS {
                    let probe = Probe::new(b.as_bytes());
                    let expected = a.as_bytes().cmp(b.as_bytes());
                    let entry: &dyn Ordered = &entry;
                    assert_eq!(entry.cmp(probe.ordered()), expected, "{a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn masks_past_the_key() {
        let word = u64::from_be_bytes(*b"abcdefgh");
        assert_eq!(masked(word, 0), 0);
        assert_eq!(masked(word, 3), u64::from_be_bytes(*b"abc\0\0\0\0\0"));
        assert_eq!(masked(word, 8), word);
        assert_eq!(masked(word, 30), word);
    }
}

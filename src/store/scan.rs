//! Ordered scans: keys in byte order across all partitions, a page at a time.
//!
//! Each partition's skiplist is already ordered, so a page is a k-way merge of
//! the partitions' walks from the page's lower bound: O(log n) to seek each
//! partition, then one link per key examined (`Shared::step`; a search only when
//! a replace ran during the step). A page stops after `limit` items or
//! `max_examined` keys, whichever comes first, and names the last key it examined;
//! the next page starts strictly after it. So the server keeps nothing between
//! pages, and a key present for the whole scan is returned exactly once: pages
//! are disjoint, and no walk step skips a key a concurrent replace has briefly
//! unlinked.
//!
//! A scan reads as readers do (expired entries and uncommitted transaction
//! writes are not seen), but counts no hits and moves nothing in LRU order.
//! It walks with `lower_bound` and `Entry::next`, never `range()`:
//! crossbeam-skiplist 0.1.3's `RefRange` leaks a node reference per step.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
    ops::Bound,
};

use super::{
    Store,
    entry::Entry,
    glob::Glob,
    shared::{Cursor, Shared},
};

/// Which keys a scan covers: the intersection of all its bounds.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// Keys starting with these bytes.
    pub prefix: Vec<u8>,
    /// Keys at or after this one.
    pub start: Option<Vec<u8>>,
    /// Keys before this one.
    pub end: Option<Vec<u8>>,
    /// Keys matching this pattern.
    pub pattern: Option<Glob>,
    /// Keys strictly after this one (where the previous page stopped).
    pub after: Option<Vec<u8>>,
    /// Most items to return.
    pub limit: usize,
    /// Most keys to examine.
    pub max_examined: usize,
}

/// A partition's place in the merge, ordered by its key (then partition).
struct Head<'a> {
    cursor: Cursor<'a>,
    partition: usize,
}

impl Head<'_> {
    fn entry(&self) -> &Entry {
        self.cursor.key()
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head<'_> {}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_key = self.entry().cmp(other.entry());
        by_key.then(self.partition.cmp(&other.partition))
    }
}

/// One page of a scan.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Entry>,
    /// The last key examined, to continue after; `None` when the scan is done.
    pub next: Option<Vec<u8>>,
}

impl Scan {
    /// The lowest key the page may return: the largest of its lower bounds.
    fn from(&self) -> Bound<&[u8]> {
        let mut from = Bound::Included(self.prefix.as_slice());
        if let Some(start) = self
            .start
            .as_deref()
            .filter(|start| *start > self.prefix.as_slice())
        {
            from = Bound::Included(start);
        }
        if let Some(after) = &self.after {
            let beyond = match from {
                Bound::Included(low) => after.as_slice() >= low,
                _ => true,
            };
            if beyond {
                from = Bound::Excluded(after.as_slice());
            }
        }
        from
    }

    /// True once `key` and every key after it are out of the scan.
    fn past_end(&self, key: &[u8]) -> bool {
        let past_prefix = !key.starts_with(&self.prefix) && key > self.prefix.as_slice();
        past_prefix || self.end.as_deref().is_some_and(|end| key >= end)
    }

    /// Walks `partitions` for one page, as of `now`.
    pub fn page(&self, partitions: &[&Shared], now: u64) -> Page {
        let from = self.from();
        let mut heads: BinaryHeap<Reverse<Head<'_>>> = partitions
            .iter()
            .enumerate()
            .filter_map(|(partition, shared)| {
                let cursor = shared.seek(from)?;
                Some(Reverse(Head { cursor, partition }))
            })
            .collect();
        let mut items = Vec::new();
        let mut examined = 0;
        while let Some(Reverse(head)) = heads.pop() {
            let entry = head.entry().clone();
            if self.past_end(entry.key_bytes()) {
                return Page { items, next: None };
            }
            examined += 1;
            let shared = partitions[head.partition];
            if let Some(cursor) = shared.step(&head.cursor) {
                heads.push(Reverse(Head {
                    cursor,
                    partition: head.partition,
                }));
            }
            if self
                .pattern
                .as_ref()
                .is_none_or(|glob| glob.matches(entry.key_bytes()))
                && let Some(seen) = shared.visible(entry.key_bytes(), Some(entry.clone()))
                && !seen.is_expired(now)
            {
                items.push(seen);
            }
            if items.len() == self.limit || examined == self.max_examined {
                let more = heads
                    .peek()
                    .is_some_and(|Reverse(head)| !self.past_end(head.entry().key_bytes()));
                let next = more.then(|| entry.key_bytes().to_vec());
                return Page { items, next };
            }
        }
        Page { items, next: None }
    }
}

impl Store {
    /// One page of `scan`, across every partition.
    pub fn scan(&self, scan: &Scan) -> Page {
        let partitions: Vec<&Shared> = self.inner.partitions.iter().map(|p| &*p.shared).collect();
        scan.page(&partitions, self.now())
    }
}

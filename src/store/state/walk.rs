//! Snapshots walked in steps: the live entries of a partition handed to its
//! journal least recently used first, a chunk between two messages, while writes
//! go on. The walk keeps its place through the cursor, which moves on before the
//! entry under it is touched or removed. Under W-TinyLFU the regions' lists are
//! walked one after another: window, probation, protected.

use super::{
    super::{
        entry::Entry,
        journal::{Change, Item},
        lru::{Lru, NIL},
    },
    PartitionState,
};

/// A snapshot walk over the LRU list, from least to most recently used.
#[derive(Clone, Copy, Debug)]
pub(super) struct Walk {
    /// The list being walked (W-TinyLFU's regions are walked one after another).
    list: u8,
    /// The next slot to visit (`NIL` when done). Moved on before its entry is
    /// touched or removed, so the walk never loses its place.
    cursor: u32,
    /// The last version given out when the walk started: newer entries are in the
    /// new log and need not be in the snapshot.
    upto: u64,
}

impl PartitionState {
    /// Starts a snapshot: the log switches to a new file here, and `snapshot_step`
    /// then hands the live entries over in chunks. False if one is under way,
    /// there is no journal, or a transaction with a part in the logs it would
    /// replace is not below the ledger's floor yet (the writer asks again).
    pub fn start_snapshot(&mut self) -> bool {
        if self.walk.is_some() {
            return false;
        }
        let Some(journal) = &mut self.journal else {
            return false;
        };
        // The new log says which transactions were whole when it began: the
        // parts of theirs in the logs this snapshot replaces will be gone, so
        // recovery takes them as whole by this floor alone. A part here of a
        // transaction at or above it (closed, but behind an older one still open)
        // would vanish into the snapshot while its other parts, in other logs,
        // would be dropped as those of an unfinished transaction.
        let floor = journal.outbox().health.txns.floor();
        if self.top_part >= floor {
            return false;
        }
        journal.control(Item::SnapshotStart);
        journal.record(Change::TxnFloor { id: floor });
        let mut walk = Walk {
            list: 0,
            cursor: self.lru.tail_of(0),
            upto: self.version,
        };
        next_list(&self.lru, &mut walk);
        self.walk = Some(walk);
        true
    }

    pub fn snapshot_in_progress(&self) -> bool {
        self.walk.is_some()
    }

    /// Walks up to `budget` entries of the snapshot under way and queues them; at
    /// the end, closes the snapshot. Answers whether more remains.
    pub fn snapshot_step(&mut self, budget: usize) -> bool {
        let (Some(walk), Some(journal)) = (&mut self.walk, &mut self.journal) else {
            return false;
        };
        let mut chunk = Vec::with_capacity(budget.min(self.lru.len()));
        for _ in 0..budget {
            let Some(entry) = self.lru.get(walk.cursor) else {
                break;
            };
            if entry.version() <= walk.upto {
                chunk.push(entry.clone());
            }
            walk.cursor = self.lru.toward_head(walk.cursor);
            next_list(&self.lru, walk);
        }
        if !chunk.is_empty() {
            journal.control(Item::SnapshotChunk(chunk));
        }
        if walk.cursor != NIL {
            return true;
        }
        journal.control(Item::SnapshotEnd);
        self.walk = None;
        false
    }

    /// Keeps a snapshot walk's place when the entry under its cursor is about to
    /// move (`touched`) or go: the cursor moves on to the next more recent entry
    /// first, and a touched entry, now the most recent, is visited last. Touching
    /// the most recent entry moves nothing, so the cursor stays on it.
    pub(super) fn step_walk_past(&mut self, slot: u32, touched: bool) {
        let Some(walk) = self.walk.as_mut().filter(|walk| walk.cursor == slot) else {
            return;
        };
        let next = self.lru.toward_head(slot);
        if !(touched && next == NIL) {
            walk.cursor = next;
            next_list(&self.lru, walk);
        }
    }

    /// Keeps a snapshot walk's place when the entry under its cursor is about to
    /// move to another list, which may have been walked already: the entry goes
    /// into the snapshot now and the cursor moves on. (Any other entry that moves
    /// lists is either walked already or moves ahead of the cursor: W-TinyLFU
    /// only moves a region's least recent entry backwards in the walk's order.)
    pub(super) fn walk_past_move(&mut self, slot: u32) {
        let Some(walk) = self.walk.as_mut().filter(|walk| walk.cursor == slot) else {
            return;
        };
        let entry = self
            .lru
            .get(slot)
            .filter(|entry| entry.version() <= walk.upto);
        if let (Some(entry), Some(journal)) = (entry, &mut self.journal) {
            journal.control(Item::SnapshotChunk(vec![entry.clone()]));
        }
        walk.cursor = self.lru.toward_head(slot);
        next_list(&self.lru, walk);
    }
}

/// Moves a walk that reached the end of its list on to the next non-empty list.
fn next_list(lru: &Lru<Entry>, walk: &mut Walk) {
    while walk.cursor == NIL && walk.list + 1 < lru.lists() {
        walk.list += 1;
        walk.cursor = lru.tail_of(walk.list);
    }
}

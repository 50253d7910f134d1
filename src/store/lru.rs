//! The partition's recency order: doubly linked lists threaded through a slab.
//!
//! Entries live in one `Vec` and link to each other by `u32` index, with a free list
//! for reuse, so touch, insert, remove and evict are each O(1) and never allocate once
//! the slab has grown to the partition's size. Indexes double as the entry's identity
//! for the timer wheel and the read buffer, which is why they stay stable for as long
//! as the entry lives (quick-cache's `linked_slab.rs` is the model).

/// Marks "no neighbour" / "empty list" in the index links.
pub const NIL: u32 = u32::MAX;

/// Most lists one slab threads (W-TinyLFU's window, probation and protected).
pub const MAX_LISTS: usize = 3;

/// One slab cell: either a live list node holding a value, or a free cell.
#[derive(Debug)]
struct Node<T> {
    /// Towards the most recently used end (`NIL` at the head).
    prev: u32,
    /// Towards the least recently used end (`NIL` at the tail).
    next: u32,
    /// `None` marks a free cell; `next` then links the free list.
    value: Option<T>,
}

/// One list's ends and length.
#[derive(Clone, Copy, Debug)]
struct Ends {
    /// Most recently used.
    head: u32,
    /// Least recently used: the next eviction victim.
    tail: u32,
    len: usize,
}

const EMPTY: Ends = Ends {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// LRU lists of `T` sharing one slab, with stable `u32` indexes. A plain LRU has
/// one list; W-TinyLFU threads its regions through the same slab as three, and an
/// entry moves between them without changing its index.
#[derive(Debug)]
pub struct Lru<T> {
    nodes: Vec<Node<T>>,
    lists: [Ends; MAX_LISTS],
    /// How many of `lists` are in use.
    count: usize,
    /// Which list each cell is on: kept only with more than one list, so a plain
    /// LRU pays nothing for it.
    owner: Vec<u8>,
    /// First free cell, linked through `next`.
    free: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Self::with_lists(1)
    }
}

impl<T> Lru<T> {
    /// An empty slab threading `count` lists (1 to `MAX_LISTS`).
    pub fn with_lists(count: usize) -> Self {
        assert!((1..=MAX_LISTS).contains(&count), "1 to {MAX_LISTS} lists");
        Self {
            nodes: Vec::new(),
            lists: [EMPTY; MAX_LISTS],
            count,
            owner: Vec::new(),
            free: NIL,
            len: 0,
        }
    }

    /// Entries on all lists.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries on `list`.
    pub fn len_of(&self, list: u8) -> usize {
        self.lists[list as usize].len
    }

    /// Adds `value` as the most recently used entry of list 0 and returns its index.
    pub fn insert(&mut self, value: T) -> u32 {
        self.insert_with(|_| value)
    }

    /// Like `insert`, for values that must know their own index.
    pub fn insert_with(&mut self, make: impl FnOnce(u32) -> T) -> u32 {
        self.insert_with_in(0, make)
    }

    /// Like `insert_with`, onto `list`.
    pub fn insert_with_in(&mut self, list: u8, make: impl FnOnce(u32) -> T) -> u32 {
        let index = self.allocate(make);
        self.link_front(index, list);
        self.len += 1;
        index
    }

    /// Marks `index` most recently used on its list. Stale or free indexes are
    /// ignored: a read reported through the read buffer may name an entry removed
    /// since.
    pub fn touch(&mut self, index: u32) {
        if self.get(index).is_none() {
            return;
        }
        let list = self.list_of(index);
        if self.lists[list as usize].head != index {
            self.unlink(index);
            self.link_front(index, list);
        }
    }

    /// Moves `index` to the most recently used end of `list` (its own or another).
    pub fn move_to_front(&mut self, index: u32, list: u8) {
        if self.get(index).is_none() {
            return;
        }
        self.unlink(index);
        self.link_front(index, list);
    }

    /// The list `index` is on (meaningless for a free index).
    pub fn list_of(&self, index: u32) -> u8 {
        self.owner.get(index as usize).copied().unwrap_or(0)
    }

    /// Removes the entry at `index` and returns its value.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        self.get(index)?;
        self.unlink(index);
        let node = &mut self.nodes[index as usize];
        let value = node.value.take();
        node.next = self.free;
        self.free = index;
        self.len -= 1;
        value
    }

    /// The least recently used entry of list 0, without removing it.
    pub fn peek_lru(&self) -> Option<(u32, &T)> {
        self.peek_tail(0)
    }

    /// The least recently used entry of `list`, without removing it.
    pub fn peek_tail(&self, list: u8) -> Option<(u32, &T)> {
        let tail = self.tail_of(list);
        self.get(tail).map(|value| (tail, value))
    }

    /// Removes and returns the least recently used entry of list 0.
    pub fn pop_lru(&mut self) -> Option<(u32, T)> {
        let tail = self.tail_of(0);
        self.remove(tail).map(|value| (tail, value))
    }

    /// The least recently used index of `list` (`NIL` when empty), where a walk
    /// of it starts.
    pub fn tail_of(&self, list: u8) -> u32 {
        self.lists[list as usize].tail
    }

    /// How many lists this slab threads.
    pub fn lists(&self) -> u8 {
        self.count as u8
    }

    /// The index used just after `index` on its list (`NIL` at the head or for a
    /// free index): one step of a walk from least to most recently used.
    pub fn toward_head(&self, index: u32) -> u32 {
        match self.nodes.get(index as usize) {
            Some(node) if node.value.is_some() => node.prev,
            _ => NIL,
        }
    }

    pub fn get(&self, index: u32) -> Option<&T> {
        self.nodes.get(index as usize)?.value.as_ref()
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.nodes.get_mut(index as usize)?.value.as_mut()
    }

    /// Values list by list, each from most to least recently used (tests and
    /// diagnostics only: O(n)).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.count as u8).flat_map(move |list| self.iter_list(self.lists[list as usize].head))
    }

    /// Values list by list, each from least to most recently used (a snapshot
    /// written in this order restores the order when loaded).
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.count as u8).flat_map(move |list| {
            let mut cursor = self.tail_of(list);
            std::iter::from_fn(move || {
                let node = self.nodes.get(cursor as usize)?;
                cursor = node.prev;
                node.value.as_ref()
            })
        })
    }

    fn iter_list(&self, head: u32) -> impl Iterator<Item = &T> + '_ {
        let mut cursor = head;
        std::iter::from_fn(move || {
            let node = self.nodes.get(cursor as usize)?;
            cursor = node.next;
            node.value.as_ref()
        })
    }

    /// Checks every link invariant; panics with what is wrong. For tests.
    pub fn validate(&self) {
        let mut total = 0;
        for list in 0..self.count {
            total += self.validate_list(list);
        }
        assert_eq!(total, self.len, "len disagrees with the lists");
        let mut free = 0;
        let mut cursor = self.free;
        while cursor != NIL {
            assert!(
                self.nodes[cursor as usize].value.is_none(),
                "live cell on free list"
            );
            cursor = self.nodes[cursor as usize].next;
            free += 1;
        }
        assert_eq!(free + total, self.nodes.len(), "cells lost from the lists");
    }

    fn validate_list(&self, list: usize) -> usize {
        let ends = self.lists[list];
        let mut count = 0;
        let mut prev = NIL;
        let mut cursor = ends.head;
        while cursor != NIL {
            let node = &self.nodes[cursor as usize];
            assert!(
                node.value.is_some(),
                "free cell {cursor} is linked in list {list}"
            );
            assert_eq!(node.prev, prev, "broken back link at {cursor}");
            assert_eq!(self.list_of(cursor) as usize, list, "{cursor} on two lists");
            prev = cursor;
            cursor = node.next;
            count += 1;
            assert!(count <= self.nodes.len(), "cycle in list {list}");
        }
        assert_eq!(prev, ends.tail, "tail of list {list} is not its last node");
        assert_eq!(count, ends.len, "len of list {list} disagrees with it");
        count
    }

    fn allocate(&mut self, make: impl FnOnce(u32) -> T) -> u32 {
        if self.free != NIL {
            let index = self.free;
            let node = &mut self.nodes[index as usize];
            self.free = node.next;
            node.value = Some(make(index));
            return index;
        }
        let index = u32::try_from(self.nodes.len()).expect("more than u32::MAX entries");
        assert!(
            index != NIL,
            "more than u32::MAX - 1 entries in one partition"
        );
        self.nodes.push(Node {
            prev: NIL,
            next: NIL,
            value: Some(make(index)),
        });
        if self.count > 1 {
            self.owner.push(0);
        }
        index
    }

    fn link_front(&mut self, index: u32, list: u8) {
        if self.count > 1 {
            self.owner[index as usize] = list;
        }
        let ends = &mut self.lists[list as usize];
        let old_head = ends.head;
        ends.head = index;
        ends.len += 1;
        if old_head == NIL {
            ends.tail = index;
        } else {
            self.nodes[old_head as usize].prev = index;
        }
        let node = &mut self.nodes[index as usize];
        node.prev = NIL;
        node.next = old_head;
    }

    fn unlink(&mut self, index: u32) {
        let Node { prev, next, .. } = self.nodes[index as usize];
        let ends = &mut self.lists[self.list_of(index) as usize];
        ends.len -= 1;
        if prev == NIL {
            ends.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            ends.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(lru: &Lru<&'static str>) -> Vec<&'static str> {
        lru.iter().copied().collect()
    }

    #[test]
    fn insert_puts_newest_first_and_pops_oldest() {
        let mut lru = Lru::default();
        lru.insert("a");
        lru.insert("b");
        lru.insert("c");
        assert_eq!(order(&lru), ["c", "b", "a"]);
        assert_eq!(lru.pop_lru(), Some((0, "a")));
        assert_eq!(order(&lru), ["c", "b"]);
        lru.validate();
    }

    #[test]
    fn touch_moves_to_front_from_every_position() {
        let mut lru = Lru::default();
        let a = lru.insert("a");
        let b = lru.insert("b");
        let c = lru.insert("c");
        lru.touch(a); // tail
        assert_eq!(order(&lru), ["a", "c", "b"]);
        lru.touch(c); // middle
        assert_eq!(order(&lru), ["c", "a", "b"]);
        lru.touch(c); // head: no change
        assert_eq!(order(&lru), ["c", "a", "b"]);
        assert_eq!(lru.peek_lru(), Some((b, &"b")));
        lru.validate();
    }

    #[test]
    fn removed_cells_are_reused_and_stale_indexes_ignored() {
        let mut lru = Lru::default();
        let a = lru.insert("a");
        lru.insert("b");
        assert_eq!(lru.remove(a), Some("a"));
        assert_eq!(lru.remove(a), None);
        lru.touch(a); // stale: must not relink a free cell
        lru.touch(999);
        lru.validate();
        let c = lru.insert("c");
        assert_eq!(c, a, "free cell reused");
        assert_eq!(order(&lru), ["c", "b"]);
        assert_eq!(lru.len(), 2);
        lru.validate();
    }

    #[test]
    fn empties_completely() {
        let mut lru = Lru::default();
        lru.insert("a");
        lru.insert("b");
        assert!(lru.pop_lru().is_some());
        assert!(lru.pop_lru().is_some());
        assert!(lru.pop_lru().is_none());
        assert!(lru.is_empty());
        assert!(lru.peek_lru().is_none());
        lru.validate();
    }

    #[test]
    fn entries_move_between_lists_and_keep_their_index() {
        let mut lru = Lru::with_lists(3);
        let a = lru.insert_with_in(0, |_| "a");
        let b = lru.insert_with_in(0, |_| "b");
        let c = lru.insert_with_in(1, |_| "c");
        assert_eq!((lru.len_of(0), lru.len_of(1), lru.len_of(2)), (2, 1, 0));
        lru.move_to_front(a, 2);
        assert_eq!(lru.list_of(a), 2);
        assert_eq!(lru.peek_tail(0), Some((b, &"b")));
        lru.move_to_front(b, 1);
        assert_eq!(lru.peek_tail(1), Some((c, &"c")), "b went to the front");
        lru.touch(c);
        assert_eq!(lru.peek_tail(1), Some((b, &"b")));
        assert_eq!(lru.iter().copied().collect::<Vec<_>>(), ["c", "b", "a"]);
        let oldest_first: Vec<_> = lru.iter_oldest_first().copied().collect();
        assert_eq!(oldest_first, ["b", "c", "a"]);
        lru.validate();
        assert_eq!(lru.remove(b), Some("b"));
        assert_eq!(lru.insert_with_in(2, |_| "d"), b, "free cell reused");
        assert_eq!(lru.list_of(b), 2);
        lru.validate();
    }
}

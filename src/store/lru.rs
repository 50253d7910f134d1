//! The partition's recency order: a doubly linked list threaded through a slab.
//!
//! Entries live in one `Vec` and link to each other by `u32` index, with a free list
//! for reuse, so touch, insert, remove and evict are each O(1) and never allocate once
//! the slab has grown to the partition's size. Indexes double as the entry's identity
//! for the timer wheel and the read buffer, which is why they stay stable for as long
//! as the entry lives (quick-cache's `linked_slab.rs` is the model).

/// Marks "no neighbour" / "empty list" in the index links.
pub const NIL: u32 = u32::MAX;

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

/// An LRU list of `T` with stable `u32` indexes.
#[derive(Debug)]
pub struct Lru<T> {
    nodes: Vec<Node<T>>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next eviction victim.
    tail: u32,
    /// First free cell, linked through `next`.
    free: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
        }
    }
}

impl<T> Lru<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` as the most recently used entry and returns its index.
    pub fn insert(&mut self, value: T) -> u32 {
        self.insert_with(|_| value)
    }

    /// Like `insert`, for values that must know their own index.
    pub fn insert_with(&mut self, make: impl FnOnce(u32) -> T) -> u32 {
        let index = self.allocate(make);
        self.link_front(index);
        self.len += 1;
        index
    }

    /// Marks `index` most recently used. Stale or free indexes are ignored: a read
    /// reported through the read buffer may name an entry removed since.
    pub fn touch(&mut self, index: u32) {
        if self.get(index).is_none() || self.head == index {
            return;
        }
        self.unlink(index);
        self.link_front(index);
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

    /// The least recently used entry, without removing it.
    pub fn peek_lru(&self) -> Option<(u32, &T)> {
        let tail = self.tail;
        self.get(tail).map(|value| (tail, value))
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_lru(&mut self) -> Option<(u32, T)> {
        let tail = self.tail;
        self.remove(tail).map(|value| (tail, value))
    }

    /// The least recently used index (`NIL` when empty), where a walk starts.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// The index used just after `index` (`NIL` at the head or for a free index):
    /// one step of a walk from least to most recently used.
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

    /// Values from most to least recently used (tests and diagnostics only: O(n)).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let mut cursor = self.head;
        std::iter::from_fn(move || {
            let node = self.nodes.get(cursor as usize)?;
            cursor = node.next;
            node.value.as_ref()
        })
    }

    /// Values from least to most recently used (a snapshot written in this order
    /// restores the order when loaded).
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = &T> + '_ {
        let mut cursor = self.tail;
        std::iter::from_fn(move || {
            let node = self.nodes.get(cursor as usize)?;
            cursor = node.prev;
            node.value.as_ref()
        })
    }

    /// Checks every link invariant; panics with what is wrong. For tests.
    pub fn validate(&self) {
        let mut count = 0;
        let mut prev = NIL;
        let mut cursor = self.head;
        while cursor != NIL {
            let node = &self.nodes[cursor as usize];
            assert!(
                node.value.is_some(),
                "free cell {cursor} is linked in the list"
            );
            assert_eq!(node.prev, prev, "broken back link at {cursor}");
            prev = cursor;
            cursor = node.next;
            count += 1;
            assert!(count <= self.nodes.len(), "cycle in the list");
        }
        assert_eq!(prev, self.tail, "tail is not the last node");
        assert_eq!(count, self.len, "len disagrees with the list");
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
        assert_eq!(free + count, self.nodes.len(), "cells lost from both lists");
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
        index
    }

    fn link_front(&mut self, index: u32) {
        let old_head = self.head;
        let node = &mut self.nodes[index as usize];
        node.prev = NIL;
        node.next = old_head;
        if old_head == NIL {
            self.tail = index;
        } else {
            self.nodes[old_head as usize].prev = index;
        }
        self.head = index;
    }

    fn unlink(&mut self, index: u32) {
        let Node { prev, next, .. } = self.nodes[index as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
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
}

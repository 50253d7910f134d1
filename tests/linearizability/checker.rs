//! The linearizability check: Wing & Gong's search with Lowe's memoization, as in
//! porcupine (Anish Athalye's Go checker).
//!
//! Keys are independent registers, so a history is split by key and each key's
//! sub-history is checked alone (linearizability is compositional). For one key, the
//! call and return events are put in a doubly linked list in time order (a call
//! before a return at the same instant: touching intervals count as concurrent, which
//! can only accept more). The search walks the list: at a call it tries to linearize
//! that operation now (the model must accept its answer), and if so lifts its two
//! events out of the list and starts again from the head; at a return it has met an
//! operation that should already have been linearized, so it backtracks, putting the
//! last lifted operation back and trying its other outcomes and then the next call.
//! The memo of (linearized set, register state) pairs already explored is what makes
//! this practical; two reductions keep it small:
//! - the memo key stores the linearized set without its leading all-ones and trailing
//!   all-zero words, so it is a few words however long the history;
//! - in a history where every operation was answered, an operation that leaves the
//!   register as it was (a GET, a refused compare-and-set, a DELETE of an absent key)
//!   and is legal now never needs to be tried later: such an answer is legal in one
//!   state only, so any order that places it later can place it here instead, and
//!   backtracking over it goes on backtracking. (Unanswered operations make a state's
//!   version unknown, and that argument would need more care, so it is not used then.)
//!
//! The search gives up with a panic after `MAX_STEPS`, rather than hang.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
};

use crate::{history::Op, model::Register};

/// Events examined before the search gives up on one key.
pub const MAX_STEPS: u64 = 20_000_000;

/// Why a key's sub-history is not linearizable.
#[derive(Debug)]
pub struct Violation {
    pub key: String,
    /// The key's operations, by call time.
    pub ops: Vec<Op>,
    /// Which of `ops` the deepest partial linearization had placed.
    pub linearized: Vec<bool>,
    /// The register after that partial linearization.
    pub state: String,
    /// The operation no order could place before it returned (index into `ops`).
    pub stuck: usize,
}

/// Checks every key's sub-history; the first violation, by key, if any.
pub fn check(history: &[Op]) -> Result<(), Box<Violation>> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    by_key.into_iter().try_for_each(|(_, ops)| check_key(ops))
}

/// Checks one key's operations.
pub fn check_key(mut ops: Vec<Op>) -> Result<(), Box<Violation>> {
    ops.sort_by_key(|op| (op.call, op.ret_or_never()));
    match Search::new(&ops).run() {
        Ok(()) => Ok(()),
        Err(deepest) => Err(Box::new(Violation {
            key: ops.first().map(|op| op.key.clone()).unwrap_or_default(),
            linearized: (0..ops.len())
                .map(|id| deepest.linearized.get(id))
                .collect(),
            state: format!("{:?}", deepest.state.current),
            stuck: deepest.stuck,
            ops,
        })),
    }
}

/// One event: an operation's call or its return.
#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// The events in time order, as a list threaded through a `Vec` (index 0 is the
/// head sentinel; `NIL` ends the list). Lifting unlinks an operation's two events;
/// unlifting, in the reverse order, links them back where they were.
struct Events {
    events: Vec<Event>,
    /// Each operation's (call, return) event indexes.
    slots: Vec<(usize, usize)>,
}

const NIL: usize = usize::MAX;

impl Events {
    fn new(ops: &[Op]) -> Events {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (id, op) in ops.iter().enumerate() {
            order.push((op.call, false, id)); // false sorts first: calls before returns
            order.push((op.ret_or_never(), true, id));
        }
        order.sort_unstable();
        let head = Event {
            op: NIL,
            is_call: false,
            prev: NIL,
            next: NIL,
        };
        let mut events = vec![head];
        let mut slots = vec![(0, 0); ops.len()];
        for (at, &(_, is_return, op)) in order.iter().enumerate() {
            let index = at + 1;
            events[index - 1].next = index;
            events.push(Event {
                op,
                is_call: !is_return,
                prev: index - 1,
                next: NIL,
            });
            if is_return {
                slots[op].1 = index
            } else {
                slots[op].0 = index
            }
        }
        Events { events, slots }
    }

    fn first(&self) -> usize {
        self.events[0].next
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.slots[op];
        for index in [call, ret] {
            let Event { prev, next, .. } = self.events[index];
            self.events[prev].next = next;
            if next != NIL {
                self.events[next].prev = prev;
            }
        }
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.slots[op];
        for index in [ret, call] {
            let Event { prev, next, .. } = self.events[index];
            self.events[prev].next = index;
            if next != NIL {
                self.events[next].prev = index;
            }
        }
    }
}

/// A set of operation ids.
#[derive(Clone)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn get(&self, id: usize) -> bool {
        self.0[id / 64] & (1 << (id % 64)) != 0
    }

    fn flip(&mut self, id: usize) {
        self.0[id / 64] ^= 1 << (id % 64);
    }

    /// The set without its leading full words (counted) and trailing empty ones.
    fn compact(&self) -> (usize, Vec<u64>) {
        let lead = self.0.iter().take_while(|&&word| word == u64::MAX).count();
        let end = self
            .0
            .iter()
            .rposition(|&word| word != 0)
            .map_or(lead, |last| last + 1);
        (lead, self.0[lead..end.max(lead)].to_vec())
    }
}

/// The deepest point the search reached before it had to backtrack.
struct Deepest<'h> {
    depth: usize,
    linearized: Bitset,
    state: Register<'h>,
    stuck: usize,
}

/// A linearization in progress: the operation placed, and the state before it.
struct Frame<'h> {
    op: usize,
    before: Register<'h>,
    /// Placed without changing the register, in a search that may skip past it.
    settled: bool,
}

struct Search<'h> {
    ops: &'h [Op],
    events: Events,
    state: Register<'h>,
    linearized: Bitset,
    memo: HashSet<((usize, Vec<u64>), Register<'h>)>,
    stack: Vec<Frame<'h>>,
    deepest: Option<Deepest<'h>>,
    /// Every operation was answered, so settled frames need no second try.
    reduce: bool,
}

impl<'h> Search<'h> {
    fn new(ops: &'h [Op]) -> Search<'h> {
        Search {
            ops,
            events: Events::new(ops),
            state: Register::default(),
            linearized: Bitset(vec![0; ops.len().div_ceil(64)]),
            memo: HashSet::new(),
            stack: Vec::new(),
            deepest: None,
            reduce: ops.iter().all(|op| op.ret.is_some()),
        }
    }

    fn run(mut self) -> Result<(), Deepest<'h>> {
        let mut cursor = self.events.first();
        let mut steps = 0u64;
        while cursor != NIL {
            steps += 1;
            self.give_up_after(steps);
            let Event {
                op, is_call, next, ..
            } = self.events.events[cursor];
            cursor = if !is_call {
                self.note_stuck(op);
                match self.backtrack() {
                    Some(op) => self.events.slots[op].0, // its other outcomes, then later calls
                    None => return Err(self.deepest.expect("noted before backtracking")),
                }
            } else if self.linearize(op) {
                self.events.first()
            } else {
                next
            };
        }
        Ok(())
    }

    /// Places `op` next if some outcome of it is legal and not yet explored.
    fn linearize(&mut self, op: usize) -> bool {
        self.linearized.flip(op);
        let key = self.linearized.compact();
        let ops: &'h [Op] = self.ops;
        let fresh = self
            .state
            .step(&ops[op])
            .into_iter()
            .find(|next| self.memo.insert((key.clone(), *next)));
        let Some(next) = fresh else {
            self.linearized.flip(op);
            return false;
        };
        let settled = self.reduce && next == self.state;
        self.stack.push(Frame {
            op,
            before: self.state,
            settled,
        });
        self.state = next;
        self.events.lift(op);
        true
    }

    /// Undoes placements back to one worth trying otherwise; returns that operation.
    fn backtrack(&mut self) -> Option<usize> {
        loop {
            let Frame {
                op,
                before,
                settled,
            } = self.stack.pop()?;
            self.state = before;
            self.linearized.flip(op);
            self.events.unlift(op);
            if !settled {
                return Some(op);
            }
        }
    }

    fn note_stuck(&mut self, op: usize) {
        let depth = self.stack.len();
        if self
            .deepest
            .as_ref()
            .is_none_or(|deepest| depth > deepest.depth)
        {
            self.deepest = Some(Deepest {
                depth,
                linearized: self.linearized.clone(),
                state: self.state,
                stuck: op,
            });
        }
    }

    fn give_up_after(&self, steps: u64) {
        assert!(
            steps <= MAX_STEPS,
            "linearizability search gave up after {MAX_STEPS} steps on key {:?} ({} ops): \
             record fewer operations, or fewer clients at once",
            self.ops
                .first()
                .map(|op| op.key.as_str())
                .unwrap_or_default(),
            self.ops.len(),
        );
    }
}

impl Violation {
    /// The operations around the one that could not be placed: those overlapping it,
    /// and the last few that returned before it was sent.
    pub fn around(&self) -> (Vec<&Op>, Vec<&Op>) {
        let stuck = &self.ops[self.stuck];
        let overlapping = (self.ops.iter().enumerate())
            .filter(|&(id, op)| id != self.stuck && op.overlaps(stuck))
            .map(|(_, op)| op)
            .collect();
        let mut before: Vec<&Op> = (self.ops.iter())
            .filter(|op| op.ret_or_never() < stuck.call)
            .collect();
        before.sort_by_key(|op| op.ret_or_never());
        let recent = before.split_off(before.len().saturating_sub(4));
        (overlapping, recent)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let placed = self.linearized.iter().filter(|&&placed| placed).count();
        let (overlapping, before) = self.around();
        let ops = self.ops.len();
        writeln!(
            f,
            "key {:?}: not linearizable ({ops} operations).",
            self.key
        )?;
        writeln!(
            f,
            "The deepest partial linearization placed {placed}, leaving {}.",
            self.state
        )?;
        writeln!(f, "No order places this one before it returned:")?;
        writeln!(f, "    {}", self.ops[self.stuck])?;
        writeln!(f, "Overlapping it:")?;
        overlapping
            .iter()
            .try_for_each(|op| writeln!(f, "    {op}"))?;
        writeln!(f, "The last to return before it was sent:")?;
        before.iter().try_for_each(|op| writeln!(f, "    {op}"))
    }
}

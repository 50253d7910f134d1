//! Shrinking a violation to a small witness: a sub-history of the recorded one that
//! is still not linearizable, is linearizable without its culprits (the operation the
//! search got stuck on, and any overlapping ones that fail the same way), so those are
//! the fault and not an artifact of the cut, and keeps every operation overlapping a
//! culprit (the concurrency that explains it).
//!
//! A sub-history can be non-linearizable for reasons of its own (keep a read, drop the
//! write it read), which is why the second condition is checked at every cut.

use std::collections::HashSet;

use crate::{
    checker::{Violation, check_key},
    history::{Op, Output},
};

/// Most sub-histories checked while shrinking; past it the witness is just larger.
const MAX_TRIES: usize = 200;

/// Most culprits at one moment (say, several reads missing the same key at once).
const MAX_CULPRITS: usize = 8;

/// A small sub-history showing `violation`, or `None` if no cut keeps it honest.
pub fn witness(violation: &Violation) -> Option<Vec<Op>> {
    let stuck = &violation.ops[violation.stuck];
    // Nothing invoked after the culprit returned is needed to place what came before.
    let ops: Vec<Op> = (violation.ops.iter())
        .filter(|op| op.call <= stuck.ret_or_never())
        .cloned()
        .collect();
    let culprits = culprits(&ops, stuck)?;
    // Most often the first operation (it created the key) and those overlapping a
    // culprit are enough; else cut the prefix by bisection.
    let around = keep(&ops, |at, op| at == 0 || overlaps_any(op, &culprits));
    let ops = if shows_fault(&around, &culprits) {
        around
    } else {
        drop_prefix(ops, &culprits)
    };
    Some(drop_chunks(ops, &culprits))
}

/// `ops` without chunks of operations (halves, then quarters...) not overlapping a
/// culprit, as long as the fault still shows.
fn drop_chunks(mut ops: Vec<Op>, culprits: &[Op]) -> Vec<Op> {
    let mut tries = 0;
    let mut chunk = ops.len() / 2;
    while chunk > 0 && tries < MAX_TRIES {
        let mut at = 0;
        while at < ops.len() && tries < MAX_TRIES {
            let end = (at + chunk).min(ops.len());
            let kept = keep(&ops, |i, op| {
                !(at..end).contains(&i) || overlaps_any(op, culprits)
            });
            tries += 1;
            if kept.len() < ops.len() && shows_fault(&kept, culprits) {
                ops = kept;
            } else {
                at = end;
            }
        }
        chunk /= 2;
    }
    ops
}

/// `stuck` and the operations overlapping it that must also go before the rest of
/// `ops` is linearizable; `None` if something else is wrong with `ops`.
fn culprits(ops: &[Op], stuck: &Op) -> Option<Vec<Op>> {
    let mut culprits = vec![stuck.clone()];
    while culprits.len() <= MAX_CULPRITS {
        let rest: Vec<Op> = ops
            .iter()
            .filter(|op| !culprits.contains(op))
            .cloned()
            .collect();
        match check_key(rest) {
            Ok(()) => return Some(culprits),
            Err(violation) => {
                let next = &violation.ops[violation.stuck];
                next.overlaps(stuck).then_some(())?;
                culprits.push(next.clone());
            }
        }
    }
    None
}

/// `ops` without the longest run after the first operation whose removal keeps the
/// fault, by bisection: a failing check searches everything before the fault, so the
/// long prefix of a recorded history goes first, in a few checks rather than hundreds.
fn drop_prefix(ops: Vec<Op>, culprits: &[Op]) -> Vec<Op> {
    let limit = (ops.iter())
        .position(|op| culprits.iter().any(|c| op.overlaps(c)))
        .unwrap_or(ops.len());
    let keep_from = |from: usize| keep(&ops, |at, _| at == 0 || at >= from);
    // Dropping ops[1..good] keeps the fault; dropping ops[1..bad] does not (or is not allowed).
    let (mut good, mut bad) = (1, limit.max(1) + 1);
    while bad - good > 1 {
        let middle = (good + bad) / 2;
        if shows_fault(&keep_from(middle), culprits) {
            good = middle;
        } else {
            bad = middle;
        }
    }
    keep_from(good.min(ops.len()))
}

/// The operations `wanted` (by index), less the reads that name a version no write
/// kept produced: cutting a write must cut what was read of it, or the cut itself
/// would be the fault.
fn keep(ops: &[Op], wanted: impl Fn(usize, &Op) -> bool) -> Vec<Op> {
    let kept: Vec<&Op> = (ops.iter().enumerate())
        .filter(|&(at, op)| wanted(at, op))
        .map(|(_, op)| op)
        .collect();
    let written: HashSet<u64> = (kept.iter())
        .filter_map(|op| match op.output {
            Output::Written { version, .. } => Some(version),
            _ => None,
        })
        .collect();
    let named = |op: &Op| match op.output {
        Output::Found { version, .. } => Some(version),
        Output::PreconditionFailed { current } => current,
        _ => None,
    };
    (kept.into_iter())
        .filter(|op| named(op).is_none_or(|version| written.contains(&version)))
        .cloned()
        .collect()
}

fn overlaps_any(op: &Op, culprits: &[Op]) -> bool {
    culprits.iter().any(|culprit| op.overlaps(culprit))
}

fn shows_fault(ops: &[Op], culprits: &[Op]) -> bool {
    let rest: Vec<Op> = ops
        .iter()
        .filter(|op| !culprits.contains(op))
        .cloned()
        .collect();
    check_key(ops.to_vec()).is_err() && check_key(rest).is_ok()
}

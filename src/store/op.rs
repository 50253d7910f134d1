//! Groups of operations: what batches and transactions hand the store, and what
//! each operation came to.
//!
//! A transaction is a list of `Op`s, a batch a list of `BatchOp`s (whose gets
//! borrow their keys from the request). The store sends each partition the ops on
//! its keys, in their order, as one `Apply` message; a batch's gets of keys it does
//! not write earlier are read lock-free instead. Nothing here knows about HTTP:
//! the handlers build ops from JSON and map outcomes to statuses.

use std::{
    borrow::Cow,
    sync::{Arc, atomic::AtomicBool},
};

use actix::Message;

use super::{
    StoreError,
    entry::Entry,
    journal::Durable,
    messages::{Delete, Put, Reply, Written},
};

/// One operation of a batch or a transaction branch.
#[derive(Debug)]
pub enum Op {
    Get { key: Box<str> },
    Put(Put),
    Delete(Delete),
}

impl Op {
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get { key } => key.as_bytes(),
            Op::Put(put) => put.entry.key_bytes(),
            Op::Delete(delete) => delete.key.as_bytes(),
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// One op of a batch as the handler read it. A get borrows its key from the
/// request: most are read lock-free and never leave the handler, so an owned key
/// (an allocation and a copy each, ~100 instructions, callgrind) is made only for
/// the few sent to a partition after a write of the same key.
#[derive(Debug)]
pub enum BatchOp<'a> {
    Get(Cow<'a, str>),
    Op(Op),
}

impl BatchOp<'_> {
    /// As a group's op, owning its key.
    pub fn into_op(self) -> Op {
        match self {
            BatchOp::Get(key) => Op::Get { key: key.into() },
            BatchOp::Op(op) => op,
        }
    }
}

/// What one op came to.
#[derive(Debug)]
pub enum Outcome {
    /// A get found the entry.
    Found(Entry),
    /// A get or delete found no live entry.
    Missing,
    Written(Written),
    /// A delete removed the entry of this version.
    Deleted(u64),
    /// A write that did not happen: a failed precondition, a refused write.
    Failed(StoreError),
}

/// A condition on one key that a transaction compares before choosing its branch.
#[derive(Clone, Debug, PartialEq)]
pub enum Compare {
    /// The key is live with this version.
    Version(u64),
    /// The key is live (`true`) or absent (`false`).
    Exists(bool),
    /// The key is live and its value equals this JSON value (as JSON, not bytes).
    Value(serde_json::Value),
}

impl Compare {
    /// Whether the condition holds for the key's live entry, if any.
    pub fn holds(&self, current: Option<&Entry>) -> bool {
        match (self, current) {
            (Compare::Exists(wanted), current) => *wanted == current.is_some(),
            (_, None) => false,
            (Compare::Version(version), Some(entry)) => entry.version() == *version,
            (Compare::Value(value), Some(entry)) => {
                serde_json::from_slice::<serde_json::Value>(entry.value())
                    .is_ok_and(|stored| json_eq(&stored, value))
            }
        }
    }
}

/// Equality of JSON values as JSON means it: objects whatever their member order,
/// and numbers by value (`1`, `1.0` and `1e0` are one number), which
/// `serde_json::Value`'s own equality does not give for integers and floats.
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, v)| y.get(key).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::json_eq;

    #[test]
    fn json_equality_is_by_value() {
        let equal = [
            (json!(1), json!(1.0)),
            (json!(100), serde_json::from_str("1e2").unwrap()),
            (
                json!({"a": 1, "b": [true, null]}),
                json!({"b": [true, null], "a": 1.0}),
            ),
            (json!("é"), serde_json::from_str("\"\\u00e9\"").unwrap()),
            (json!(u64::MAX), json!(u64::MAX)),
        ];
        for (a, b) in equal {
            assert!(json_eq(&a, &b), "{a} == {b}");
        }
        let different = [
            (json!(1), json!("1")),
            (json!(1), json!(1.5)),
            (json!([1, 2]), json!([2, 1])),
            (json!({"a": 1}), json!({"a": 1, "b": 2})),
            (json!(null), json!(false)),
            (json!(u64::MAX), json!(u64::MAX - 1)),
        ];
        for (a, b) in different {
            assert!(!json_eq(&a, &b), "{a} != {b}");
        }
    }
}

/// The transaction an `Apply` belongs to: the partition records, for each key it
/// writes, what readers see until `committed` is set.
#[derive(Clone, Debug)]
pub struct TxnMark {
    pub id: u64,
    /// How many partitions the transaction writes (its parts in the logs).
    pub parts: u32,
    pub committed: Arc<AtomicBool>,
}

/// Apply these ops of one partition, in order. With `txn`, the partition is
/// locked by that transaction and its writes stay invisible until commit.
#[derive(Debug, Message)]
#[rtype(result = "Reply<Applied>")]
pub struct Apply {
    /// Each op with its index in the whole group.
    pub ops: Vec<(usize, Op)>,
    pub txn: Option<TxnMark>,
}

/// The outcomes of an `Apply`, by index, and the ticket its writes' records wait on.
pub type Applied = (Vec<(usize, Outcome)>, Option<Durable>);

/// Take the partition for transaction `txn`: writes that arrive meanwhile wait.
#[derive(Debug, Message)]
#[rtype(result = "Reply<()>")]
pub struct Lock {
    pub txn: u64,
}

/// Publish transaction `txn`'s writes to readers (it is committed) and let the
/// writes that waited run.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Release {
    pub txn: u64,
}

//! The partition's whole write API: the messages its actor answers, and their results.
//!
//! Reads are not messages (they go through `Shared::get`); everything that changes a
//! partition is one of these, applied by the owning actor one at a time.

use actix::Message;
use tokio::sync::oneshot;

use super::{
    entry::Entry,
    journal::{Durable, Refused},
};

/// An actor's answer: now, or later when the partition is held by a transaction
/// (the write waits in the partition's queue, in arrival order).
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl<T> Reply<T> {
    /// The answer, once there is one; `None` if the partition's actor went away
    /// before answering.
    pub async fn get(self) -> Option<T> {
        match self {
            Reply::Now(answer) => Some(answer),
            Reply::Later(later) => later.await.ok(),
        }
    }
}

/// An entity-tag list from `If-Match` / `If-None-Match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tags {
    /// `*`: any current version.
    Any,
    /// Specific versions.
    Versions(Vec<u64>),
}

impl Tags {
    pub fn matches(&self, version: u64) -> bool {
        match self {
            Tags::Any => true,
            Tags::Versions(versions) => versions.contains(&version),
        }
    }
}

/// Conditions a write must meet against the key's current version, checked by the
/// actor so that check and write are atomic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Precondition {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

impl Precondition {
    /// Whether a write may proceed when the key's live version is `current`.
    pub fn allows(&self, current: Option<u64>) -> bool {
        let match_ok = match (&self.if_match, current) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(tags), Some(version)) => tags.matches(version),
        };
        let none_match_ok = match (&self.if_none_match, current) {
            (None, _) | (Some(_), None) => true,
            (Some(tags), Some(version)) => !tags.matches(version),
        };
        match_ok && none_match_ok
    }
}

/// The precondition did not hold; `current` is the key's live version, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreconditionFailed {
    pub current: Option<u64>,
}

/// Why a write message was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    PreconditionFailed(PreconditionFailed),
    /// The node refuses writes (its log cannot write); nothing was applied.
    Refused(Refused),
    /// The store follows a primary: clients write there, not here.
    Following,
}

impl From<PreconditionFailed> for WriteError {
    fn from(failed: PreconditionFailed) -> Self {
        WriteError::PreconditionFailed(failed)
    }
}

/// A write the actor applied: its outcome, and with persistence on, the ticket to
/// await before acknowledging it.
pub type Applied<T> = Result<(T, Option<Durable>), WriteError>;

/// Insert or replace the entry's key with it. The entry is unpublished (built by
/// the handler with `Entry::for_ttl(.., ttl)`, so it has room for a deadline when
/// `ttl` is set); the actor stamps its version, deadline and slot.
#[derive(Debug, Message)]
#[rtype(result = "Reply<Applied<Written>>")]
pub struct Put {
    pub entry: Entry,
    /// Time to live in nanoseconds; `None` means no expiry.
    pub ttl: Option<u64>,
    pub precondition: Precondition,
}

/// What a successful `Put` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// False when it replaced a live entry.
    pub created: bool,
    pub version: u64,
}

/// Remove `key`. Answers the removed entry's version, or `None` if it was absent.
#[derive(Debug, Message)]
#[rtype(result = "Reply<Applied<Option<u64>>>")]
pub struct Delete {
    pub key: Box<str>,
    pub precondition: Precondition,
}

/// Apply changes as the primary made them (a replica's stream), in order. With
/// `txn`, they are this partition's part of one of the primary's transactions:
/// the partition is held for it and readers see the part only once it commits.
/// Without, a partition held by a (read-only) transaction queues them.
#[derive(Debug, Message)]
#[rtype(result = "Reply<Option<Durable>>")]
pub struct Replay {
    pub changes: Vec<super::tap::Replica>,
    pub txn: Option<super::op::TxnMark>,
}

/// Remove every entry (a replica starting a full copy). Answers once done, with
/// the ticket for the removals' records.
#[derive(Debug, Message)]
#[rtype(result = "Option<Durable>")]
pub struct Clear;

/// Answers once every message sent before it was handled: a point after which
/// the partition sees a flag the sender set before sending it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Barrier;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precondition_table() {
        let any = Some(Tags::Any);
        let v3 = Some(Tags::Versions(vec![3]));
        let cases = [
            (None, None, None, true),
            (None, None, Some(3), true),
            (any.clone(), None, None, false),
            (any.clone(), None, Some(1), true),
            (v3.clone(), None, Some(3), true),
            (v3.clone(), None, Some(4), false),
            (None, any.clone(), None, true),
            (None, any.clone(), Some(1), false),
            (None, v3.clone(), Some(3), false),
            (None, v3.clone(), Some(4), true),
        ];
        for (if_match, if_none_match, current, expected) in cases {
            let pre = Precondition {
                if_match: if_match.clone(),
                if_none_match: if_none_match.clone(),
            };
            assert_eq!(pre.allows(current), expected, "{pre:?} on {current:?}");
        }
    }
}

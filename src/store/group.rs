//! Batches and transactions: many ops, one message per partition they touch.
//!
//! A batch is not atomic: each op is, and ops on one key take effect in the
//! order given. Its gets of keys it does not write earlier are read lock-free
//! before anything is sent; everything else goes to the key's partition in one
//! `Apply` per partition, all partitions at once.
//!
//! A transaction takes every partition it may touch (its compares' keys and both
//! branches' keys), one at a time in ascending order, so two transactions never
//! wait on each other in a cycle; writes that arrive meanwhile queue behind it in
//! each partition's actor, in arrival order, so neither side starves. Holding all
//! of them it reads its compares, applies the chosen branch partition by
//! partition, each write recorded as an intent (see `shared`), then sets its commit
//! flag, which makes all its writes visible to readers at once, and releases the
//! partitions. It runs as its own task, so a client that leaves mid-way cannot
//! leave partitions held. A replica applies its primary's transactions the same
//! way (`apply_txn`), with the primary's changes in place of ops.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
};

use actix::Addr;
use futures_util::future::join_all;
use tokio::sync::oneshot;

use super::{
    Replica, Store, StoreError,
    messages::Replay,
    op::{Apply, BatchOp, Compare, Lock, Op, Outcome, Release, TxnMark},
    partition::Partition,
};

/// A transaction: when every compare holds, `success` runs, else `failure`.
#[derive(Debug, Default)]
pub struct Txn {
    pub compares: Vec<(Box<str>, Compare)>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// What a transaction did: which branch, and its ops' outcomes in order.
#[derive(Debug)]
pub struct TxnDone {
    pub succeeded: bool,
    pub outcomes: Vec<Outcome>,
}

impl Store {
    /// Applies `ops` in order per key, each atomic on its own; one outcome per op.
    pub async fn batch(&self, ops: Vec<BatchOp<'_>>) -> Vec<Outcome> {
        // Every slot is overwritten: a get read here, or an op sent below.
        let mut outcomes: Vec<Outcome> = ops.iter().map(|_| Outcome::Missing).collect();
        let now = self.now();
        // Only a write that a later get may read is remembered: a batch of writes
        // alone hashes and copies none of its keys.
        let last_get = ops.iter().rposition(|op| matches!(op, BatchOp::Get(_)));
        let mut written: HashSet<Box<[u8]>> = HashSet::new();
        let mut sent = Vec::new();
        // Each lookup pins the epoch; with this pin held they only nest in it, which
        // spares each its own fence and release.
        let pinned = crossbeam::epoch::pin();
        for (index, op) in ops.into_iter().enumerate() {
            match op {
                BatchOp::Get(key) if !written.contains(key.as_bytes()) => {
                    let shared = &self.partition(key.as_bytes()).shared;
                    outcomes[index] = found(shared.get(&key, now));
                }
                get @ BatchOp::Get(_) => sent.push((index, get.into_op())),
                BatchOp::Op(op) => {
                    if last_get.is_some_and(|last| index < last) {
                        written.insert(op.key().into());
                    }
                    sent.push((index, op));
                }
            }
        }
        drop(pinned);
        let sends = self
            .by_partition(sent.into_iter(), |(_, op)| op.key())
            .into_iter()
            .map(|(partition, ops)| self.apply_on(partition, None, ops, None));
        for (index, outcome) in join_all(sends).await.into_iter().flatten() {
            outcomes[index] = outcome;
        }
        outcomes
    }

    /// Runs `txn` atomically with respect to every other write and transaction.
    pub async fn txn(&self, txn: Txn) -> Result<TxnDone, StoreError> {
        let (done, answer) = oneshot::channel();
        let store = self.clone();
        actix::spawn(async move {
            let _ = done.send(store.run_txn(txn).await);
        });
        answer.await.unwrap_or(Err(StoreError::Unavailable))
    }

    async fn run_txn(&self, txn: Txn) -> Result<TxnDone, StoreError> {
        // A replica runs only transactions that cannot write.
        let writes = txn.success.iter().chain(&txn.failure).any(Op::is_write);
        if let Some(primary) = self.following().filter(|_| writes) {
            return Err(StoreError::Following(primary));
        }
        let ledger = &self.inner.health.txns;
        let id = ledger.open();
        let held = match self.lock_all(&txn, id).await {
            Ok(held) => held,
            Err(error) => {
                ledger.close(id);
                return Err(error);
            }
        };
        let now = self.now();
        let succeeded = txn.compares.iter().all(|(key, compare)| {
            let shared = &self.partition(key.as_bytes()).shared;
            compare.holds(shared.current(key.as_bytes(), now).as_ref())
        });
        let ops = if succeeded { txn.success } else { txn.failure };
        // A node that refuses writes refuses the whole transaction up front, rather
        // than letting some partitions apply their part.
        let refused = self
            .write_refusal()
            .filter(|_| ops.iter().any(Op::is_write));
        let applied = match refused {
            Some(reason) => Err(StoreError::Refused(reason)),
            None => Ok(self.apply_branch(id, ops, &held).await),
        };
        // Every part is applied, and written: the logs hold it whole. Closed before
        // the release, so no snapshot of these partitions can count it open.
        ledger.close(id);
        self.txn_done(id);
        release(&held, id);
        Ok(TxnDone {
            succeeded,
            outcomes: applied??,
        })
    }

    /// Tells replication that transaction `id` is applied everywhere, so its
    /// changes go to the replicas together.
    fn txn_done(&self, id: u64) {
        if let Some(replicated) = &self.inner.replicated {
            replicated.tap.txn_done(id);
        }
    }

    /// Applies one of a primary's transactions (a replica's stream) as a whole:
    /// every partition it touches is held, its parts are framed in this node's
    /// logs, and readers see all of its changes at once, as a client transaction's.
    pub async fn apply_txn(&self, changes: Vec<Replica>) -> Result<(), StoreError> {
        let ledger = &self.inner.health.txns;
        let id = ledger.open();
        let groups = self.by_partition(changes.into_iter(), Replica::key);
        let held = match self.hold(groups.keys().copied().collect(), id).await {
            Ok(held) => held,
            Err(error) => {
                ledger.close(id);
                return Err(error);
            }
        };
        let mark = TxnMark {
            id,
            parts: u32::try_from(groups.len()).expect("at most one part per partition"),
            committed: Arc::new(AtomicBool::new(false)),
        };
        let sends = groups.into_iter().map(|(partition, changes)| {
            let txn = Some(mark.clone());
            held[&partition].send(Replay { changes, txn })
        });
        // Every part applied before the commit flag, even when one failed.
        let applied = super::replayed(sends).await;
        mark.committed.store(true, SeqCst);
        ledger.close(id);
        release(&held, id);
        applied
    }

    /// Takes every partition `txn` may touch (its compares' and both branches'
    /// keys); on failure, lets go of those it took.
    async fn lock_all(&self, txn: &Txn, id: u64) -> Result<Held, StoreError> {
        let router = &self.inner.router;
        let keys = txn.compares.iter().map(|(key, _)| key.as_bytes());
        let keys = keys.chain(txn.success.iter().chain(&txn.failure).map(Op::key));
        let mut partitions: Vec<usize> = keys.map(|key| router.partition_of(key)).collect();
        partitions.sort_unstable();
        partitions.dedup();
        self.hold(partitions, id).await
    }

    /// Takes `partitions` for transaction `id`, in ascending order (so two
    /// transactions never wait on each other in a cycle); on failure, lets go of
    /// those it took.
    pub(super) async fn hold(&self, partitions: Vec<usize>, id: u64) -> Result<Held, StoreError> {
        debug_assert!(partitions.is_sorted(), "taken in ascending order");
        let mut held = Held::new();
        for partition in partitions {
            match self.lock(partition, id).await {
                Ok(addr) => held.insert(partition, addr),
                Err(error) => {
                    release(&held, id);
                    return Err(error);
                }
            };
        }
        Ok(held)
    }

    /// Applies a transaction's chosen branch on the partitions it holds, part by
    /// part, then sets its commit flag: readers see all of it from then on.
    /// A part that could not be applied or made safe fails the transaction as a
    /// whole (its other parts stay applied: as after a single write's 503, the
    /// client cannot count on it either way).
    async fn apply_branch(
        &self,
        id: u64,
        ops: Vec<Op>,
        held: &Held,
    ) -> Result<Vec<Outcome>, StoreError> {
        let count = ops.len();
        let groups = self.by_partition(ops.into_iter().enumerate(), |(_, op)| op.key());
        let writing = groups
            .values()
            .filter(|ops| ops.iter().any(|(_, op)| op.is_write()));
        let mark = TxnMark {
            id,
            parts: u32::try_from(writing.count()).expect("at most one part per partition"),
            committed: Arc::new(AtomicBool::new(false)),
        };
        let sends = groups.into_iter().map(|(partition, ops)| {
            let addr = held.get(&partition).cloned();
            self.apply_on(partition, addr, ops, Some(mark.clone()))
        });
        let applied = join_all(sends).await;
        mark.committed.store(true, SeqCst);
        let mut outcomes: Vec<Option<Outcome>> = (0..count).map(|_| None).collect();
        for (index, outcome) in applied.into_iter().flatten() {
            if let Outcome::Failed(
                error @ (StoreError::Refused(_)
                | StoreError::Unavailable
                | StoreError::Following(_)),
            ) = &outcome
            {
                return Err(error.clone());
            }
            outcomes[index] = Some(outcome);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every op has an outcome"))
            .collect())
    }

    /// `items` grouped by their keys' partitions, in order.
    pub(super) fn by_partition<T>(
        &self,
        items: impl Iterator<Item = T>,
        key: impl Fn(&T) -> &[u8],
    ) -> BTreeMap<usize, Vec<T>> {
        let mut groups: BTreeMap<usize, Vec<T>> = BTreeMap::new();
        for item in items {
            let partition = self.inner.router.partition_of(key(&item));
            groups.entry(partition).or_default().push(item);
        }
        groups
    }

    /// Takes `partition` for transaction `id`, waiting behind whatever holds it.
    async fn lock(&self, partition: usize, id: u64) -> Result<Arc<Addr<Partition>>, StoreError> {
        let addr = self.actor(&self.inner.partitions[partition]).await?;
        let reply = addr.send(Lock { txn: id }).await?;
        reply.get().await.ok_or(StoreError::Unavailable)?;
        Ok(addr)
    }

    /// Sends one partition its ops and awaits them, and their records when the
    /// store persists. Every op gets an outcome, failed if the partition could not
    /// take them.
    async fn apply_on(
        &self,
        partition: usize,
        addr: Option<Arc<Addr<Partition>>>,
        ops: Vec<(usize, Op)>,
        txn: Option<TxnMark>,
    ) -> Vec<(usize, Outcome)> {
        let indexes: Vec<(usize, bool)> = ops.iter().map(|(i, op)| (*i, op.is_write())).collect();
        let failed_all = |error: StoreError| {
            let each = |&(index, _): &(usize, bool)| (index, Outcome::Failed(error.clone()));
            indexes.iter().map(each).collect()
        };
        let addr = match addr {
            Some(addr) => addr,
            None => match self.actor(&self.inner.partitions[partition]).await {
                Ok(addr) => addr,
                Err(error) => return failed_all(error),
            },
        };
        let sent = addr.send(Apply { ops, txn }).await.map(|reply| reply.get());
        let (mut outcomes, durable) = match sent {
            Ok(reply) => match reply.await {
                Some(applied) => applied,
                None => return failed_all(StoreError::Unavailable),
            },
            Err(error) => return failed_all(error.into()),
        };
        if let Some(primary) = self.following() {
            for (_, outcome) in &mut outcomes {
                if let Outcome::Failed(StoreError::Following(named)) = outcome {
                    named.clone_from(&primary);
                }
            }
        }
        if let Some(Err(refused)) = match durable {
            Some(durable) => Some(durable.wait().await),
            None => None,
        } {
            // The records of this partition's writes may not be safe: none is acknowledged.
            for ((_, outcome), &(_, write)) in outcomes.iter_mut().zip(&indexes) {
                if write && !matches!(outcome, Outcome::Failed(_)) {
                    *outcome = Outcome::Failed(StoreError::Refused(refused.0.clone()));
                }
            }
        }
        outcomes
    }
}

fn found(entry: Option<super::Entry>) -> Outcome {
    entry.map_or(Outcome::Missing, Outcome::Found)
}

/// The partitions a transaction holds, by index, with their actors.
type Held = BTreeMap<usize, Arc<Addr<Partition>>>;

/// Lets every partition `held` go (its intents published, its queue run).
pub(super) fn release(held: &Held, id: u64) {
    for addr in held.values() {
        addr.do_send(Release { txn: id });
    }
}

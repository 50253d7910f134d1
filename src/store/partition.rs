//! The partition actor: the only writer of one partition.
//!
//! It owns a `PartitionState`, reads the clock for each message and hands the time
//! down, and runs the periodic tick that applies buffered reads and reclaims expired
//! entries. Everything it does is synchronous and O(1)-ish, so a message never
//! yields mid-way and writes to one partition are totally ordered.
//!
//! When the actor is dropped (its thread stopped or died), it parks its state in
//! its handle for another thread to adopt (see `handle`).
//!
//! A transaction holds the partition from its `Lock` to its `Release`: writes that
//! arrive meanwhile wait in `waiting`, in arrival order with other transactions'
//! locks, and run at the release. A write that does not wait costs one check.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, AsyncContext, Context, Handler, MessageResult};
use tokio::sync::oneshot;

use super::{
    clock::StoreClock,
    journal::{Durable, Outbox, Refused},
    messages::{Applied, Barrier, Clear, Delete, Put, Replay, Reply, WriteError, Written},
    op::{self, Apply, Lock, Outcome, Release},
    state::PartitionState,
};

/// Messages a partition's mailbox holds before senders wait. actix's default of 16
/// makes every burst of concurrent writes park senders; this absorbs a full wave of
/// HTTP connections (wrk's usual 64-256) without parking.
pub const MAILBOX_CAPACITY: usize = 1024;

/// Entries a snapshot walk visits per step. A step runs between two messages, so
/// it bounds how long a snapshot holds up writes: about a millisecond.
const SNAPSHOT_STEP: usize = 4096;

/// How long a snapshot walk waits for the log writer to take its last chunk.
const SNAPSHOT_BACKOFF: Duration = Duration::from_millis(1);

/// Where a partition's state waits while no actor runs it.
pub type Parking = Arc<Mutex<Option<PartitionState>>>;

pub struct Partition {
    state: PartitionState,
    clock: StoreClock,
    tick: Duration,
    /// Where the state goes when the actor is dropped.
    parking: Parking,
    /// True while a message or tick changes the state: a drop that finds it set
    /// unwinds from a panic mid-change, and the state may break its invariants.
    changing: bool,
    /// The transaction holding the partition, if any.
    held_by: Option<u64>,
    /// What arrived while a transaction held the partition, in arrival order.
    waiting: VecDeque<Waiting>,
}

/// A message that arrived while the partition was held, and where its answer goes.
enum Waiting {
    Put(Put, oneshot::Sender<Applied<Written>>),
    Delete(Delete, oneshot::Sender<Applied<Option<u64>>>),
    Apply(Apply, oneshot::Sender<op::Applied>),
    Lock(u64, oneshot::Sender<()>),
    Replay(Replay, oneshot::Sender<Option<Durable>>),
}

impl Partition {
    pub fn new(
        state: PartitionState,
        clock: StoreClock,
        tick: Duration,
        parking: &Parking,
    ) -> Self {
        // Intents of a transaction whose partition's actor died with its thread
        // would hide its writes forever: a new actor starts with none.
        state.shared().release();
        Self {
            state,
            clock,
            tick,
            parking: Arc::clone(parking),
            changing: false,
            held_by: None,
            waiting: VecDeque::new(),
        }
    }

    /// Queues a message that arrived while a transaction holds the partition;
    /// its answer comes when the transaction releases it.
    fn later<T>(&mut self, waiting: impl FnOnce(oneshot::Sender<T>) -> Waiting) -> Reply<T> {
        let (sender, receiver) = oneshot::channel();
        self.waiting.push_back(waiting(sender));
        Reply::Later(receiver)
    }

    /// Applies a group of ops; one journal commit (and one ticket) for all of them.
    /// Under a transaction that writes here, the ops are its part in the log,
    /// between a begin and a commit record (see `journal::TxnLedger`).
    fn apply(&mut self, apply: Apply) -> op::Applied {
        super::stats::Counters::bump(&self.state.shared().counters.group_messages);
        // A replica takes no client writes (the store names the primary).
        let refusal = match self.state.following() {
            true => Some(super::StoreError::Following(String::new())),
            false => self.refusal().map(super::StoreError::from),
        };
        let txn = apply.txn.as_ref();
        let committed = txn.map(|txn| &txn.committed);
        let part = txn.filter(|_| apply.ops.iter().any(|(_, op)| op.is_write()));
        let outcomes = self.change(|state, now| {
            let from = part.and_then(|txn| state.open_part(txn.id, txn.parts));
            let apply_one = |(index, op): (usize, op::Op)| {
                let outcome = match (&refusal, op.is_write()) {
                    (Some(refused), true) => Outcome::Failed(refused.clone()),
                    _ => state.apply_op(op, now, committed),
                };
                (index, outcome)
            };
            let outcomes = apply.ops.into_iter().map(apply_one).collect();
            if let Some(txn) = part {
                state.close_part(txn.id, from);
            }
            outcomes
        });
        (outcomes, self.commit())
    }

    /// Applies a primary's changes; under a transaction, as this partition's part
    /// of it (framed in the journal, invisible to readers until its commit).
    fn replay(&mut self, replay: Replay) -> Option<Durable> {
        let txn = replay.txn.as_ref();
        self.change(|state, now| {
            let from = txn.and_then(|txn| state.open_part(txn.id, txn.parts));
            for change in replay.changes {
                state.apply(change, now, txn.map(|txn| &txn.committed));
            }
            if let Some(txn) = txn {
                state.close_part(txn.id, from);
            }
        });
        self.commit()
    }

    /// Runs what waited for the transaction that just released the partition,
    /// until one of them is another transaction's lock.
    fn run_waiting(&mut self) {
        while self.held_by.is_none() {
            let Some(waiting) = self.waiting.pop_front() else {
                return;
            };
            // A sender whose receiver is gone (the client left) still gets its
            // write applied: the write was accepted when it was queued.
            match waiting {
                Waiting::Put(put, reply) => {
                    let _ = reply.send(self.write(|state, now| state.put(put, now)));
                }
                Waiting::Delete(delete, reply) => {
                    let _ = reply.send(self.write(|state, now| state.delete(&delete, now)));
                }
                Waiting::Apply(apply, reply) => {
                    let _ = reply.send(self.apply(apply));
                }
                Waiting::Replay(replay, reply) => {
                    let _ = reply.send(self.replay(replay));
                }
                Waiting::Lock(txn, reply) => {
                    // A transaction that gave up waiting holds nothing: skip it.
                    if reply.send(()).is_ok() {
                        self.held_by = Some(txn);
                    }
                }
            }
        }
    }

    /// Runs `change` on the state at the current time, marked as changing.
    fn change<T>(&mut self, change: impl FnOnce(&mut PartitionState, u64) -> T) -> T {
        self.changing = true;
        let result = change(&mut self.state, self.clock.now());
        self.changing = false;
        result
    }

    /// Why the node refuses writes, if it does (a faulted log, a fence).
    fn refusal(&self) -> Option<WriteError> {
        let faulted = || self.state.journal()?.outbox().health.refusal();
        let fenced = || self.state.fence().map(str::to_owned);
        faulted()
            .or_else(fenced)
            .map(|reason| WriteError::Refused(Refused(reason)))
    }

    /// Runs a write: refused outright while the log is faulted, else applied and
    /// its changes handed to the journal.
    fn write<T>(
        &mut self,
        write: impl FnOnce(&mut PartitionState, u64) -> Result<T, super::PreconditionFailed>,
    ) -> Applied<T> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        // Checked here, by the partition's only writer, so once the flag is set
        // and a `Barrier` has passed, no client write can slip into a replica.
        if self.state.following() {
            return Err(WriteError::Following);
        }
        let result = self.change(write);
        let durable = self.commit();
        Ok((result?, durable))
    }

    /// Hands the changes to the journal, and has its writer woken once this
    /// thread runs out of writes (`wake_when_idle`): one wake, and one
    /// `write(2)`, for all the writes that come in meanwhile, instead of one per write.
    fn commit(&mut self) -> Option<Durable> {
        let durable = self.state.commit();
        if durable.is_some() {
            COMMITS.set(COMMITS.get() + 1);
        }
        if let Some(outbox) = self.state.wake_due() {
            wake_when_idle(outbox);
        }
        durable
    }

    /// Starts a snapshot if the log writer asked for one.
    fn snapshot_if_asked(&mut self, ctx: &mut Context<Self>) {
        let Some(journal) = self.state.journal() else {
            return;
        };
        if journal.outbox().snapshot_requested() && self.state.start_snapshot() {
            ctx.notify(SnapshotStep);
        }
    }
}

/// Walk the next part of the snapshot under way (sent by the actor to itself, so
/// that writes queued meanwhile run between steps).
#[derive(actix::Message)]
#[rtype(result = "()")]
struct SnapshotStep;

impl Handler<SnapshotStep> for Partition {
    type Result = ();

    fn handle(&mut self, _: SnapshotStep, ctx: &mut Self::Context) {
        let Some(journal) = self.state.journal() else {
            return;
        };
        // Not while a transaction holds the partition: were the snapshot to end
        // meanwhile, an entry it skipped as newer than its start (written by the
        // transaction) would have its older value only in the logs it replaces,
        // and a crash before the transaction's other parts are written would lose
        // both. Once released, the transaction is closed: all its parts written.
        if journal.outbox().chunks_queued() > 0 || self.held_by.is_some() {
            ctx.notify_later(SnapshotStep, SNAPSHOT_BACKOFF);
            return;
        }
        let more = self.change(|state, _| state.snapshot_step(SNAPSHOT_STEP));
        self.commit();
        if more {
            ctx.notify(SnapshotStep);
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        if self.changing {
            // The readers' skiplist stays readable, but no actor will write it again
            // and /health reports the partition.
            log::error!("a partition's actor panicked mid-change: its state is not adopted");
            return;
        }
        let state = self.state.take();
        // A poisoned lock means another thread panicked holding it: nothing to save to.
        if let Ok(mut parked) = self.parking.lock() {
            *parked = Some(state);
        }
    }
}

impl Actor for Partition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if self.state.snapshot_in_progress() {
            // Adopted mid-walk from an actor that died with its thread.
            ctx.notify(SnapshotStep);
        }
        ctx.run_interval(self.tick, |partition, ctx| {
            partition.change(|state, now| state.tick(now));
            // Not while a transaction holds the partition: the snapshot would hold
            // its writes as plain state before its other parts are written.
            if partition.held_by.is_none() {
                partition.snapshot_if_asked(ctx);
            }
            partition.commit();
            // Removed skiplist nodes are freed by crossbeam-epoch only once enough
            // garbage has piled up; nudge it so memory returns promptly when idle.
            crossbeam::epoch::pin().flush();
        });
    }
}

impl Handler<Put> for Partition {
    type Result = Settled<Written>;

    fn handle(&mut self, put: Put, _: &mut Self::Context) -> Self::Result {
        Settled(match self.held_by {
            None => Reply::Now(self.write(|state, now| state.put(put, now))),
            Some(_) => self.later(|reply| Waiting::Put(put, reply)),
        })
    }
}

impl Handler<Delete> for Partition {
    type Result = Settled<Option<u64>>;

    fn handle(&mut self, delete: Delete, _: &mut Self::Context) -> Self::Result {
        Settled(match self.held_by {
            None => Reply::Now(self.write(|state, now| state.delete(&delete, now))),
            Some(_) => self.later(|reply| Waiting::Delete(delete, reply)),
        })
    }
}

/// A single write's answer, sent once its record is safe (persistence on): the
/// request awaiting the actor's reply then has nothing more to wait for, so it is
/// woken, and its response path polled, once instead of twice (33,990 -> 33,519
/// instructions per PUT under `everysec`, callgrind at 64 connections). The actor
/// does not wait: the answer is parked with this thread's relay (`Durable::when_safe`).
/// A write that waited behind a transaction (`Reply::Later`) still carries its
/// ticket, which `Store::put` and `Store::delete` await.
pub struct Settled<T>(Reply<Applied<T>>);

impl<T, M> actix::dev::MessageResponse<Partition, M> for Settled<T>
where
    T: 'static,
    M: actix::Message<Result = Reply<Applied<T>>>,
{
    fn handle(self, _: &mut Context<Partition>, tx: Option<actix::dev::OneshotSender<M::Result>>) {
        let Some(tx) = tx else {
            return; // sent without waiting for an answer
        };
        match self.0 {
            Reply::Now(Ok((value, Some(durable)))) => durable.when_safe(move |safe| {
                let answer = safe.map(|()| (value, None)).map_err(WriteError::Refused);
                let _ = tx.send(Reply::Now(answer));
            }),
            answer => {
                let _ = tx.send(answer);
            }
        }
    }
}

impl Handler<Apply> for Partition {
    type Result = MessageResult<Apply>;

    fn handle(&mut self, apply: Apply, _: &mut Self::Context) -> Self::Result {
        let holder = apply.txn.as_ref().map(|txn| txn.id);
        MessageResult(match (holder, self.held_by) {
            (None, None) => Reply::Now(self.apply(apply)),
            (None, Some(_)) => self.later(|reply| Waiting::Apply(apply, reply)),
            // Only the holder sends its writes while holding the partition.
            (Some(txn), held_by) => {
                assert_eq!(Some(txn), held_by, "a transaction applied without its lock");
                Reply::Now(self.apply(apply))
            }
        })
    }
}

impl Handler<Lock> for Partition {
    type Result = MessageResult<Lock>;

    fn handle(&mut self, lock: Lock, _: &mut Self::Context) -> Self::Result {
        MessageResult(match self.held_by {
            None => {
                self.held_by = Some(lock.txn);
                Reply::Now(())
            }
            Some(_) => self.later(|reply| Waiting::Lock(lock.txn, reply)),
        })
    }
}

impl Handler<Release> for Partition {
    type Result = ();

    fn handle(&mut self, release: Release, _: &mut Self::Context) {
        if self.held_by != Some(release.txn) {
            return; // a lock it gave up on while waiting, never granted
        }
        self.state.shared().release();
        self.held_by = None;
        self.run_waiting();
    }
}

impl Handler<Replay> for Partition {
    type Result = MessageResult<Replay>;

    fn handle(&mut self, replay: Replay, _: &mut Self::Context) -> Self::Result {
        let holder = replay.txn.as_ref().map(|txn| txn.id);
        MessageResult(match (holder, self.held_by) {
            (None, None) => Reply::Now(self.replay(replay)),
            (None, Some(_)) => self.later(|reply| Waiting::Replay(replay, reply)),
            (Some(txn), held_by) => {
                assert_eq!(
                    Some(txn),
                    held_by,
                    "a transaction replayed without its lock"
                );
                Reply::Now(self.replay(replay))
            }
        })
    }
}

/// Entries a `Clear` removes between two messages.
const CLEAR_STEP: usize = 16_384;

impl Handler<Clear> for Partition {
    type Result = actix::ResponseActFuture<Self, Option<Durable>>;

    /// In steps, so reads and other messages interleave with a large clear.
    fn handle(&mut self, _: Clear, _: &mut Self::Context) -> Self::Result {
        use actix::{ActorFutureExt, WrapFuture};
        let more = self.change(|state, _| state.clear(CLEAR_STEP));
        let durable = self.commit();
        if !more {
            return Box::pin(actix::fut::ready(durable));
        }
        Box::pin(
            async {}
                .into_actor(self)
                .then(|(), partition, ctx| partition.handle(Clear, ctx)),
        )
    }
}

impl Handler<Barrier> for Partition {
    type Result = ();

    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

thread_local! {
    /// Writers to wake once this thread has no more writes to run.
    static TO_WAKE: std::cell::RefCell<Vec<Arc<Outbox>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Writes committed on this thread, so the waker can tell a pass that brought
    /// new ones from the pass before the worker idles.
    static COMMITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Event-loop passes in a row that bring no new write before the writer is woken:
/// the worker polls its sockets again each pass, and at 64 connections the last
/// requests of a burst of replies come back a few microseconds apart. Waiting four
/// empty passes folded about 55 writes into each `write(2)` where one pass folded
/// about 30 (A/B at 64 connections: context switches per PUT 0.068 -> 0.038; CPU
/// per PUT everysec/off lower in four of five runs, 1.11 -> 1.02 in one; see
/// benches/README.md).
const IDLE_PASSES: usize = 4;

/// At most this many passes are folded into one wake of the writer, so a worker
/// that never runs out of requests still has its writes written.
const MAX_PASSES: usize = 64;

/// Wakes `outbox`'s writer once this thread runs out of writes (see `IDLE_PASSES`).
/// Woken at once, the writer would preempt the worker on a shared core and take one
/// pass's records per `write(2)` (about 20 at 64 connections), at two context
/// switches each time.
fn wake_when_idle(outbox: &Arc<Outbox>) {
    let first = TO_WAKE.with(|to_wake| {
        let mut to_wake = to_wake.borrow_mut();
        to_wake.push(Arc::clone(outbox));
        to_wake.len() == 1
    });
    if first {
        actix::spawn(async {
            let mut idle = 0;
            for _ in 0..MAX_PASSES {
                let seen = COMMITS.get();
                tokio::task::yield_now().await;
                idle = if COMMITS.get() == seen { idle + 1 } else { 0 };
                if idle == IDLE_PASSES {
                    break;
                }
            }
            let outboxes = TO_WAKE.with(|to_wake| std::mem::take(&mut *to_wake.borrow_mut()));
            outboxes.iter().for_each(|outbox| outbox.wake());
        });
    }
}

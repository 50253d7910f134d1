//! The partition actor: the only writer of one partition.
//!
//! It owns a `PartitionState`, reads the clock for each message and hands the time
//! down, and runs the periodic tick that applies buffered reads and reclaims expired
//! entries. Everything it does is synchronous and O(1)-ish, so a message never
//! yields mid-way and writes to one partition are totally ordered.
//!
//! When the actor is dropped (its thread stopped or died), it parks its state in
//! its handle for another thread to adopt (see `handle`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, AsyncContext, Context, Handler};

use super::{
    clock::StoreClock,
    journal::{Durable, Outbox, Refused},
    messages::{Applied, Apply, Barrier, Clear, Delete, Put, WriteError, Written},
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
}

impl Partition {
    pub fn new(
        state: PartitionState,
        clock: StoreClock,
        tick: Duration,
        parking: &Parking,
    ) -> Self {
        Self {
            state,
            clock,
            tick,
            parking: Arc::clone(parking),
            changing: false,
        }
    }

    /// Runs `change` on the state at the current time, marked as changing.
    fn change<T>(&mut self, change: impl FnOnce(&mut PartitionState, u64) -> T) -> T {
        self.changing = true;
        let result = change(&mut self.state, self.clock.now());
        self.changing = false;
        result
    }

    /// Why the node refuses writes, if it does (a faulted log).
    fn refusal(&self) -> Option<WriteError> {
        let health = &self.state.journal()?.outbox().health;
        health
            .refusal()
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

    /// Hands the changes to the journal, and has its writer woken at the end of
    /// this event-loop pass: one wake, and one `write(2)`, for all the writes the
    /// pass brings, instead of one per write.
    fn commit(&mut self) -> Option<Durable> {
        let durable = self.state.commit();
        if let Some(outbox) = self.state.wake_due() {
            wake_after_this_pass(outbox);
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
        if journal.outbox().chunks_queued() > 0 {
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
            partition.snapshot_if_asked(ctx);
            partition.commit();
            // Removed skiplist nodes are freed by crossbeam-epoch only once enough
            // garbage has piled up; nudge it so memory returns promptly when idle.
            crossbeam::epoch::pin().flush();
        });
    }
}

impl Handler<Put> for Partition {
    type Result = Applied<Written>;

    fn handle(&mut self, put: Put, _: &mut Self::Context) -> Self::Result {
        self.write(|state, now| state.put(put, now))
    }
}

impl Handler<Delete> for Partition {
    type Result = Applied<Option<u64>>;

    fn handle(&mut self, delete: Delete, _: &mut Self::Context) -> Self::Result {
        self.write(|state, now| state.delete(&delete, now))
    }
}

impl Handler<Apply> for Partition {
    type Result = Option<Durable>;

    fn handle(&mut self, apply: Apply, _: &mut Self::Context) -> Self::Result {
        self.change(|state, now| {
            for change in apply.0 {
                state.apply(change, now);
            }
        });
        self.commit()
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
    /// Writers to wake at the end of this thread's event-loop pass.
    static TO_WAKE: std::cell::RefCell<Vec<Arc<Outbox>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Wakes `outbox`'s writer once the tasks already runnable on this thread have
/// run (the actor's mailbox among them): a task spawned now runs after them.
fn wake_after_this_pass(outbox: &Arc<Outbox>) {
    let first = TO_WAKE.with(|to_wake| {
        let mut to_wake = to_wake.borrow_mut();
        to_wake.push(Arc::clone(outbox));
        to_wake.len() == 1
    });
    if first {
        actix::spawn(async {
            let outboxes = TO_WAKE.with(|to_wake| std::mem::take(&mut *to_wake.borrow_mut()));
            outboxes.iter().for_each(|outbox| outbox.wake());
        });
    }
}

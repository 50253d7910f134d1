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
    messages::{Delete, PreconditionFailed, Put, Written},
    state::PartitionState,
};

/// Messages a partition's mailbox holds before senders wait. actix's default of 16
/// makes every burst of concurrent writes park senders; this absorbs a full wave of
/// HTTP connections (wrk's usual 64-256) without parking.
pub const MAILBOX_CAPACITY: usize = 1024;

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
        ctx.run_interval(self.tick, |partition, _| {
            partition.change(|state, now| state.tick(now));
            // Removed skiplist nodes are freed by crossbeam-epoch only once enough
            // garbage has piled up; nudge it so memory returns promptly when idle.
            crossbeam::epoch::pin().flush();
        });
    }
}

impl Handler<Put> for Partition {
    type Result = Result<Written, PreconditionFailed>;

    fn handle(&mut self, put: Put, _: &mut Self::Context) -> Self::Result {
        self.change(|state, now| state.put(put, now))
    }
}

impl Handler<Delete> for Partition {
    type Result = Result<Option<u64>, PreconditionFailed>;

    fn handle(&mut self, delete: Delete, _: &mut Self::Context) -> Self::Result {
        self.change(|state, now| state.delete(&delete, now))
    }
}

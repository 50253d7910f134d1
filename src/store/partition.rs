//! The partition actor: the only writer of one partition.
//!
//! It owns a `PartitionState`, reads the clock for each message and hands the time
//! down, and runs the periodic tick that applies buffered reads and reclaims expired
//! entries. Everything it does is synchronous and O(1)-ish, so a message never
//! yields mid-way and writes to one partition are totally ordered.

use std::time::Duration;

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

pub struct Partition {
    state: PartitionState,
    clock: StoreClock,
    tick: Duration,
}

impl Partition {
    pub fn new(state: PartitionState, clock: StoreClock, tick: Duration) -> Self {
        Self { state, clock, tick }
    }
}

impl Actor for Partition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(self.tick, |partition, _| {
            partition.state.tick(partition.clock.now());
            // Removed skiplist nodes are freed by crossbeam-epoch only once enough
            // garbage has piled up; nudge it so memory returns promptly when idle.
            crossbeam::epoch::pin().flush();
        });
    }
}

impl Handler<Put> for Partition {
    type Result = Result<Written, PreconditionFailed>;

    fn handle(&mut self, put: Put, _: &mut Self::Context) -> Self::Result {
        self.state.put(put, self.clock.now())
    }
}

impl Handler<Delete> for Partition {
    type Result = Result<Option<u64>, PreconditionFailed>;

    fn handle(&mut self, delete: Delete, _: &mut Self::Context) -> Self::Result {
        self.state.delete(&delete, self.clock.now())
    }
}

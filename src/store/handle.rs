//! How the store reaches a partition's actor, and how a partition outlives the
//! thread its actor runs on.
//!
//! With the default placement the actors run on the HTTP worker threads. actix-server
//! restarts a worker thread that dies, but the actors on it die with it: their
//! addresses stay set while nobody reads their mailboxes, so every write to those
//! partitions would answer 503 forever and their expiry would stop. So a partition's
//! state is parked in its handle when its actor is dropped (`Partition`'s `Drop`),
//! and the next thread that needs the partition (a restarted worker attaching, a
//! write, a health check) adopts it with its data, LRU order and timers intact.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Addr};
use arc_swap::ArcSwapOption;

use super::{
    clock::StoreClock,
    partition::{Parking, Partition},
    shared::Shared,
    state::{Limits, PartitionState},
};

pub(super) struct PartitionHandle {
    /// The running actor; `None` until first started. Left in place when the actor
    /// dies, so a dead actor is told from one not yet started (`addr.connected()`).
    addr: ArcSwapOption<Addr<Partition>>,
    /// The state while no actor runs it: before the first start, and after the
    /// actor was dropped with its thread.
    parked: Parking,
    pub(super) shared: Arc<Shared>,
    pub(super) limits: Limits,
    clock: StoreClock,
    tick: Duration,
}

/// Where a partition's actor stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    /// Its actor runs.
    Serving,
    /// Never started: its worker thread has not attached yet.
    Unstarted,
    /// Its actor died. Its state is parked for adoption (or about to be), unless
    /// the actor panicked mid-change.
    Lost,
}

impl PartitionHandle {
    pub(super) fn new(limits: Limits, clock: StoreClock, tick: Duration) -> Self {
        let shared = Arc::new(Shared::new(limits.eviction));
        let state = PartitionState::new(Arc::clone(&shared), limits, clock.now());
        Self {
            addr: ArcSwapOption::empty(),
            parked: Arc::new(Mutex::new(Some(state))),
            shared,
            limits,
            clock,
            tick,
        }
    }

    /// Takes the parked state out before any actor started (recovery fills it).
    pub(super) fn unpark(&self) -> PartitionState {
        let parked = self.parked.lock().expect("not poisoned").take();
        parked.expect("a partition is parked until its actor starts")
    }

    pub(super) fn park(&self, state: PartitionState) {
        *self.parked.lock().expect("not poisoned") = Some(state);
    }

    /// Starts an actor for the parked state with `spawn` (on an arbiter, or on the
    /// calling thread), unless none is parked. Answers whether it started one.
    pub(super) fn start_with(&self, spawn: impl FnOnce(Partition) -> Addr<Partition>) -> bool {
        let Some(state) = self.parked.lock().expect("not poisoned").take() else {
            return false;
        };
        let partition = Partition::new(state, self.clock.clone(), self.tick, &self.parked);
        self.addr.store(Some(Arc::new(spawn(partition))));
        true
    }

    /// The actor's address if it runs.
    pub(super) fn addr(&self) -> Option<Arc<Addr<Partition>>> {
        self.addr.load_full().filter(|addr| addr.connected())
    }

    pub(super) fn standing(&self) -> Standing {
        match &*self.addr.load() {
            Some(addr) if addr.connected() => Standing::Serving,
            Some(_) => Standing::Lost,
            None => Standing::Unstarted,
        }
    }

    /// Adopts the partition onto the calling thread if its actor died and left its
    /// state parked. Answers whether an actor now runs.
    pub(super) fn revive(&self) -> bool {
        match self.standing() {
            Standing::Serving => true,
            Standing::Unstarted => false,
            Standing::Lost => {
                let adopted = self.start_with(Partition::start);
                if adopted {
                    log::warn!("a partition's actor died with its thread; adopted its state");
                }
                adopted
            }
        }
    }
}

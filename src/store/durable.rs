//! Waiting for a write's record to be safe, at one cross-thread wake per batch.
//!
//! The log writer publishes its progress (a watch channel) once per round. Were
//! every waiting write a receiver, each round would wake every waiting request
//! from the writer's thread: a lock and often a syscall each, which measured as
//! most of what persistence cost per write. Instead each HTTP worker thread keeps
//! one relay task per log: the writer wakes the relay, and the relay wakes the
//! requests waiting on that thread with a thread-local `Notify`.

use std::{cell::RefCell, rc::Rc, sync::Arc};

use tokio::sync::Notify;

use super::journal::{Outbox, Refused};

/// A write's claim on its record being safe.
#[derive(Debug)]
pub struct Durable {
    seq: u64,
    outbox: Arc<Outbox>,
}

thread_local! {
    /// This thread's relays, by log.
    static RELAYS: RefCell<Vec<(Arc<Outbox>, Rc<Notify>)>> = const { RefCell::new(Vec::new()) };
}

impl Durable {
    pub(super) fn new(seq: u64, outbox: Arc<Outbox>) -> Self {
        Self { seq, outbox }
    }

    /// Waits until the change is safe, or answers why it never will be. Must run
    /// on an actix (tokio `LocalSet`) thread, as request handlers do.
    pub async fn wait(self) -> Result<(), Refused> {
        let relay = relay(&self.outbox);
        loop {
            let notified = relay.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a round published in between wakes it.
            notified.as_mut().enable();
            match self.outbox.progress().outcome(self.seq) {
                Some(true) => return Ok(()),
                Some(false) => return Err(refused(&self.outbox)),
                None => notified.await,
            }
        }
    }
}

fn refused(outbox: &Outbox) -> Refused {
    if outbox.progress().stopped {
        return Refused("the log writer has stopped".into());
    }
    Refused("the write was applied in memory but its log failed; it may be lost on restart".into())
}

/// This thread's relay for `outbox`, started on first use.
fn relay(outbox: &Arc<Outbox>) -> Rc<Notify> {
    RELAYS.with(|relays| {
        let mut relays = relays.borrow_mut();
        if let Some((_, notify)) = relays.iter().find(|(known, _)| Arc::ptr_eq(known, outbox)) {
            return Rc::clone(notify);
        }
        let notify = Rc::new(Notify::new());
        relays.push((Arc::clone(outbox), Rc::clone(&notify)));
        let (mut progress, local) = (outbox.subscribe(), Rc::clone(&notify));
        actix::spawn(async move {
            loop {
                let changed = progress.changed().await;
                local.notify_waiters();
                if changed.is_err() {
                    break;
                }
            }
        });
        notify
    })
}

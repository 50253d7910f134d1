//! Waiting for a write's record to be safe, at one cross-thread wake per batch.
//!
//! The log writer publishes its progress (a watch channel) once per round. Were
//! every waiting write a receiver, each round would wake every waiting request
//! from the writer's thread: a lock and often a syscall each, which measured as
//! most of what persistence cost per write. Instead each thread keeps one relay
//! task per log: the writer wakes the relay, and the relay, on its own thread,
//! answers the writes parked with it (`Durable::when_safe`, the partition actor's
//! way: the request then waits for one answer, not for the actor and then the
//! log) and wakes the requests waiting on it (`Durable::wait`).

use std::{cell::RefCell, collections::VecDeque, rc::Rc, sync::Arc};

use tokio::sync::Notify;

use super::journal::{Outbox, Progress, Refused};

/// A write's claim on its record being safe.
#[derive(Debug)]
pub struct Durable {
    seq: u64,
    outbox: Arc<Outbox>,
}

/// What to do once a parked write's record is safe (or never will be).
type Then = Box<dyn FnOnce(Result<(), Refused>)>;

/// One thread's relay for one log.
struct Relay {
    outbox: Arc<Outbox>,
    woken: Notify,
    /// Parked writes, in the order of their records (one actor fills it, in order).
    parked: RefCell<VecDeque<(u64, Then)>>,
}

impl Relay {
    /// Answers every parked write whose record is settled, oldest first. One read
    /// of the progress serves the whole drain: what it does not cover yet, the
    /// writer's next publication (which wakes the relay again) will.
    fn answer_settled(&self) {
        let progress = self.outbox.progress();
        loop {
            let next = {
                let mut parked = self.parked.borrow_mut();
                let settled = parked.front().and_then(|(seq, _)| settled(&progress, *seq));
                settled.and_then(|answer| parked.pop_front().map(|(_, then)| (answer, then)))
            };
            // Called outside the borrow: an answer may park another write.
            let Some((answer, then)) = next else { return };
            then(answer);
        }
    }
}

thread_local! {
    /// This thread's relays, by log.
    static RELAYS: RefCell<Vec<Rc<Relay>>> = const { RefCell::new(Vec::new()) };
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
            let notified = relay.woken.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a round published in between wakes it.
            notified.as_mut().enable();
            match settled(&self.outbox.progress(), self.seq) {
                Some(answer) => return answer,
                None => notified.await,
            }
        }
    }

    /// Runs `then` once the change is safe (or with why it never will be): now if
    /// it already is, else from this thread's relay. Must run on an actix thread,
    /// as partition actors do; tickets of one log must come in the order of their
    /// records, as one partition's do.
    pub fn when_safe(self, then: impl FnOnce(Result<(), Refused>) + 'static) {
        match settled(&self.outbox.progress(), self.seq) {
            Some(answer) => then(answer),
            None => {
                let relay = relay(&self.outbox);
                relay
                    .parked
                    .borrow_mut()
                    .push_back((self.seq, Box::new(then)));
            }
        }
    }
}

/// What became of change `seq` as of `progress`; `None` while it is on its way.
fn settled(progress: &Progress, seq: u64) -> Option<Result<(), Refused>> {
    progress
        .outcome(seq)
        .map(|safe| if safe { Ok(()) } else { Err(refused(progress)) })
}

fn refused(progress: &Progress) -> Refused {
    if progress.stopped {
        return Refused("the log writer has stopped".into());
    }
    Refused("the write was applied in memory but its log failed; it may be lost on restart".into())
}

/// This thread's relay for `outbox`, started on first use.
fn relay(outbox: &Arc<Outbox>) -> Rc<Relay> {
    RELAYS.with(|relays| {
        let mut relays = relays.borrow_mut();
        if let Some(relay) = relays
            .iter()
            .find(|relay| Arc::ptr_eq(&relay.outbox, outbox))
        {
            return Rc::clone(relay);
        }
        let relay = Rc::new(Relay {
            outbox: Arc::clone(outbox),
            woken: Notify::new(),
            parked: RefCell::new(VecDeque::new()),
        });
        relays.push(Rc::clone(&relay));
        let (mut progress, local) = (outbox.subscribe(), Rc::clone(&relay));
        actix::spawn(async move {
            loop {
                let changed = progress.changed().await;
                local.answer_settled();
                local.woken.notify_waiters();
                if changed.is_err() {
                    break;
                }
            }
        });
        relay
    })
}

//! The storage engine: partitions of the keyspace, each owned by one actix actor.
//!
//! `Store` is the handle the HTTP layer holds. It routes a key to its partition by a
//! keyed hash, reads through the partition's lock-free skiplist, and sends writes to
//! the partition's actor and awaits the reply. Nothing here knows about HTTP.
//!
//! Layout: `entry` (what is stored), `lru` and `wheel` (pure index structures),
//! `state` (one partition's rules, time passed in; `state/walk` its snapshots),
//! `shared` (the read side), `partition` (the actor), `messages` (its API),
//! `handle` (reaching an actor, adopting a lost one), `journal` (what a partition
//! hands its log, when persistence is on) and `durable` (a write waiting for its
//! record), `stats`, `clock`, `key` (how a lookup compares keys); `op` and `group`
//! (batches and transactions), `scan` and `glob` (ordered scans and Redis MATCH
//! patterns).

mod clock;
mod durable;
mod entry;
pub mod glob;
mod group;
mod handle;
pub mod journal;
mod key;
mod lru;
mod messages;
pub mod op;
mod partition;
pub mod scan;
mod shared;
mod sketch;
mod state;
mod stats;
pub mod tap;
mod wheel;

use std::{
    hash::{BuildHasher, Hasher, RandomState},
    sync::{Arc, Mutex},
    thread::{self, ThreadId},
    time::Duration,
};

use actix::{Actor, Addr, Arbiter, MailboxError};
use serde::Serialize;

pub use clock::StoreClock;
pub use entry::{Entry, NEVER as NO_DEADLINE, charge as entry_charge};
pub use group::{Txn, TxnDone};
pub use messages::{Delete, Precondition, PreconditionFailed, Put, Tags, WriteError, Written};
pub use shared::Shared;
pub use state::{Limits, PartitionState};
pub use stats::PartitionStats;
pub use tap::{Replica, Replicated, Tap};

/// The pure index structures, exported only for `benches/structures.rs`: the server
/// reaches them through `PartitionState`, never directly.
#[doc(hidden)]
pub mod bench_support {
    pub use super::{lru::Lru, wheel::TimerWheel};
}

use crate::config::{Placement, StoreConfig};
use handle::{PartitionHandle, Standing};
use journal::WriteHealth;
use messages::{Barrier, Clear, Replay};
use partition::Partition;

/// Why a write did not happen.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("precondition failed (current version {:?})", .0.current)]
    PreconditionFailed(PreconditionFailed),
    /// The partition's actor is gone (shutting down).
    #[error("partition unavailable")]
    Unavailable,
    /// The node refuses writes, or this write's record could not be made safe.
    #[error("write refused: {0}")]
    Refused(String),
    /// The store follows a primary (named here): clients write there.
    #[error("this node is a replica of {0}")]
    Following(String),
}

impl From<WriteError> for StoreError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::PreconditionFailed(failed) => StoreError::PreconditionFailed(failed),
            WriteError::Refused(refused) => StoreError::Refused(refused.0),
            // Named by `Store::refused`, which knows the primary.
            WriteError::Following => StoreError::Following(String::new()),
        }
    }
}

impl From<MailboxError> for StoreError {
    fn from(_: MailboxError) -> Self {
        StoreError::Unavailable
    }
}

impl From<PreconditionFailed> for StoreError {
    fn from(failed: PreconditionFailed) -> Self {
        StoreError::PreconditionFailed(failed)
    }
}

/// How long a write waits for its partition's worker thread to come up at start-up,
/// or for a partition whose thread died to be adopted.
const ATTACH_WAIT: Duration = Duration::from_secs(5);

/// Routes a key to its partition: SipHash-1-3 (std's `RandomState` hash) under
/// secret keys, so clients cannot aim keys at one partition. The keys are random
/// per store, and kept with its data when it persists (a restart must route keys
/// as the data on disk was routed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Router {
    pub seed: [u64; 2],
    pub partitions: usize,
}

impl Router {
    /// A router under fresh random keys.
    pub fn random(partitions: usize) -> Router {
        // std draws RandomState's keys from the OS; hashing two constants under
        // them yields 128 random bits without another dependency.
        let random = RandomState::new();
        Router {
            seed: [random.hash_one(0u8), random.hash_one(1u8)],
            partitions,
        }
    }

    pub fn partition_of(&self, key: &[u8]) -> usize {
        let mut hasher = siphasher::sip::SipHasher13::new_with_keys(self.seed[0], self.seed[1]);
        hasher.write(key);
        partition_index(hasher.finish(), self.partitions)
    }
}

/// What opens a store's persisted data and records its changes from then on
/// (implemented by `persist`, which depends on the store, not the reverse).
pub trait Persistence {
    /// The router the persisted data was written under, if any (else a new one is
    /// drawn for `partitions`).
    fn router(&self) -> Option<[u64; 2]>;

    /// Loads the persisted data into the fresh partitions and attaches a journal to
    /// each. Runs once, before any actor starts.
    fn recover(
        &mut self,
        partitions: &mut [PartitionState],
        router: &Router,
        clock: &StoreClock,
        health: &Arc<WriteHealth>,
    ) -> Result<(), String>;

    /// Writes out what is queued, syncs and stops (graceful shutdown).
    fn finish(&mut self);
}

struct Inner {
    partitions: Box<[PartitionHandle]>,
    router: Router,
    /// Whether the logs accept writes (always so without persistence).
    health: Arc<WriteHealth>,
    /// The replication switches and tap, if the store replicates.
    replicated: Option<Arc<Replicated>>,
    /// The logs, if the store persists; finished by `stop`.
    persistence: Mutex<Option<Box<dyn Persistence + Send>>>,
    clock: StoreClock,
    arbiters: Vec<Arbiter>,
    /// Worker threads that have attached, in order (their index is their position).
    attached: Mutex<Vec<ThreadId>>,
}

/// A cheap, cloneable handle to the running store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Store-wide totals and the per-partition figures they add up from.
// The body of `GET /v1/stats`; `ToSchema` only describes it for the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StoreStats {
    #[serde(flatten)]
    pub total: PartitionStats,
    /// The same figures for each partition, in partition order.
    pub partitions: Vec<PartitionStats>,
}

impl Store {
    /// Creates the partitions. With `Placement::Arbiters` their actors start now on
    /// dedicated arbiters (at most one per core); with `Placement::Workers` they wait
    /// for `attach_worker_thread`. Must be called inside a running actix `System`.
    pub fn start(config: &StoreConfig, clock: quanta::Clock) -> Store {
        Self::open(config, StoreClock::new(clock), None).expect("nothing to recover")
    }

    /// `start`, loading persisted data first and recording changes from then on
    /// when `persistence` is given.
    pub fn open(
        config: &StoreConfig,
        clock: StoreClock,
        persistence: Option<Box<dyn Persistence + Send>>,
    ) -> Result<Store, String> {
        Self::open_replicated(config, clock, persistence, None)
    }

    /// `open`, telling `replicated`'s tap every change (and obeying its flags)
    /// when given.
    pub fn open_replicated(
        config: &StoreConfig,
        clock: StoreClock,
        mut persistence: Option<Box<dyn Persistence + Send>>,
        replicated: Option<Arc<Replicated>>,
    ) -> Result<Store, String> {
        let count = config.resolved_partitions();
        let partitions: Box<[PartitionHandle]> = split_limits(config, count)
            .into_iter()
            .map(|limits| PartitionHandle::new(limits, clock.clone(), config.tick))
            .collect();
        if let Some(replicated) = &replicated {
            for handle in partitions.iter() {
                let mut state = handle.unpark();
                state.attach_replication(Arc::clone(replicated));
                handle.park(state);
            }
        }
        let mut router = Router::random(count);
        let health = Arc::new(WriteHealth::default());
        // Transaction ids keep growing across restarts (see `journal::TxnLedger`).
        health.txns.raise(clock.to_wall(0));
        if let Some(persistence) = &mut persistence {
            if let Some(seed) = persistence.router() {
                router.seed = seed;
            }
            let mut states: Vec<PartitionState> =
                partitions.iter().map(PartitionHandle::unpark).collect();
            let recovered = persistence.recover(&mut states, &router, &clock, &health);
            partitions.iter().zip(states).for_each(|(h, s)| h.park(s));
            recovered?;
        }
        let arbiters: Vec<Arbiter> = match config.placement {
            Placement::Workers => Vec::new(),
            Placement::Arbiters => (0..count.min(cores())).map(|_| Arbiter::new()).collect(),
        };
        for (index, handle) in partitions.iter().enumerate() {
            if let Some(arbiter) = arbiters.get(index % arbiters.len().max(1)) {
                handle.start_with(|partition| {
                    Partition::start_in_arbiter(&arbiter.handle(), |_| partition)
                });
            }
        }
        let inner = Inner {
            partitions,
            router,
            health,
            replicated,
            persistence: Mutex::new(persistence),
            clock,
            arbiters,
            attached: Mutex::new(Vec::new()),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// Called on each HTTP worker thread as it starts (`Placement::Workers`): the
    /// n-th distinct thread of `workers` starts the partitions `i` with
    /// `i % workers == n` on itself, so their writes need no cross-thread hop. A
    /// thread past the first `workers` replaces one that died (actix-server restarts
    /// it): it adopts every partition whose actor died with its thread. Further calls
    /// from the same thread do nothing.
    pub fn attach_worker_thread(&self, workers: usize) {
        let worker = {
            let mut attached = self.inner.attached.lock().expect("not poisoned");
            let id = thread::current().id();
            if attached.contains(&id) {
                return;
            }
            attached.push(id);
            attached.len() - 1
        };
        log::debug!(
            "worker {worker} attaching on thread {:?}",
            thread::current().name()
        );
        let workers = workers.max(1);
        for (index, handle) in self.inner.partitions.iter().enumerate() {
            if worker >= workers {
                handle.revive();
            } else if index % workers == worker {
                handle.start_with(Partition::start);
            }
        }
    }

    /// The partition's actor: waits briefly if its worker thread is still starting,
    /// and adopts the partition onto this thread if its actor died with its own.
    async fn actor(&self, handle: &PartitionHandle) -> Result<Arc<Addr<Partition>>, StoreError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(addr) = handle.addr() {
                return Ok(addr);
            }
            handle.revive();
            if started.elapsed() > ATTACH_WAIT {
                return Err(StoreError::Unavailable);
            }
            actix::clock::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The partitions that cannot serve writes, by index, after adopting onto this
    /// thread any whose actor died with its thread. Empty when all serve.
    pub fn unavailable_partitions(&self) -> Vec<usize> {
        let handles = self.inner.partitions.iter().enumerate();
        handles
            .filter(|(_, handle)| !handle.revive() && handle.standing() != Standing::Serving)
            .map(|(index, _)| index)
            .collect()
    }

    pub fn partition_count(&self) -> usize {
        self.inner.partitions.len()
    }

    /// The current time on the store's clock, in nanoseconds.
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// Reads `key` without a lock or a message; `None` if absent or expired.
    pub fn get(&self, key: &str) -> Option<Entry> {
        self.partition(key.as_bytes()).shared.get(key, self.now())
    }

    /// Nanoseconds until `entry` expires, if it has a TTL.
    pub fn remaining(&self, entry: &Entry) -> Option<u64> {
        entry
            .deadline()
            .map(|deadline| deadline.saturating_sub(self.now()))
    }

    /// Applies `put`, and with persistence on, answers once its record is safe.
    pub async fn put(&self, put: Put) -> Result<Written, StoreError> {
        let partition = self.partition(put.entry.key_bytes());
        let reply = self.actor(partition).await?.send(put).await?;
        let applied = reply.get().await.ok_or(StoreError::Unavailable)?;
        let (written, durable) = applied.map_err(|error| self.refused(error))?;
        if let Some(durable) = durable {
            durable
                .wait()
                .await
                .map_err(|refused| StoreError::Refused(refused.0))?;
        }
        Ok(written)
    }

    /// Answers the removed entry's version, or `None` if the key was absent; with
    /// persistence on, once the removal's record is safe.
    pub async fn delete(&self, delete: Delete) -> Result<Option<u64>, StoreError> {
        let partition = self.partition(delete.key.as_bytes());
        let reply = self.actor(partition).await?.send(delete).await?;
        let applied = reply.get().await.ok_or(StoreError::Unavailable)?;
        let (removed, durable) = applied.map_err(|error| self.refused(error))?;
        if let Some(durable) = durable {
            durable
                .wait()
                .await
                .map_err(|refused| StoreError::Refused(refused.0))?;
        }
        Ok(removed)
    }

    /// A write error as the store reports it: a refusal by a replica names its
    /// primary.
    fn refused(&self, error: WriteError) -> StoreError {
        match error {
            WriteError::Following => StoreError::Following(self.following().unwrap_or_default()),
            other => other.into(),
        }
    }

    /// The primary this store follows, if it does.
    pub fn following(&self) -> Option<String> {
        self.inner.replicated.as_ref().and_then(|r| r.primary())
    }

    /// Keeps `epoch` with the data (persistence on), so that versions after a
    /// restart start above it (a promotion's). Without persistence, nothing to do.
    pub fn keep_epoch(&self, epoch: u64) -> Result<(), StoreError> {
        let Some(epochs) = self.inner.health.epochs.get() else {
            return Ok(());
        };
        let epochs = epochs.upgrade().ok_or(StoreError::Unavailable)?;
        epochs
            .raise_to(epoch)
            .map_err(|error| StoreError::Refused(format!("cannot store the epoch: {error}")))
    }

    pub fn replicated(&self) -> Option<&Arc<Replicated>> {
        self.inner.replicated.as_ref()
    }

    pub fn clock(&self) -> &StoreClock {
        &self.inner.clock
    }

    /// Applies a primary's changes (a replica's stream), each in its key's
    /// partition, in order per partition; answers once all are applied and, with
    /// persistence on, their records safe.
    pub async fn apply(&self, changes: Vec<Replica>) -> Result<(), StoreError> {
        // Sent to every partition first, then awaited: the partitions apply in parallel.
        let mut replies = Vec::new();
        for (index, changes) in self.by_partition(changes.into_iter(), Replica::key) {
            let actor = self.actor(&self.inner.partitions[index]).await?;
            replies.push(actor.send(Replay { changes, txn: None }));
        }
        replayed(replies).await
    }

    /// Removes every entry (a replica starting a full copy).
    pub async fn clear(&self) -> Result<(), StoreError> {
        let mut replies = Vec::new();
        for handle in self.inner.partitions.iter() {
            replies.push(self.actor(handle).await?.send(Clear));
        }
        self.settle(replies).await
    }

    /// Awaits every partition's actor handling a message sent now: after it, every
    /// partition sees what the caller set before calling.
    pub async fn barrier(&self) -> Result<(), StoreError> {
        let mut replies = Vec::new();
        for handle in self.inner.partitions.iter() {
            replies.push(self.actor(handle).await?.send(Barrier));
        }
        for reply in replies {
            reply.await?;
        }
        Ok(())
    }

    /// Awaits replies that may carry durability tickets, then the tickets.
    async fn settle<M>(
        &self,
        replies: Vec<actix::prelude::Request<Partition, M>>,
    ) -> Result<(), StoreError>
    where
        M: actix::Message<Result = Option<journal::Durable>> + Send + 'static,
        Partition: actix::Handler<M>,
    {
        let mut tickets = Vec::new();
        for reply in replies {
            tickets.extend(reply.await?);
        }
        settle_tickets(tickets).await
    }

    /// Up to `limit` live entries of `partition` whose keys sort after `after`
    /// (from the first with `None`), in key order: a walk that needs no lock and
    /// holds nothing between calls, so concurrent writes go on (a full copy).
    pub fn entries_after(
        &self,
        partition: usize,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<Entry> {
        use std::ops::Bound::{Excluded, Unbounded};
        let map = &self.inner.partitions[partition].shared.map;
        let now = self.now();
        let start = after.map_or(Unbounded, Excluded);
        map.range::<[u8], _>((start, Unbounded))
            .map(|node| node.key().clone())
            .filter(|entry| !entry.is_expired(now))
            .take(limit)
            .collect()
    }

    /// Why the node refuses writes, if it does (a log that cannot write).
    pub fn write_refusal(&self) -> Option<String> {
        let fence = || self.inner.replicated.as_ref()?.fence().map(str::to_owned);
        self.inner.health.refusal().or_else(fence)
    }

    pub fn router(&self) -> Router {
        self.inner.router
    }

    pub fn stats(&self) -> StoreStats {
        let partitions: Vec<PartitionStats> = self
            .inner
            .partitions
            .iter()
            .map(|p| {
                p.shared
                    .counters
                    .snapshot(p.limits.capacity, p.limits.max_memory)
            })
            .collect();
        let mut total = PartitionStats::default();
        partitions.iter().for_each(|p| total.accumulate(p));
        StoreStats { total, partitions }
    }

    /// Stops the partitions' arbiters (their actors drop with them), then writes
    /// out and syncs what the logs hold.
    pub fn stop(&self) {
        if let Some(replicated) = &self.inner.replicated {
            replicated.close();
        }
        for arbiter in &self.inner.arbiters {
            arbiter.stop();
        }
        let persistence = self.inner.persistence.lock().expect("not poisoned").take();
        if let Some(mut persistence) = persistence {
            persistence.finish();
        }
    }

    /// What the logs did, when the store persists.
    pub fn log_counters(&self) -> Option<&journal::LogCounters> {
        let persists = self
            .inner
            .persistence
            .lock()
            .expect("not poisoned")
            .is_some();
        persists.then_some(&self.inner.health.counters)
    }

    /// Routed by the key's bytes: a PUT has them in its entry and would otherwise
    /// re-validate them as UTF-8 just to hash them.
    fn partition(&self, key: &[u8]) -> &PartitionHandle {
        &self.inner.partitions[self.inner.router.partition_of(key)]
    }
}

/// Maps a hash onto `0..count` by its high bits (Lemire's multiply-shift): unbiased
/// enough for any count, with no division on the request path.
fn partition_index(hash: u64, count: usize) -> usize {
    ((u128::from(hash) * count as u128) >> 64) as usize
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Splits capacity and memory across `count` partitions so the parts add up exactly.
pub fn split_limits(config: &StoreConfig, count: usize) -> Vec<Limits> {
    let split = |total: u64, index: usize| {
        let count = count as u64;
        total / count + u64::from((index as u64) < total % count)
    };
    (0..count)
        .map(|index| Limits {
            capacity: split(config.capacity, index),
            max_memory: split(config.max_memory.as_u64(), index),
            eviction: config.eviction,
        })
        .collect()
}

/// Awaits every partition's answer to a `Replay` (all of them, even after a
/// failure), then the safety of their records.
async fn replayed(
    replies: impl IntoIterator<Item = actix::prelude::Request<Partition, Replay>>,
) -> Result<(), StoreError> {
    let mut tickets = Vec::new();
    let mut applied = Ok(());
    for reply in futures_util::future::join_all(replies).await {
        match reply.map_err(StoreError::from) {
            Ok(reply) => match reply.get().await {
                Some(ticket) => tickets.extend(ticket),
                None => applied = Err(StoreError::Unavailable),
            },
            Err(error) => applied = Err(error),
        }
    }
    applied.and(settle_tickets(tickets).await)
}

/// Waits until the records behind `tickets` are safe.
async fn settle_tickets(tickets: Vec<journal::Durable>) -> Result<(), StoreError> {
    for ticket in tickets {
        ticket
            .wait()
            .await
            .map_err(|refused| StoreError::Refused(refused.0))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod race_tests;

#[cfg(test)]
mod journal_tests;

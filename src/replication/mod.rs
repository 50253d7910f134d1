//! Replication: a node follows a primary (a replica) or serves replicas (any node).
//!
//! - `backlog`: the recent history as encoded records, by position (pure).
//! - `feed`: a node's backlog behind a lock, filled by its partitions (`store::Tap`)
//!   or by its follower, and waited on by streams.
//! - `stream`: a primary's side of one replica's connection (full copy, records, pings).
//! - `follower`: a replica's thread, which connects, copies and applies.
//! - `saved`: a persisting replica's position, next to its data.
//! - `status`: what `GET /v1/replication` and `/metrics` report.
//!
//! Positions are node-wide: every change a primary records takes the next number,
//! whatever its partition, so a replica's partition count and hash seed may differ
//! from its primary's. A history is named by a replication id; a replica adopts its
//! primary's id and positions, so a promoted replica (new id) still recognises its
//! old primary's id up to the position it had reached (Redis's PSYNC2), and the
//! other replicas resume from it. The records are the log's (`persist::record`).
//!
//! This module owns the role: `Replication` turns a node into a replica
//! (`follow`) or a primary (`promote`) and sets the store's flags for it.

pub mod backlog;
mod feed;
mod follower;
mod saved;
pub mod status;
pub mod stream;

use std::{
    hash::{BuildHasher, RandomState},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Instant,
};

pub use backlog::Position;
pub use feed::Feed;

use crate::{
    config::ReplicationConfig,
    net::Lifecycle,
    persist::aof::EPOCH_SHIFT,
    store::{Store, StoreError},
};

/// What a replica presents to its primary, and how it checks an HTTPS one.
#[derive(Debug)]
pub struct PrimaryAccess {
    /// The bearer token, if the primary wants one.
    pub token: Option<String>,
    /// The TLS settings (`None`: Mozilla's CAs, no client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A monotonic count, for `/metrics`.
#[derive(Debug, Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// What replication did since start-up.
#[derive(Debug, Default)]
pub struct Counters {
    /// Full copies this node served to replicas.
    pub full_syncs: Count,
    /// Resumes (partial resyncs) this node served.
    pub partial_syncs: Count,
    /// Replicas cut off because they fell behind the backlog.
    pub dropped_behind: Count,
    /// Full copies this node took as a replica.
    pub full_copies: Count,
    /// Resumes this node made as a replica.
    pub resumes: Count,
    /// Records this node applied as a replica.
    pub applied: Count,
}

/// The role, and the history's names.
#[derive(Debug)]
struct Role {
    /// The primary followed; `None` on a primary.
    primary: Option<String>,
    /// The current history's id.
    id: String,
    /// The previous history's id and the last position it shares with this one.
    previous: Option<(String, u64)>,
}

/// A replica's view of its connection.
#[derive(Debug, Default)]
pub struct LinkState {
    /// `connecting`, `full_copy` or `streaming`.
    pub state: &'static str,
    pub last_error: Option<String>,
    /// The primary's head, as its last ping said.
    pub primary_head: Position,
    /// When the replica last heard from its primary.
    pub heard: Option<Instant>,
    /// When the replica was last caught up with the head it knew of.
    pub caught_up: Option<Instant>,
}

pub struct Replication {
    store: Store,
    feed: Arc<Feed>,
    config: ReplicationConfig,
    /// What a replica presents to its primary, and how it checks one.
    access: PrimaryAccess,
    /// Where a persisting replica saves its position (`[persistence] dir`).
    saved_dir: Option<PathBuf>,
    lifecycle: Arc<Lifecycle>,
    role: Mutex<Role>,
    link: Mutex<LinkState>,
    /// Bumped by every change of role: a follower applies only while the gate
    /// holds the generation it started at.
    gate: tokio::sync::Mutex<u64>,
    /// The highest version applied from a primary: a promotion hands out versions
    /// above its epoch.
    max_version: AtomicU64,
    pub links: Mutex<Vec<Arc<stream::Link>>>,
    pub counters: Counters,
}

/// Where a replica connection starts, as `open_sync` decided.
pub struct SyncStart {
    pub id: String,
    pub full: bool,
    pub start: Position,
}

/// A fresh replication id: 32 hex digits from the OS's randomness.
fn new_id() -> String {
    let random = RandomState::new();
    format!("{:016x}{:016x}", random.hash_one(0u8), random.hash_one(1u8))
}

impl Replication {
    /// The replication of `store`, whose tap is `feed`. With `config.primary` set
    /// the store must already follow it (see `server`); call `start` once the
    /// server runs.
    pub fn new(
        store: Store,
        feed: Arc<Feed>,
        config: &ReplicationConfig,
        access: PrimaryAccess,
        saved_dir: Option<PathBuf>,
        lifecycle: Arc<Lifecycle>,
    ) -> Arc<Self> {
        let primary = (!config.primary.is_empty()).then(|| config.primary.clone());
        let mut id = new_id();
        if primary.is_some()
            && let Some(saved) = saved_dir.as_deref().and_then(saved::load)
        {
            log::info!(
                "resuming replication {} from position {}",
                saved.replication_id,
                saved.position.records
            );
            feed.reset(saved.position);
            id = saved.replication_id;
        }
        Arc::new(Self {
            store,
            feed,
            config: config.clone(),
            access,
            saved_dir,
            lifecycle,
            role: Mutex::new(Role {
                primary,
                id,
                previous: None,
            }),
            link: Mutex::new(LinkState::default()),
            gate: tokio::sync::Mutex::new(0),
            max_version: AtomicU64::new(0),
            links: Mutex::new(Vec::new()),
            counters: Counters::default(),
        })
    }

    /// Starts following the configured primary, if there is one.
    pub fn start(self: &Arc<Self>) {
        match self.role().primary.clone() {
            Some(primary) => {
                self.link(|link| link.state = "connecting");
                follower::spawn(Arc::clone(self), primary, 0);
            }
            None if self.config.fence_on_start => {
                log::warn!("fenced: no writes until a replica connects, or a promote");
                self.fence(true);
            }
            None => {}
        }
    }

    /// Fences this primary (client writes refused, see `store::FENCED`) or lifts it.
    fn fence(&self, fenced: bool) {
        if let Some(replicated) = self.store.replicated() {
            if !fenced && replicated.fence().is_some() {
                log::info!("fence lifted: this primary takes writes");
            }
            replicated.set_fenced(fenced);
        }
    }

    fn role(&self) -> std::sync::MutexGuard<'_, Role> {
        self.role.lock().expect("not poisoned")
    }

    fn link<T>(&self, update: impl FnOnce(&mut LinkState) -> T) -> T {
        update(&mut self.link.lock().expect("not poisoned"))
    }

    /// The primary this node follows, if any.
    pub fn primary(&self) -> Option<String> {
        self.role().primary.clone()
    }

    /// Whether streams and the follower should end (the server drains before a
    /// shutdown, or has stopped).
    fn stopping(&self) -> bool {
        self.lifecycle.draining() || self.store.replicated().is_some_and(|r| r.closed())
    }

    /// Whether a follower of `generation` may go on.
    async fn current(&self, generation: u64) -> bool {
        *self.gate.lock().await == generation && !self.stopping()
    }

    /// The id and position a replica asks its primary to resume from.
    fn resume_point(&self) -> (String, u64) {
        (self.role().id.clone(), self.feed.head().records)
    }

    /// Takes the primary's id for this node's history (same positions).
    fn adopt_id(&self, id: &str) {
        self.role().id = id.to_owned();
    }

    /// A ping said the primary's head is `head`.
    fn heard(&self, head: Position) {
        self.link(|link| {
            link.primary_head = head;
            link.heard = Some(Instant::now());
        });
    }

    /// After a batch: caught up if this node reached the head it knows of.
    fn heard_self(&self) {
        let head = self.feed.head().records;
        self.link(|link| {
            if head >= link.primary_head.records {
                link.caught_up = Some(Instant::now());
            }
        });
    }

    /// Decides how a replica at (`id`, `position`) starts: from `position` if
    /// this node's backlog holds the history it names, else with a full copy.
    /// A replica connecting lifts a fence: it still takes this node for its primary.
    pub async fn open_sync(&self, id: &str, position: u64) -> Result<SyncStart, StoreError> {
        self.fence(false);
        let resumable = {
            let role = self.role();
            let named = id == role.id
                || role
                    .previous
                    .as_ref()
                    .is_some_and(|(old, upto)| id == old && position <= *upto);
            // A primary that never recorded has a history with holes in it.
            let recorded = self.feed.tapping() || role.primary.is_some();
            (named && recorded).then(|| role.id.clone())
        };
        if let Some(current) = resumable
            && let Ok(start) = self.feed.lock().locate(position)
        {
            self.counters.partial_syncs.inc();
            return Ok(SyncStart {
                id: current,
                full: false,
                start,
            });
        }
        let id = {
            let mut role = self.role();
            if role.primary.is_none() && !self.feed.tapping() {
                // The first replica: record from now on, as a new history (the
                // changes before were never numbered).
                role.id = new_id();
                role.previous = None;
                self.feed.set_tapping(true);
            }
            role.id.clone()
        };
        // Every partition records from here on, so `start` misses nothing.
        self.store.barrier().await?;
        self.counters.full_syncs.inc();
        Ok(SyncStart {
            id,
            full: true,
            start: self.feed.head(),
        })
    }

    /// Makes this node a primary: a new history that continues the one it
    /// followed, versions above any its old primary handed out, writes accepted.
    /// A primary stays one.
    pub async fn promote(&self) -> Result<(), StoreError> {
        let mut gate = self.gate.lock().await;
        if self.role().primary.is_none() {
            self.fence(false);
            return Ok(());
        }
        let Some(replicated) = self.store.replicated() else {
            return Ok(());
        };
        // Epochs are the versions' high bits (see `persist::aof`): the next one
        // is above anything the old primary may have handed out, even what did
        // not reach this replica. Kept on disk first, so a restart stays above it.
        let seen = self
            .max_version
            .load(Relaxed)
            .max(replicated.version_floor());
        let epoch = (seen >> EPOCH_SHIFT) + 1;
        self.store.keep_epoch(epoch)?;
        *gate += 1;
        let floor = epoch << EPOCH_SHIFT;
        replicated.raise_version_floor(floor);
        self.feed.set_tapping(true);
        // Every partition records before any takes a client write.
        self.store.barrier().await?;
        {
            let mut role = self.role();
            let head = self.feed.head().records;
            let old = std::mem::replace(&mut role.id, new_id());
            role.previous = Some((old, head));
            role.primary = None;
        }
        replicated.set_following(None);
        self.link(|link| *link = LinkState::default());
        if let Some(dir) = &self.saved_dir {
            let _ = std::fs::remove_file(dir.join(saved::FILE));
        }
        log::info!("promoted to primary (versions from now on above {floor})");
        Ok(())
    }

    /// Makes this node a replica of `primary` (at once: client writes are
    /// refused from here on), resuming from its history where it can.
    pub async fn follow(self: &Arc<Self>, primary: String) -> Result<(), StoreError> {
        let mut gate = self.gate.lock().await;
        let Some(replicated) = self.store.replicated() else {
            return Ok(());
        };
        if self.role().primary.as_deref() == Some(primary.as_str()) {
            return Ok(());
        }
        *gate += 1;
        replicated.set_following(Some(primary.clone()));
        self.fence(false);
        // No client write is in flight past here, so the position is final.
        self.store.barrier().await?;
        self.feed.set_tapping(false);
        self.role().primary = Some(primary.clone());
        self.link(|link| {
            *link = LinkState::default();
            link.state = "connecting";
        });
        log::info!("following {primary}");
        follower::spawn(Arc::clone(self), primary, *gate);
        Ok(())
    }
}

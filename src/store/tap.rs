//! What a partition tells replication, and the switches replication sets on it.
//!
//! The store knows nothing of streams or backlogs. A store that can replicate is
//! given a `Replicated`: its `Tap` is told every change a partition makes, in the
//! order the partition made it (the partition's actor is its only writer), and its
//! flags say whether the store follows a primary. `replication` implements the tap,
//! as `persist` implements the journal.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
};

use super::journal::Change;

/// Where a primary's changes go (its replication backlog).
pub trait Tap: Send + Sync + std::fmt::Debug {
    /// Whether changes are recorded now. Off on a primary no replica ever
    /// followed, so a node without replicas pays one atomic load per change.
    fn enabled(&self) -> bool;

    /// Records one change. Called by the partition's actor right after applying
    /// it, so a change is applied before it is numbered (see `replication::stream`
    /// for why a full copy relies on that).
    fn record(&self, change: &Change);

    /// Records one change of a partition's part of transaction `txn`: kept aside
    /// until `txn_done`, so the transaction's changes go out together.
    fn record_in(&self, txn: u64, change: &Change);

    /// Every part of transaction `txn` is applied (called before its partitions are
    /// released, so no later change of its keys is recorded before it).
    fn txn_done(&self, txn: u64);
}

/// The store-wide replication state every partition shares.
#[derive(Debug)]
pub struct Replicated {
    pub tap: Arc<dyn Tap>,
    /// The store follows a primary: client writes are refused, and the store
    /// neither expires nor evicts on its own (the primary's deletes do that).
    following: AtomicBool,
    /// The store has stopped: a follower stops too.
    closed: AtomicBool,
    /// What it follows (the primary's URL), for the refusals to name.
    primary: arc_swap::ArcSwapOption<String>,
    /// Versions handed out from now on are above this: raised by a promotion past
    /// every version the old primary may have handed out.
    version_floor: AtomicU64,
    /// A primary that takes no writes yet (see `FENCED`).
    fenced: AtomicBool,
}

/// Why a fenced primary refuses writes.
pub const FENCED: &str = "this primary started fenced ([replication] fence_on_start): it takes \
     writes once a replica has connected to it, or after POST /v1/replication/promote";

impl Replicated {
    pub fn new(tap: Arc<dyn Tap>) -> Self {
        Self {
            tap,
            following: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            primary: arc_swap::ArcSwapOption::empty(),
            version_floor: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
        }
    }

    pub fn following(&self) -> bool {
        self.following.load(Relaxed)
    }

    /// Follows `primary` (client writes refused from now on), or none.
    pub fn set_following(&self, primary: Option<String>) {
        self.following.store(primary.is_some(), Relaxed);
        self.primary.store(primary.map(Arc::new));
    }

    /// The primary followed, if any.
    pub fn primary(&self) -> Option<String> {
        self.primary.load_full().map(|primary| (*primary).clone())
    }

    pub fn closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    pub fn close(&self) {
        self.closed.store(true, Relaxed);
    }

    /// Why client writes are refused on a fenced primary, if it is fenced.
    pub fn fence(&self) -> Option<&'static str> {
        self.fenced.load(Relaxed).then_some(FENCED)
    }

    pub fn set_fenced(&self, fenced: bool) {
        self.fenced.store(fenced, Relaxed);
    }

    pub fn version_floor(&self) -> u64 {
        self.version_floor.load(Relaxed)
    }

    pub fn raise_version_floor(&self, floor: u64) {
        self.version_floor.fetch_max(floor, Relaxed);
    }
}

/// One change a replica applies as its primary made it.
#[derive(Debug)]
pub enum Replica {
    /// The entry (unstamped), with the primary's version and the deadline on this
    /// store's clock (`NEVER` for none).
    Put {
        entry: super::Entry,
        version: u64,
        deadline: u64,
    },
    Remove {
        key: Box<[u8]>,
        cause: super::journal::Cause,
    },
}

impl Replica {
    pub fn key(&self) -> &[u8] {
        match self {
            Replica::Put { entry, .. } => entry.key_bytes(),
            Replica::Remove { key, .. } => key,
        }
    }
}

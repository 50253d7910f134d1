//! A replica's side: one thread that connects to the primary, takes a full copy
//! or resumes, and applies the primary's records in order, until told to stop.
//!
//! The thread runs its own actix System, so the network reads (blocking, with
//! ureq's timeouts) never run on an HTTP worker or inside a partition's actor: it
//! hands each batch of records to the partitions (`Store::apply`) and awaits them,
//! with their log records when the replica persists. Only then does it append the
//! records to its own backlog and count its position, so a position names changes
//! that are applied (and, with persistence on, written). A transaction's run of
//! records is applied once all of it has arrived, as a transaction of this node's
//! own (`Store::apply_txn`), so its readers never see part of one.
//!
//! A promotion or a `follow` elsewhere bumps `Replication::gate`: a batch is
//! applied under the gate, so once the bump is done no batch of the old stream
//! lands.

use std::{
    io::Read,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use super::{
    Replication,
    backlog::Position,
    saved::{self, Saved},
};
use crate::{
    persist::record::{self, Cause as RecordCause, DecodeError, Record},
    store::{Entry, NO_DEADLINE, Replica, journal::Cause},
};

/// Bytes read from the connection at a time (a batch is what one read brings).
const READ_BYTES: usize = 256 * 1024;

/// Waits between connection attempts.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How often a persisting replica saves its position.
const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the follower thread for `primary`, at gate generation `generation`.
pub fn spawn(replication: Arc<Replication>, primary: String, generation: u64) {
    let name = "rustkv-replica".to_owned();
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        actix_rt::System::new().block_on(run(replication, primary, generation));
    });
    if let Err(error) = spawned {
        log::error!("cannot start the replication thread: {error}");
    }
}

async fn run(replication: Arc<Replication>, primary: String, generation: u64) {
    let mut retry = RETRY_MIN;
    while replication.current(generation).await {
        let mut session = Session::new(&replication, &primary, generation);
        let outcome = session.run().await;
        if !replication.current(generation).await {
            break;
        }
        let error = outcome.err().unwrap_or_else(|| "the stream ended".into());
        log::warn!("replication from {primary}: {error}; reconnecting");
        replication.link(|link| {
            link.state = "connecting";
            link.last_error = Some(error);
        });
        // A session that got far enough to stream resets the backoff.
        retry = if session.streamed {
            RETRY_MIN
        } else {
            (retry * 2).min(RETRY_MAX)
        };
        actix_rt::time::sleep(retry).await;
    }
    log::info!("stopped following {primary}");
}

/// One connection to the primary.
struct Session<'a> {
    replication: &'a Arc<Replication>,
    primary: &'a str,
    generation: u64,
    /// Still receiving the full copy (records before `Synced`).
    copying: bool,
    /// The primary's replication id, as its response named it.
    id: String,
    streamed: bool,
    saved_at: Instant,
}

impl<'a> Session<'a> {
    fn new(replication: &'a Arc<Replication>, primary: &'a str, generation: u64) -> Self {
        Self {
            replication,
            primary,
            generation,
            copying: false,
            id: String::new(),
            streamed: false,
            saved_at: Instant::now(),
        }
    }

    async fn run(&mut self) -> Result<(), String> {
        let (id, position) = self.replication.resume_point();
        let url = format!(
            "{}/v1/replication/sync?id={id}&position={position}",
            self.primary.trim_end_matches('/')
        );
        let mut agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(self.replication.config.timeout);
        if let Some(tls) = &self.replication.access.tls {
            agent = agent.tls_config(Arc::clone(tls));
        }
        let agent = agent.build();
        let mut request = agent.get(&url);
        if let Some(token) = &self.replication.access.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call().map_err(|error| error.to_string())?;
        self.id = response
            .header("rustkv-replication-id")
            .ok_or("the primary's answer names no replication id")?
            .to_owned();
        self.copying = response.header("rustkv-replication-sync") == Some("full");
        self.begin().await?;
        let mut reader = response.into_reader();
        let (mut buf, mut chunk) = (Vec::with_capacity(READ_BYTES), vec![0; READ_BYTES]);
        while !self.replication.stopping() {
            let read = reader.read(&mut chunk).map_err(|error| error.to_string())?;
            if read == 0 {
                return Err("the primary closed the stream".into());
            }
            buf.extend_from_slice(&chunk[..read]);
            let used = self.consume(&buf).await?;
            buf.drain(..used);
        }
        Ok(())
    }

    /// Prepares for the stream: a full copy empties the store first.
    async fn begin(&mut self) -> Result<(), String> {
        let replication = self.replication;
        if self.copying {
            log::info!("replication from {}: taking a full copy", self.primary);
            replication.counters.full_copies.inc();
            replication.link(|link| link.state = "full_copy");
            // A crash mid-copy must not resume from the old position.
            self.save(None);
            let _gate = replication.gate.lock().await;
            replication.store.clear().await.map_err(|e| e.to_string())?;
        } else {
            log::info!(
                "replication from {}: resumed (partial resync)",
                self.primary
            );
            replication.counters.resumes.inc();
            replication.adopt_id(&self.id);
            self.streaming();
        }
        Ok(())
    }

    fn streaming(&mut self) {
        self.streamed = true;
        self.replication.link(|link| {
            link.state = "streaming";
            link.last_error = None;
        });
    }

    /// Applies the whole records at the start of `buf`; answers the bytes used.
    /// A transaction is applied once all of it has arrived, as a whole.
    async fn consume(&mut self, buf: &[u8]) -> Result<usize, String> {
        let mut batch = Batch::default();
        let mut used = 0;
        while let Some((record, len)) = next_record(&buf[used..])? {
            let frame = &buf[used..used + len];
            match record {
                Record::Synced { position, bytes } => {
                    self.apply(std::mem::take(&mut batch)).await?;
                    self.synced(Position {
                        records: position,
                        bytes,
                    });
                }
                Record::Ping {
                    position, bytes, ..
                } => {
                    self.replication.heard(Position {
                        records: position,
                        bytes,
                    });
                }
                Record::Put { .. } | Record::Remove { .. } => batch.add(self, record, frame),
                Record::TxnBegin { id, .. } => {
                    let Some((txn, txn_len)) = self.whole_txn(&buf[used..], id)? else {
                        break; // the rest of it is still on its way
                    };
                    self.apply(std::mem::take(&mut batch)).await?;
                    self.apply(txn).await?;
                    used += txn_len;
                    continue;
                }
                Record::TxnCommit { .. } | Record::TxnFloor { .. } => {
                    return Err(format!("unexpected record from the primary: {record:?}"));
                }
            }
            used += len;
        }
        self.apply(batch).await?;
        self.replication.heard_self();
        Ok(used)
    }

    /// Transaction `id`'s changes, from its `TxnBegin` at the start of `buf` to its
    /// `TxnCommit`, and the bytes they take; `None` when `buf` ends before that.
    fn whole_txn(&self, buf: &[u8], id: u64) -> Result<Option<(Batch, usize)>, String> {
        let mut txn = Batch {
            whole: true,
            ..Batch::default()
        };
        let mut used = 0;
        while let Some((record, len)) = next_record(&buf[used..])? {
            let frame = &buf[used..used + len];
            used += len;
            match record {
                Record::TxnBegin { id: begun, .. } if begun == id && used == len => {
                    txn.keep(self, frame);
                }
                Record::Put { .. } | Record::Remove { .. } => txn.add(self, record, frame),
                Record::TxnCommit { id: ended, .. } if ended == id => {
                    txn.keep(self, frame);
                    return Ok(Some((txn, used)));
                }
                other => return Err(format!("transaction {id} broken by {other:?}")),
            }
        }
        Ok(None) // the rest of it is still on its way
    }

    /// The full copy is complete: the history goes on from `at`.
    fn synced(&mut self, at: Position) {
        log::info!(
            "replication from {}: full copy complete at position {}",
            self.primary,
            at.records
        );
        self.copying = false;
        self.replication.feed.reset(at);
        self.replication.adopt_id(&self.id);
        self.streaming();
        self.save(Some(at));
    }

    /// Applies `batch` under the gate, then records it as this node's history.
    async fn apply(&mut self, batch: Batch) -> Result<(), String> {
        if batch.changes.is_empty() {
            return Ok(());
        }
        let replication = self.replication;
        let gate = replication.gate.lock().await;
        if *gate != self.generation {
            return Err("stopped".into());
        }
        let count = batch.changes.len() as u64;
        let store = &replication.store;
        match batch.whole {
            true => store.apply_txn(batch.changes).await,
            false => store.apply(batch.changes).await,
        }
        .map_err(|e| e.to_string())?;
        replication
            .max_version
            .fetch_max(batch.max_version, Relaxed);
        replication.counters.applied.add(count);
        if !self.copying {
            replication.feed.append(&batch.frames, batch.records);
        }
        drop(gate);
        if !self.copying && self.saved_at.elapsed() >= SAVE_INTERVAL {
            self.save(Some(replication.feed.head()));
        }
        Ok(())
    }

    /// Saves the position with the data (persistence on), or forgets it (`None`).
    fn save(&mut self, at: Option<Position>) {
        let Some(dir) = &self.replication.saved_dir else {
            return;
        };
        self.saved_at = Instant::now();
        let saved = Saved {
            replication_id: at.map_or_else(String::new, |_| self.id.clone()),
            position: at.unwrap_or_default(),
        };
        if let Err(error) = saved::store(dir, &saved) {
            log::warn!(
                "cannot save the replication position in {}: {error}",
                dir.display()
            );
        }
    }
}

/// The whole record at the start of `buf` and its length; `None` when `buf` ends
/// inside it.
fn next_record(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, String> {
    match record::decode(buf) {
        Ok(decoded) => Ok(Some(decoded)),
        Err(DecodeError::Incomplete) => Ok(None),
        Err(error) => Err(format!("bad record from the primary: {error:?}")),
    }
}

/// Records decoded from one read, applied together; or one transaction's,
/// applied as a whole.
#[derive(Default)]
struct Batch {
    changes: Vec<Replica>,
    /// The same records, framed, for this node's backlog (with a transaction's
    /// begin and commit), and how many.
    frames: Vec<u8>,
    records: u64,
    max_version: u64,
    /// One transaction: readers see all of it or none.
    whole: bool,
}

impl Batch {
    /// Keeps a record for this node's backlog (not during a full copy, whose
    /// history starts at `Synced`).
    fn keep(&mut self, session: &Session<'_>, frame: &[u8]) {
        if !session.copying {
            self.frames.extend_from_slice(frame);
            self.records += 1;
        }
    }

    fn add(&mut self, session: &Session<'_>, record: Record<'_>, frame: &[u8]) {
        // Kept even when skipped, so this node's positions stay its primary's.
        self.keep(session, frame);
        let change = match record {
            Record::Put {
                key,
                value,
                version,
                expires_at,
            } => {
                let Ok(key) = std::str::from_utf8(key) else {
                    log::warn!("skipping a replicated put whose key is not UTF-8");
                    return;
                };
                let clock = session.replication.store.clock();
                // A deadline before this store started is past: 0 reads as expired.
                let deadline =
                    expires_at.map_or(NO_DEADLINE, |at| clock.from_wall(at).unwrap_or(0));
                self.max_version = self.max_version.max(version);
                Replica::Put {
                    entry: Entry::for_ttl(key, value, expires_at),
                    version,
                    deadline,
                }
            }
            Record::Remove { key, cause } => Replica::Remove {
                key: key.into(),
                cause: match cause {
                    RecordCause::Deleted => Cause::Deleted,
                    RecordCause::Evicted => Cause::Evicted,
                    RecordCause::Expired => Cause::Expired,
                },
            },
            _ => return,
        };
        self.changes.push(change);
    }
}

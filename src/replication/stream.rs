//! A primary's side of one replica's connection: the body of
//! `GET /v1/replication/sync`, a stream of records.
//!
//! A partial resync sends the backlog's records after the replica's position,
//! then every new one as it is recorded. A full copy first walks every
//! partition's skiplist (no lock, no pause: writes go on) and sends each live
//! entry as a put, then a `Synced` record naming the position `start` taken just
//! before the walk, then the records after `start`. The walk may see a key's
//! value from after `start`; the records after `start` then set it again, in
//! order, so once they are applied the replica holds what the primary holds: a
//! record is numbered only after its change is applied (see `store::Tap`), so
//! every change at or before `start` is in what the walk sees.
//!
//! `Ping` records carry the primary's head a few times a second, so a replica
//! measures its lag and notices a dead connection. A replica that falls behind
//! the backlog is cut off (the stream ends): it reconnects and takes a full copy,
//! and the primary never buffers more than its backlog for it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::{
    Replication,
    backlog::{Gone, Position},
};
use crate::{
    persist::{put_record, record},
    store::Store,
};

/// How often an idle stream pings, and how long a read waits for records.
pub const PING_INTERVAL: Duration = Duration::from_millis(250);

/// Entries encoded per step of a full copy's walk.
const COPY_BATCH: usize = 1024;

/// One connected replica, as `GET /v1/replication` lists it.
#[derive(Debug)]
pub struct Link {
    pub peer: String,
    pub full: bool,
    pub since: Instant,
    /// The position sent up to.
    pub sent: Mutex<Position>,
}

enum Phase {
    /// Walking partition `partition` from after key `after`.
    Copy {
        partition: usize,
        after: Option<Box<[u8]>>,
        start: Position,
    },
    /// Sending the records after `from`.
    Follow { from: Position },
}

/// The state of one stream, owned by its body.
pub struct Stream {
    replication: Arc<Replication>,
    link: Arc<Link>,
    phase: Phase,
    last_ping: Instant,
}

impl Stream {
    /// A stream from `start`, after a full copy (`full`) or not.
    pub fn new(replication: Arc<Replication>, peer: String, full: bool, start: Position) -> Self {
        let link = Arc::new(Link {
            peer,
            full,
            since: Instant::now(),
            sent: Mutex::new(start),
        });
        replication
            .links
            .lock()
            .expect("not poisoned")
            .push(Arc::clone(&link));
        let phase = match full {
            true => Phase::Copy {
                partition: 0,
                after: None,
                start,
            },
            false => Phase::Follow { from: start },
        };
        Self {
            replication,
            link,
            phase,
            last_ping: Instant::now(),
        }
    }

    /// The response body: chunks of whole records until the replica is cut off
    /// or the server shuts down.
    pub fn into_body(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
        futures_util::stream::unfold(self, |mut stream| async move {
            let chunk = stream.next().await?;
            Some((Ok(chunk), stream))
        })
    }

    async fn next(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        while out.is_empty() {
            if self.replication.stopping() {
                return None;
            }
            let store = self.replication.store.clone();
            match &mut self.phase {
                Phase::Copy { .. } => self.copy_step(&store, &mut out),
                Phase::Follow { from } => {
                    let from = *from;
                    self.follow_step(from, &mut out).await?;
                }
            }
        }
        Some(Bytes::from(out))
    }

    /// Encodes the next batch of the walk; ends it with `Synced`.
    fn copy_step(&mut self, store: &Store, out: &mut Vec<u8>) {
        let Phase::Copy {
            partition,
            after,
            start,
        } = &mut self.phase
        else {
            return;
        };
        let entries = store.entries_after(*partition, after.as_deref(), COPY_BATCH);
        for entry in &entries {
            record::encode(&put_record(entry, store.clock()), out);
        }
        match entries.last() {
            Some(last) if entries.len() == COPY_BATCH => *after = Some(last.key_bytes().into()),
            _ => {
                *partition += 1;
                *after = None;
            }
        }
        if *partition == store.partition_count() {
            let start = *start;
            let synced = record::Record::Synced {
                position: start.records,
                bytes: start.bytes,
            };
            record::encode(&synced, out);
            self.phase = Phase::Follow { from: start };
        }
    }

    /// Sends the records after `from` (waiting a ping interval for some), and a
    /// ping when one is due. `None` ends the stream: the replica fell behind.
    async fn follow_step(&mut self, from: Position, out: &mut Vec<u8>) -> Option<()> {
        let feed = &self.replication.feed;
        match feed.read(from, out, PING_INTERVAL).await {
            Ok(next) => {
                self.phase = Phase::Follow { from: next };
                *self.link.sent.lock().expect("not poisoned") = next;
            }
            Err(Gone) => {
                log::warn!(
                    "replica {} fell behind the backlog (at position {from}): disconnected; \
                     it will take a full copy",
                    self.link.peer,
                    from = from.records
                );
                self.replication.counters.dropped_behind.inc();
                return None;
            }
        }
        if out.is_empty() || self.last_ping.elapsed() >= PING_INTERVAL {
            let head = feed.head();
            let store = &self.replication.store;
            let ping = record::Record::Ping {
                position: head.records,
                bytes: head.bytes,
                wall: store.clock().to_wall(store.now()),
            };
            record::encode(&ping, out);
            self.last_ping = Instant::now();
        }
        Some(())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let mut links = self.replication.links.lock().expect("not poisoned");
        links.retain(|link| !Arc::ptr_eq(link, &self.link));
        log::info!("replica {} disconnected", self.link.peer);
    }
}

//! The writer's side of a snapshot: `SnapshotStart` closes the current log
//! (synced) and opens a new one and a temporary snapshot file, the new log listed
//! in the manifest at once; chunks of entries go to the snapshot; `SnapshotEnd`
//! syncs and renames it, and one manifest write makes it and the new log the
//! partition's whole state. A snapshot that completes also heals a faulted log.

use std::io::{self, Write};

use crate::store::Entry;

use super::{
    super::{
        layout,
        record::{self, FileHeader, FileKind},
        segment,
    },
    FLUSH_BYTES, Open, Round, Runtime, Writer, put_record,
};

/// A snapshot being written between `SnapshotStart` and `SnapshotEnd`.
pub(super) struct Snapshot {
    pub(super) open: Open,
    /// The name the finished file gets.
    name: String,
    /// The new log that goes with it.
    log: String,
}

impl Writer {
    pub(super) fn start_snapshot(&mut self, round: &mut Round, state: &mut Runtime) {
        // The old log gets everything before this point, synced: it is never
        // appended to again.
        self.flush(round, state);
        if state.dirty || state.syncing.is_some() {
            self.sync_log(state);
        }
        self.settle(round, state);
        let generation = self.layout.next_generation(self.index);
        let log_name = layout::log_name(self.index, generation);
        let snapshot_name = layout::snapshot_name(self.index, generation);
        let temp = format!("{snapshot_name}.tmp");
        let opened = self.open_file(&log_name, FileKind::Log).and_then(|log| {
            let snapshot = self.open_file(&temp, FileKind::Snapshot)?;
            self.layout.add_log(self.index, &log_name)?;
            Ok((log, snapshot))
        });
        match opened {
            Ok((log, snapshot)) => {
                self.log_bytes = 0;
                self.log = Some(log);
                state.snapshot = Some(Snapshot {
                    open: snapshot,
                    name: snapshot_name,
                    log: log_name,
                });
            }
            Err(error) => {
                // Both names come back at the next attempt (the manifest did not
                // change): a file left under either would fail its `create_new`
                // (EEXIST) at every retry, and the log would never heal.
                let _ = std::fs::remove_file(self.layout.dir.file(&log_name));
                let _ = std::fs::remove_file(self.layout.dir.file(&temp));
                let reason = format!("cannot start a snapshot: {error}");
                self.fault(reason, state);
            }
        }
    }

    pub(super) fn open_file(&self, name: &str, kind: FileKind) -> io::Result<Open> {
        let header = FileHeader {
            kind,
            partition: self.index as u32,
            epoch: self.layout.epoch(),
            first_seq: self.next_seq,
        };
        let file = segment::create(&self.layout.dir.file(name), &header)?;
        Ok(Open {
            file,
            name: name.to_owned(),
            bytes: record::HEADER_BYTES as u64,
        })
    }

    pub(super) fn snapshot_chunk(&mut self, entries: &[Entry], state: &mut Runtime) {
        let Some(snapshot) = &mut state.snapshot else {
            return;
        };
        let mut buf = Vec::with_capacity(FLUSH_BYTES);
        for entry in entries {
            record::encode(&put_record(entry, &self.clock), &mut buf);
        }
        if let Err(error) = snapshot.open.file.write_all(&buf) {
            let reason = format!("cannot write snapshot {}: {error}", snapshot.open.name);
            self.fault(reason, state);
            return;
        }
        snapshot.open.bytes += buf.len() as u64;
        self.outbox.health.counters.add_bytes(buf.len() as u64);
    }

    /// Makes the finished snapshot and its log the partition's whole state.
    pub(super) fn finish_snapshot(&mut self, round: &mut Round, state: &mut Runtime) {
        let Some(snapshot) = state.snapshot.take() else {
            return;
        };
        // The new log's records so far go with it.
        self.flush(round, state);
        let finished = (self.sync)(&snapshot.open.file)
            .and_then(|()| {
                let dir = &self.layout.dir;
                std::fs::rename(dir.file(&snapshot.open.name), dir.file(&snapshot.name))
            })
            .and_then(|()| {
                self.layout
                    .replace(self.index, &snapshot.name, &snapshot.log)
            });
        match finished {
            Ok(()) => {
                self.outbox.health.counters.add_rewrite();
                log::info!(
                    "partition {}: snapshot {} written ({} bytes); log restarted",
                    self.index,
                    snapshot.name,
                    snapshot.open.bytes
                );
                if let Some(reason) = state.fault.take() {
                    log::info!(
                        "partition {}: log healthy again after: {reason}",
                        self.index
                    );
                    self.outbox.health.heal();
                    state.lost_after = None;
                }
            }
            Err(error) => {
                let _ = std::fs::remove_file(self.layout.dir.file(&snapshot.open.name));
                let reason = format!("cannot finish snapshot {}: {error}", snapshot.name);
                self.fault(reason, state);
            }
        }
    }
}

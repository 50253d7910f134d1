//! `mode = "aof"`: opening the data directory, recovering, starting the writers.
//!
//! `Aof` is what `store::Store::open` is given. Before any actor runs it locks the
//! directory, reads the manifest, replays every partition, bumps the epoch and
//! stores it (durably: versions of this run are built on it), gives each partition
//! a fresh log, and starts one writer thread per partition.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    config::PersistenceConfig,
    store::{
        PartitionState, Persistence, Router, StoreClock,
        journal::{Journal, Outbox, WriteHealth},
    },
};

use super::{
    SyncHook,
    dir::{DataDir, Manifest, PartitionFiles},
    layout::{self, Layout},
    record::{self, FileHeader, FileKind},
    recovery::{self, Replayed},
    segment,
    writer::{Open, Writer, put_record},
};

/// Versions are `epoch << EPOCH_SHIFT | counter`: every start takes a new epoch,
/// stored before any write, so a version handed out before a crash (even one lost
/// with the last second of an `everysec` log) is never handed out again. 2^40
/// versions per partition per run; epochs up to 2^13 keep versions below 2^53,
/// exact in JavaScript's numbers.
pub const EPOCH_SHIFT: u32 = 40;

pub struct Aof {
    config: PersistenceConfig,
    sync: SyncHook,
    dir: Option<DataDir>,
    manifest: Option<Manifest>,
    outboxes: Vec<Arc<Outbox>>,
    writers: Vec<JoinHandle<()>>,
}

impl Aof {
    /// Locks and reads `config.dir`; recovery happens in `recover`.
    pub fn open(config: &PersistenceConfig, sync: Option<SyncHook>) -> Result<Aof, String> {
        let dir = DataDir::open(&config.dir).map_err(|error| error.to_string())?;
        let manifest = dir.load_manifest().map_err(|error| error.to_string())?;
        Ok(Aof {
            config: config.clone(),
            sync: sync.unwrap_or_else(|| Arc::new(|file| file.sync_data())),
            dir: Some(dir),
            manifest,
            outboxes: Vec::new(),
            writers: Vec::new(),
        })
    }
}

impl Persistence for Aof {
    fn router(&self) -> Option<[u64; 2]> {
        self.manifest.as_ref().map(|manifest| manifest.hash_seed)
    }

    fn recover(
        &mut self,
        states: &mut [PartitionState],
        router: &Router,
        clock: &StoreClock,
        health: &Arc<WriteHealth>,
    ) -> Result<(), String> {
        let started = Instant::now();
        let dir = self.dir.take().expect("recover runs once");
        let old = self.manifest.take();
        let old_files = old.as_ref().map_or(&[][..], |m| &m.partitions[..]);
        let replayed = recovery::replay(
            &dir,
            old_files,
            states,
            router,
            clock,
            self.config.truncate_corrupt,
        )
        .map_err(|error| error.to_string())?;
        let epoch = old.as_ref().map_or(0, |m| m.epoch) + 1;
        health.version_floor.store(epoch << EPOCH_SHIFT, Relaxed);
        for state in states.iter_mut() {
            state.raise_version(epoch << EPOCH_SHIFT);
            state.shared().counters.reset_activity();
        }
        // A kill between creating a file and the manifest write that names it leaves
        // an orphan, never part of the state: deleted here, and this run's files are
        // numbered past it anyway, or creating them (always `create_new`) would fail
        // on its name at every start if it could not be deleted.
        let on_disk = dir
            .names()
            .map_err(|error| format!("cannot list {}: {error}", dir.path().display()))?;
        remove_orphans(&dir, &on_disk, old_files);
        let same_layout = old_files.len() == states.len();
        let mut manifest = Manifest::new(router.seed, states.len());
        manifest.epoch = epoch;
        let mut logs = Vec::with_capacity(states.len());
        for (index, state) in states.iter().enumerate() {
            let old = old_files.get(index).cloned().unwrap_or_default();
            // Numbered past the old layout's files of the same index too, which
            // stay until the new manifest is stored.
            let listed = old.snapshot.iter().chain(&old.logs).chain(&on_disk);
            let generation = layout::generation_after(listed.map(String::as_str), index);
            let kept = if same_layout {
                without_empty_logs(old, &replayed[index].empty_logs)
            } else {
                PartitionFiles::default()
            };
            let next_seq = replayed.get(index).map_or(0, |r| r.last_seq) + 1;
            let start = Start {
                index,
                epoch,
                next_seq,
                generation,
            };
            let (files, log) = fresh_files(&dir, &start, kept, !same_layout, state, clock)
                .map_err(|error| format!("cannot write to {}: {error}", dir.path().display()))?;
            manifest.partitions[index] = files;
            logs.push((log, next_seq));
        }
        dir.store_manifest(&manifest).map_err(|error| {
            format!(
                "cannot write the manifest in {}: {error}",
                dir.path().display()
            )
        })?;
        if same_layout {
            dir.remove(replayed.iter().flat_map(|r| &r.empty_logs), "an empty log");
        } else {
            let files = old_files
                .iter()
                .flat_map(|f| f.snapshot.iter().chain(&f.logs));
            dir.remove(files, "a file of the previous layout");
        }
        report(
            &replayed,
            old_files.len(),
            states.len(),
            started.elapsed(),
            &dir,
            health,
        );
        let layout = Arc::new(Layout::new(dir, manifest));
        let _ = health.epochs.set(Arc::downgrade(&layout) as _);
        for (index, (state, (log, next_seq))) in states.iter_mut().zip(logs).enumerate() {
            let log_bytes = replayed
                .get(index)
                .filter(|_| same_layout)
                .map_or(0, |r| r.log_bytes);
            self.start_writer(
                index, state, log, next_seq, log_bytes, &layout, clock, health,
            );
        }
        Ok(())
    }

    fn finish(&mut self) {
        for outbox in &self.outboxes {
            outbox.close();
        }
        for writer in self.writers.drain(..) {
            let _ = writer.join();
        }
    }
}

impl Aof {
    #[allow(clippy::too_many_arguments)]
    fn start_writer(
        &mut self,
        index: usize,
        state: &mut PartitionState,
        log: Open,
        next_seq: u64,
        log_bytes: u64,
        layout: &Arc<Layout>,
        clock: &StoreClock,
        health: &Arc<WriteHealth>,
    ) {
        let outbox = Arc::new(Outbox::new(Arc::clone(health), next_seq - 1));
        state.attach_journal(Journal::new(Arc::clone(&outbox)));
        let writer = Writer {
            index,
            outbox: Arc::clone(&outbox),
            shared: Arc::clone(state.shared()),
            layout: Arc::clone(layout),
            clock: clock.clone(),
            fsync: self.config.fsync,
            sync: Arc::clone(&self.sync),
            rewrite_percentage: self.config.rewrite_percentage,
            rewrite_min_size: self.config.rewrite_min_size.as_u64(),
            retry_interval: self.config.retry_interval,
            log: Some(log),
            log_bytes,
            next_seq,
        };
        let thread = std::thread::Builder::new()
            .name(format!("rustkv-log-{index}"))
            .spawn(move || writer.run())
            .expect("a log writer thread starts");
        self.outboxes.push(outbox);
        self.writers.push(thread);
    }
}

/// Where a partition's files for this run start.
struct Start {
    index: usize,
    epoch: u64,
    next_seq: u64,
    generation: u64,
}

/// The partition's files for this run: those kept (same layout) or a snapshot of
/// what was loaded (new layout), plus a new, empty log that this run appends to.
fn fresh_files(
    dir: &DataDir,
    start: &Start,
    mut files: PartitionFiles,
    snapshot: bool,
    state: &PartitionState,
    clock: &StoreClock,
) -> std::io::Result<(PartitionFiles, Open)> {
    let Start {
        index,
        epoch,
        next_seq,
        generation,
    } = *start;
    let header = |kind| FileHeader {
        kind,
        partition: index as u32,
        epoch,
        first_seq: next_seq,
    };
    if snapshot && !state.is_empty() {
        let name = layout::snapshot_name(index, generation);
        write_snapshot(dir, &name, &header(FileKind::Snapshot), state, clock)?;
        files.snapshot = Some(name);
    }
    let name = layout::log_name(index, generation);
    let file = segment::create(&dir.file(&name), &header(FileKind::Log))?;
    files.logs.push(name.clone());
    let open = Open {
        file,
        name,
        bytes: record::HEADER_BYTES as u64,
    };
    Ok((files, open))
}

/// Writes `state`'s entries, least recently used first, as snapshot `name`
/// (temp file, fsync, rename).
fn write_snapshot(
    dir: &DataDir,
    name: &str,
    header: &FileHeader,
    state: &PartitionState,
    clock: &StoreClock,
) -> std::io::Result<()> {
    use std::io::Write;
    let temp = dir.file(&format!("{name}.tmp"));
    let mut file = std::io::BufWriter::with_capacity(1 << 20, segment::create(&temp, header)?);
    let mut buf = Vec::new();
    for entry in state.entries_oldest_first() {
        buf.clear();
        record::encode(&put_record(entry, clock), &mut buf);
        file.write_all(&buf)?;
    }
    let file = file.into_inner().map_err(|error| error.into_error())?;
    file.sync_data()?;
    std::fs::rename(&temp, dir.file(name))
}

/// Deletes the data files the manifest does not name: left by a kill between
/// creating them and the manifest write that would have named them, so nothing
/// in them was ever acknowledged (a log is named before it takes records).
fn remove_orphans(dir: &DataDir, on_disk: &[String], listed: &[PartitionFiles]) {
    let named = |name: &str| {
        listed.iter().any(|files| {
            files.snapshot.as_deref() == Some(name) || files.logs.iter().any(|l| l == name)
        })
    };
    let data_file = |name: &str| {
        name.starts_with('p')
            && (name.ends_with(".log") || name.ends_with(".snap") || name.ends_with(".snap.tmp"))
    };
    let orphans: Vec<&String> = on_disk
        .iter()
        .filter(|name| data_file(name) && !named(name))
        .collect();
    if !orphans.is_empty() {
        log::warn!("deleting {orphans:?}: not in the manifest (left by a crash)");
    }
    dir.remove(orphans, "left by a crash");
}

/// `files` without the logs that held no record.
fn without_empty_logs(mut files: PartitionFiles, empty: &[String]) -> PartitionFiles {
    files.logs.retain(|log| !empty.contains(log));
    files
}

/// Logs and counts what recovery did.
fn report(
    replayed: &[Replayed],
    old_partitions: usize,
    partitions: usize,
    took: Duration,
    dir: &DataDir,
    health: &WriteHealth,
) {
    let mut total = Replayed::default();
    replayed.iter().for_each(|r| total.add(r));
    let counters = &health.counters;
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    counters.recovery_nanos.store(nanos, Relaxed);
    counters.records_loaded.store(total.records, Relaxed);
    counters.records_expired.store(total.expired, Relaxed);
    counters.bytes_truncated.store(total.truncated, Relaxed);
    health.txns.raise(total.top_txn);
    if total.txn_parts_dropped > 0 {
        log::warn!(
            "{} transaction parts not loaded: their transactions were not whole in the logs",
            total.txn_parts_dropped
        );
    }
    let megabytes = total.bytes as f64 / 1e6;
    let rate = megabytes / took.as_secs_f64().max(1e-9);
    log::info!(
        "recovered {} records ({megabytes:.1} MB, {rate:.0} MB/s) from {} in {took:.2?}: \
         {} entries had expired meanwhile and were not loaded{}{}",
        total.records,
        dir.path().display(),
        total.expired,
        if total.truncated > 0 {
            format!("; {} damaged bytes cut off file tails", total.truncated)
        } else {
            String::new()
        },
        if old_partitions != partitions && old_partitions > 0 {
            format!("; re-routed from {old_partitions} partitions to {partitions}")
        } else {
            String::new()
        }
    );
}

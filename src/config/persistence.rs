//! The `[persistence]` section: whether and how the store survives a restart.
//!
//! The names and meanings of `mode`, `dir` and `fsync` follow Redis's
//! `appendonly`, `dir` and `appendfsync`, so operators know them already.

use std::{path::PathBuf, time::Duration};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    pub mode: Mode,
    /// Created if missing; relative paths are relative to the working directory.
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// Compact a partition's log once it exceeds this percentage of the partition's
    /// live data (and `rewrite_min_size`), as Redis's auto-aof-rewrite-percentage.
    pub rewrite_percentage: u64,
    /// No compaction below this much log per partition.
    pub rewrite_min_size: ByteSize,
    /// Start anyway when a file holds a bad record followed by valid ones, dropping
    /// everything from the bad record on (otherwise start-up stops and names it).
    pub truncate_corrupt: bool,
    /// How often a log that failed to write retries from a fresh snapshot.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nothing is written; a restart starts empty.
    Off,
    /// An append-only log per partition, compacted into snapshots.
    Aof,
}

/// When the log is flushed to the disk (`fdatasync`). In every mode a write is
/// acknowledged only after its record reached the OS (`write(2)`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before each acknowledgement (writes arriving during a sync share the next).
    Always,
    /// About once a second.
    Everysec,
    /// When the OS decides.
    No,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Off,
            dir: PathBuf::from("data"),
            fsync: Fsync::Everysec,
            rewrite_percentage: 100,
            rewrite_min_size: ByteSize::mib(64),
            truncate_corrupt: false,
            retry_interval: Duration::from_secs(1),
        }
    }
}

impl PersistenceConfig {
    pub fn enabled(&self) -> bool {
        self.mode == Mode::Aof
    }

    pub(super) fn validate(&self, partitions: usize) -> Result<(), ConfigError> {
        check(
            !self.dir.as_os_str().is_empty(),
            "persistence.dir",
            self.dir.display(),
            "must not be empty",
        )?;
        check(
            self.rewrite_percentage >= 10,
            "persistence.rewrite_percentage",
            self.rewrite_percentage,
            "must be at least 10",
        )?;
        let retry = self.retry_interval;
        check(
            retry >= Duration::from_millis(10) && retry <= Duration::from_secs(3600),
            "persistence.retry_interval",
            humantime::format_duration(retry),
            "must be between 10ms and 1h",
        )?;
        // Each partition's log has its own writer thread.
        check(
            !self.enabled() || partitions <= MAX_PERSISTENT_PARTITIONS,
            "store.partitions",
            partitions,
            format!("at most {MAX_PERSISTENT_PARTITIONS} with persistence on (a log thread each)"),
        )
    }
}

/// Most partitions with persistence on: each has a log writer thread.
pub const MAX_PERSISTENT_PARTITIONS: usize = 256;

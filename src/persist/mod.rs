//! Durability: the store's changes on disk, and the store rebuilt from them.
//!
//! - `record`: the byte format of records and file headers (one format for logs,
//!   snapshots and, later, the replication stream).
//! - `segment`: reading a log or snapshot back, with a torn tail told from corruption.
//! - `dir`: the data directory, its lock, atomic replaces and the manifest.
//! - `layout`: which files make up the store, as the writers change them.
//! - `writer`: one thread per partition turning its journal into files (group commit,
//!   snapshots, disk faults).
//! - `recovery`: replaying the files into fresh partitions at start-up.
//! - `aof`: `mode = "aof"`, tying these together behind `store::Persistence`.
//!
//! The store never depends on this module: it defines the journal it writes through
//! (`store::journal`), and this module implements it.

pub mod aof;
pub mod dir;
mod layout;
pub mod record;
mod recovery;
pub mod segment;
mod writer;

pub use aof::Aof;
pub use dir::{DataDir, DirError, Manifest, PartitionFiles};
pub use record::{
    Cause, DecodeError, FileHeader, FileKind, HeaderError, Record, decode, encode, encoded_len,
};
pub use segment::{Damage, SegmentError, Summary};
pub use writer::{change_record, put_record};

/// How a log file is made durable: `File::sync_data` (fdatasync), unless a test
/// injects something that observes or delays it.
pub type SyncHook = std::sync::Arc<dyn Fn(&std::fs::File) -> std::io::Result<()> + Send + Sync>;

#[cfg(test)]
mod tests;

//! The data directory: who may write it, how a file in it is replaced, and the
//! manifest that says which files hold the state.
//!
//! One running RustKV owns a directory, enforced by an exclusive `flock` on `LOCK`:
//! two servers appending to the same logs would interleave records and lose both. The
//! kernel drops the lock when the process dies, even by `kill -9`, so there is no stale
//! lock to clean up by hand. The `MANIFEST` is the single place that names live files;
//! it is only ever replaced whole (`write_atomic`), so a crash leaves the old or the
//! new one, never a mix.

use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::record::FORMAT_VERSION;

const LOCK_FILE: &str = "LOCK";
const MANIFEST_FILE: &str = "MANIFEST";
const PROBE_FILE: &str = "WRITE_PROBE";

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot create data directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("data directory {path} is not writable: {source}")]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("cannot lock data directory {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "data directory {path} is locked by another running RustKV ({}); \
         stop it or choose another persistence directory",
        holder(.pid)
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid manifest: {source}")]
    BadManifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{path} is in on-disk format {format}, but this build reads format {FORMAT_VERSION} \
         (written by a newer RustKV?)"
    )]
    UnsupportedFormat { path: PathBuf, format: u32 },
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_owned(),
    }
}

/// An open data directory, locked for this process until dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    /// Holds the exclusive flock on `LOCK`; closing it releases the directory.
    #[expect(dead_code, reason = "never read: held for its flock until drop")]
    lock: File,
}

/// Which files hold the state, stored as `MANIFEST` (pretty JSON, for operators).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// `FORMAT_VERSION` of the files it names; an unknown one is refused at start.
    pub format: u32,
    /// SipHash keys that route keys to partitions: records were split by them, so a
    /// restart must route with the same keys to find each key's partition.
    pub hash_seed: [u64; 2],
    /// Bumped and stored on every start and folded into versions, so a version handed
    /// out before a crash is never handed out again for a different value.
    pub epoch: u64,
    /// Index = partition.
    pub partitions: Vec<PartitionFiles>,
}

/// One partition's files, relative to the directory: the snapshot is replayed first,
/// then the logs in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PartitionFiles {
    pub snapshot: Option<String>,
    pub logs: Vec<String>,
}

impl Manifest {
    /// A manifest for a new directory: current format, epoch 0, no files yet.
    pub fn new(hash_seed: [u64; 2], partitions: usize) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            hash_seed,
            epoch: 0,
            partitions: vec![PartitionFiles::default(); partitions],
        }
    }
}

impl DataDir {
    /// Creates the directory if needed, checks it is writable and locks it.
    pub fn open(path: &Path) -> Result<DataDir, DirError> {
        fs::create_dir_all(path).map_err(|source| DirError::Create {
            path: path.to_owned(),
            source,
        })?;
        probe_writable(path).map_err(|source| DirError::NotWritable {
            path: path.to_owned(),
            source,
        })?;
        let lock = lock(path)?;
        Ok(DataDir {
            path: path.to_owned(),
            lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces `name` atomically and durably: write `name.tmp`, fsync it, rename over
    /// `name`, fsync the directory (without which the rename may not survive a crash).
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.path, name, bytes)
    }

    /// The names of the files in the directory, listed in the manifest or not.
    pub fn names(&self) -> io::Result<Vec<String>> {
        fs::read_dir(&self.path)?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    /// Deletes the files `names` that no stored manifest names any more, best effort:
    /// one that cannot be deleted is only wasted space, so it is logged, with `what`
    /// it was, and start-up or compaction goes on.
    pub fn remove<'a>(&self, names: impl IntoIterator<Item = &'a String>, what: &str) {
        for name in names {
            if let Err(error) = fs::remove_file(self.file(name)) {
                log::warn!("cannot delete {name} ({what}): {error}");
            }
        }
    }

    /// Fsyncs the directory itself, making created, renamed and removed names durable.
    pub fn sync(&self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()
    }

    /// The stored manifest, `None` if there is none yet (a new directory).
    pub fn load_manifest(&self) -> Result<Option<Manifest>, DirError> {
        let path = self.file(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DirError::Read { path, source }),
        };
        parse_manifest(&path, &bytes).map(Some)
    }

    pub fn store_manifest(&self, manifest: &Manifest) -> io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(manifest)?;
        bytes.push(b'\n');
        self.write_atomic(MANIFEST_FILE, &bytes)
    }
}

fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<Manifest, DirError> {
    /// The format alone is read first: a newer manifest may not parse as this one, and
    /// "format 2" tells an operator more than "missing field".
    #[derive(Deserialize)]
    struct Format {
        format: u32,
    }
    let bad = |source| DirError::BadManifest {
        path: path.to_owned(),
        source,
    };
    let Format { format } = serde_json::from_slice(bytes).map_err(bad)?;
    if format != FORMAT_VERSION {
        return Err(DirError::UnsupportedFormat {
            path: path.to_owned(),
            format,
        });
    }
    serde_json::from_slice(bytes).map_err(bad)
}

/// Creating and removing a file is what persistence will do; better to fail at start
/// than at the first snapshot.
fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(PROBE_FILE);
    File::create(&probe)?;
    fs::remove_file(&probe)
}

/// Replaces `dir/name` atomically and durably (see `DataDir::write_atomic`); for
/// the files others keep beside the logs, such as a replica's position.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

fn lock(dir: &Path) -> Result<File, DirError> {
    let path = dir.join(LOCK_FILE);
    let lock_error = |source| DirError::Lock {
        path: path.clone(),
        source,
    };
    // Not truncated on open: until we hold the lock, the pid in it is the holder's.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(DirError::Locked {
                path: dir.to_owned(),
                pid: holder_pid(&mut file),
            });
        }
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    // Only for the message a second instance prints; not synced.
    file.set_len(0).map_err(lock_error)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_error)?;
    Ok(file)
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

//! Which files make up the store on disk, shared by every partition's writer.
//!
//! The manifest is the only truth: a file it does not name is not replayed, so a
//! new file becomes part of the state only once a manifest naming it has been
//! written (temp, fsync, rename, fsync dir). Files it stops naming are deleted
//! after that write, never before.

use std::{
    io,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use super::dir::{DataDir, Manifest, PartitionFiles};
use crate::store::journal::Epochs;

#[derive(Debug)]
pub struct Layout {
    pub dir: DataDir,
    /// This run's epoch (folded into versions; in every new file's header).
    epoch: AtomicU64,
    manifest: Mutex<Manifest>,
}

impl Layout {
    pub fn new(dir: DataDir, manifest: Manifest) -> Layout {
        Layout {
            dir,
            epoch: AtomicU64::new(manifest.epoch),
            manifest: Mutex::new(manifest),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// Moves to the next epoch, durably, if `seen` is still in `epoch` (another
    /// writer may have moved already). Answers the epoch now in force.
    pub fn next_epoch(&self, seen: u64) -> io::Result<u64> {
        let mut manifest = self.manifest.lock().expect("not poisoned");
        if manifest.epoch != seen {
            return Ok(manifest.epoch);
        }
        manifest.epoch += 1;
        if let Err(error) = self.dir.store_manifest(&manifest) {
            manifest.epoch -= 1;
            return Err(error);
        }
        self.epoch.store(manifest.epoch, Relaxed);
        Ok(manifest.epoch)
    }

    /// The next unused file number of partition `index`.
    pub fn next_generation(&self, index: usize) -> u64 {
        let manifest = self.manifest.lock().expect("not poisoned");
        next_generation(&manifest.partitions[index], index)
    }

    /// Appends a new log to the partition's list, durably, before any record goes
    /// into it.
    pub fn add_log(&self, index: usize, log: &str) -> io::Result<()> {
        let mut manifest = self.manifest.lock().expect("not poisoned");
        manifest.partitions[index].logs.push(log.to_owned());
        let stored = self.dir.store_manifest(&manifest);
        if stored.is_err() {
            manifest.partitions[index].logs.pop();
        }
        stored
    }

    /// Makes `snapshot` and `log` the partition's whole state, then deletes the
    /// files that state replaces.
    pub fn replace(&self, index: usize, snapshot: &str, log: &str) -> io::Result<()> {
        let mut manifest = self.manifest.lock().expect("not poisoned");
        let files = PartitionFiles {
            snapshot: Some(snapshot.to_owned()),
            logs: vec![log.to_owned()],
        };
        let old = std::mem::replace(&mut manifest.partitions[index], files);
        if let Err(error) = self.dir.store_manifest(&manifest) {
            manifest.partitions[index] = old;
            return Err(error);
        }
        drop(manifest);
        let replaced = old.snapshot.iter().chain(&old.logs);
        let replaced = replaced.filter(|name| *name != snapshot && *name != log);
        self.dir.remove(replaced, "replaced by a snapshot");
        Ok(())
    }
}

/// One past the highest file number the partition's files carry (`p{i}-{n}.…`).
pub fn next_generation(files: &PartitionFiles, index: usize) -> u64 {
    let listed = files.snapshot.iter().chain(&files.logs);
    generation_after(listed.map(String::as_str), index)
}

/// One past the highest file number of partition `index` among `names`, whatever
/// they are (`.log`, `.snap`, `.snap.tmp`); 1 if none is the partition's.
pub fn generation_after<'a>(names: impl IntoIterator<Item = &'a str>, index: usize) -> u64 {
    let prefix = format!("p{index}-");
    let numbers = names.into_iter().filter_map(|name| {
        let rest = name.strip_prefix(&prefix)?;
        rest.split('.').next()?.parse::<u64>().ok()
    });
    numbers.max().map_or(1, |highest| highest + 1)
}

/// The names of generation `n` of partition `index`.
pub fn log_name(index: usize, generation: u64) -> String {
    format!("p{index}-{generation:06}.log")
}

pub fn snapshot_name(index: usize, generation: u64) -> String {
    format!("p{index}-{generation:06}.snap")
}

impl Epochs for Layout {
    /// A promotion's epoch, kept so that a restart's versions start above it.
    fn raise_to(&self, epoch: u64) -> io::Result<()> {
        let mut manifest = self.manifest.lock().expect("not poisoned");
        if manifest.epoch >= epoch {
            return Ok(());
        }
        let kept = manifest.epoch;
        manifest.epoch = epoch;
        if let Err(error) = self.dir.store_manifest(&manifest) {
            manifest.epoch = kept;
            return Err(error);
        }
        self.epoch.store(epoch, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_epoch_is_stored_once_per_epoch_seen() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let mut manifest = Manifest::new([1, 2], 1);
        manifest.epoch = 7;
        let layout = Layout::new(data, manifest);
        assert_eq!(layout.next_epoch(7).unwrap(), 8);
        // A second writer that saw 7 too does not move it again.
        assert_eq!(layout.next_epoch(7).unwrap(), 8);
        assert_eq!(layout.epoch(), 8);
        assert_eq!(layout.dir.load_manifest().unwrap().unwrap().epoch, 8);
    }

    #[test]
    fn generations_count_on_from_the_highest_file() {
        let files = PartitionFiles {
            snapshot: Some(snapshot_name(3, 7)),
            logs: vec![log_name(3, 7), log_name(3, 12)],
        };
        assert_eq!(next_generation(&files, 3), 13);
        assert_eq!(next_generation(&PartitionFiles::default(), 0), 1);
    }

    #[test]
    fn generations_count_unlisted_files_too() {
        // What a kill between creating files and the manifest write leaves behind.
        let names = [
            "MANIFEST",
            "MANIFEST.tmp",
            "p3-000004.log",
            "p3-000009.snap.tmp",
            "p30-000050.log",
        ];
        assert_eq!(generation_after(names, 3), 10);
        assert_eq!(generation_after(names, 30), 51);
        assert_eq!(generation_after(names, 4), 1);
    }
}

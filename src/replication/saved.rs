//! A persisting replica's replication id and position, kept next to its data so
//! that after a restart it resumes from its primary's backlog instead of taking a
//! full copy.
//!
//! Saved only after the records up to the position were written to the replica's
//! own logs, so the data on disk is never behind the saved position; it may be
//! ahead, and re-applying a record (a put with its version, a removal) is
//! harmless. Written to a temporary file, synced and renamed into place (the
//! directory synced too), so a crash or power loss leaves the old file or the new
//! one.

use std::{io, path::Path};

use serde::{Deserialize, Serialize};

use super::backlog::Position;

/// The file's name in `[persistence] dir`.
pub const FILE: &str = "replication.json";

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Saved {
    /// Empty while a full copy is under way (nothing to resume from).
    pub replication_id: String,
    pub position: Position,
}

/// The saved state, if there is a usable one.
pub fn load(dir: &Path) -> Option<Saved> {
    let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
    match serde_json::from_str::<Saved>(&text) {
        Ok(saved) if !saved.replication_id.is_empty() => Some(saved),
        Ok(_) => None,
        Err(error) => {
            log::warn!("ignoring {}: {error}", dir.join(FILE).display());
            None
        }
    }
}

pub fn store(dir: &Path, saved: &Saved) -> io::Result<()> {
    let bytes = serde_json::to_vec(saved).map_err(io::Error::other)?;
    crate::persist::dir::write_atomic(dir, FILE, &bytes)
}

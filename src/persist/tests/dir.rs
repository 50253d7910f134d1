//! The data directory: one owner at a time, atomic replace, the manifest.

use std::fs;

use crate::persist::{
    dir::{DataDir, DirError, Manifest, PartitionFiles},
    record::FORMAT_VERSION,
};

fn manifest() -> Manifest {
    let mut manifest = Manifest::new([u64::MAX, 42], 3);
    manifest.epoch = 9;
    manifest.partitions[1] = PartitionFiles {
        snapshot: Some("snapshot-1-9".to_owned()),
        logs: vec!["log-1-9".to_owned(), "log-1-10".to_owned()],
    };
    manifest
}

/// flock belongs to the open file description, so a second open in the same process
/// conflicts just as a second process would.
#[test]
fn a_second_open_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = DataDir::open(dir.path()).unwrap();
    let error = DataDir::open(dir.path()).unwrap_err();
    let pid = std::process::id();
    assert!(
        matches!(error, DirError::Locked { pid: Some(held), .. } if held == pid),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("locked") && message.contains(&format!("pid {pid}")),
        "{message}"
    );
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    drop(first);
    let again = DataDir::open(dir.path()).unwrap();
    assert_eq!(again.path(), dir.path());
}

#[test]
fn open_creates_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/data");
    let data = DataDir::open(&nested).unwrap();
    assert!(nested.is_dir());
    assert_eq!(data.file("MANIFEST"), nested.join("MANIFEST"));
    let left: Vec<_> = fs::read_dir(&nested)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["LOCK"], "the write probe is removed");
}

#[test]
fn a_path_under_a_regular_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    fs::write(&file, b"not a directory").unwrap();
    for path in [file.join("data"), file.clone()] {
        let error = DataDir::open(&path).unwrap_err();
        assert!(matches!(error, DirError::Create { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot create data directory"),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}

#[test]
fn write_atomic_replaces_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    data.write_atomic("state", b"old").unwrap();
    data.write_atomic("state", b"new").unwrap();
    assert_eq!(fs::read(data.file("state")).unwrap(), b"new");
    assert!(!data.file("state.tmp").exists());
    drop(data);
    let reopened = DataDir::open(dir.path()).unwrap();
    assert_eq!(fs::read(reopened.file("state")).unwrap(), b"new");
}

#[test]
fn the_manifest_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    assert_eq!(data.load_manifest().unwrap(), None);
    data.store_manifest(&manifest()).unwrap();
    assert_eq!(data.load_manifest().unwrap(), Some(manifest()));
    let text = fs::read_to_string(data.file("MANIFEST")).unwrap();
    assert!(
        text.contains("\"epoch\": 9"),
        "pretty, for operators: {text}"
    );
}

#[test]
fn a_manifest_of_another_format_is_refused_by_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    data.write_atomic("MANIFEST", br#"{"format": 2, "shards": {}}"#)
        .unwrap();
    let error = data.load_manifest().unwrap_err();
    assert!(
        matches!(error, DirError::UnsupportedFormat { format: 2, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("format {FORMAT_VERSION}")),
        "{message}"
    );
}

#[test]
fn a_damaged_manifest_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    for bytes in [&b"{\"format\": 1"[..], b"{\"format\": 1}", b""] {
        data.write_atomic("MANIFEST", bytes).unwrap();
        let error = data.load_manifest().unwrap_err();
        assert!(matches!(error, DirError::BadManifest { .. }), "{error:?}");
        assert!(error.to_string().contains("MANIFEST"), "{error}");
    }
}

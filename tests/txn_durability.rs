//! Transactions with persistence on: a transaction comes back from the logs
//! whole or not at all, across restarts, torn logs and compaction.
//!
//! A transaction writes one part per partition, each in its partition's log. The
//! crash these tests stage is the one that matters: some parts on disk, another
//! not (its log's tail torn off), as a kill between two partitions' writes leaves.

mod common;

use std::{
    fs,
    path::Path,
    time::{Duration, SystemTime},
};

use common::TestServer;
use serde_json::{Value, json};

fn config(dir: &Path, extra: &str) -> String {
    format!(
        "[persistence]\nmode = \"aof\"\ndir = \"{}\"\n{extra}",
        dir.display()
    )
}

fn txn(server: &TestServer, body: Value) -> Value {
    let bytes = serde_json::to_vec(&body).unwrap();
    let reply = server.request(
        "POST",
        "/v1/txn",
        &[("Content-Type", "application/json")],
        Some(&bytes),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn value(server: &TestServer, key: &str) -> Option<Value> {
    let reply = server.get(&format!("/v1/kv/{key}"));
    (reply.status == 200).then(|| reply.json())
}

/// Puts `key` (a new key) with the value "old"; answers its partition, by the
/// per-partition key counts.
fn put_new(server: &TestServer, key: &str) -> usize {
    let counts = |server: &TestServer| -> Vec<u64> {
        let stats = server.stats();
        stats["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["keys"].as_u64().unwrap())
            .collect()
    };
    let before = counts(server);
    let reply = server.request("PUT", &format!("/v1/kv/{key}"), &[], Some(b"\"old\""));
    assert_eq!(reply.status, 201);
    let after = counts(server);
    (0..after.len()).find(|&p| after[p] > before[p]).unwrap()
}

/// Two keys on different partitions, and the first one's partition.
fn keys_on_two_partitions(server: &TestServer) -> (String, String, usize) {
    let first = ("acct0".to_owned(), put_new(server, "acct0"));
    for i in 1..64 {
        let key = format!("acct{i}");
        if put_new(server, &key) != first.1 {
            return (first.0, key, first.1);
        }
    }
    panic!("64 keys on one partition");
}

fn logs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    logs.sort();
    logs
}

/// A frame ending a file as a transaction's commit record does: 4-byte length
/// 13, checksum, kind 4, id (8) and count (4).
const COMMIT_FRAME: usize = 4 + 4 + 1 + 8 + 4;

fn ends_with_commit(bytes: &[u8]) -> bool {
    let Some(start) = bytes.len().checked_sub(COMMIT_FRAME) else {
        return false;
    };
    bytes[start..start + 4] == 13u32.to_le_bytes() && bytes[start + 8] == 4
}

#[test]
fn a_transaction_survives_a_restart_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(dir.path(), "[store]\npartitions = 4\n");
    let server = TestServer::start_at(&toml, wall, None);
    let puts: Vec<Value> = (0..12)
        .map(|i| json!({"op": "put", "key": format!("t{i}"), "value": i}))
        .collect();
    assert_eq!(txn(&server, json!({"success": puts}))["succeeded"], true);
    let done = txn(
        &server,
        json!({"compare": [{"key": "t0", "value": 0}], "success": [{"op": "delete", "key": "t1"}, {"op": "put", "key": "t2", "value": "two"}]}),
    );
    assert_eq!(done["succeeded"], true);
    drop(server);
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(value(&server, "t0"), Some(json!(0)));
    assert_eq!(value(&server, "t1"), None);
    assert_eq!(value(&server, "t2"), Some(json!("two")));
    for i in 3..12 {
        assert_eq!(value(&server, &format!("t{i}")), Some(json!(i)));
    }
    // New transactions after the restart still work, and their ids are new.
    let done = txn(
        &server,
        json!({"success": [{"op": "put", "key": "t0", "value": "again"}]}),
    );
    assert_eq!(done["succeeded"], true);
}

/// One partition's part is torn off its log (its commit record never made it):
/// after the restart neither part is there, though the other is whole in its log.
#[test]
fn a_transaction_missing_a_part_is_not_loaded_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(dir.path(), "[store]\npartitions = 4\n");
    let server = TestServer::start_at(&toml, wall, None);
    let (a, b, _) = keys_on_two_partitions(&server);
    let puts =
        json!([{"op": "put", "key": a, "value": "new"}, {"op": "put", "key": b, "value": "new"}]);
    assert_eq!(txn(&server, json!({"success": puts}))["succeeded"], true);
    drop(server);
    let parts: Vec<_> = logs(dir.path())
        .into_iter()
        .filter(|log| ends_with_commit(&fs::read(log).unwrap()))
        .collect();
    assert_eq!(parts.len(), 2, "one part in each of two logs");
    let torn = &parts[0];
    let bytes = fs::read(torn).unwrap();
    // Cut into the commit record: a kill in the middle of writing it.
    fs::write(torn, &bytes[..bytes.len() - COMMIT_FRAME + 5]).unwrap();
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(
        value(&server, &a),
        Some(json!("old")),
        "{a} from a torn transaction"
    );
    assert_eq!(
        value(&server, &b),
        Some(json!("old")),
        "{b} from a torn transaction"
    );
}

/// After one partition compacts (its part of the transaction becomes snapshot
/// state, its log replaced), the other partition's part must still load: the
/// new log's floor says the transaction was whole.
#[test]
fn compaction_of_one_part_keeps_the_transaction_whole() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(
        dir.path(),
        "rewrite_min_size = \"16KiB\"\nrewrite_percentage = 10\n[store]\npartitions = 2\n",
    );
    let server = TestServer::start_at(&toml, wall, None);
    let (a, b, partition) = keys_on_two_partitions(&server);
    let puts =
        json!([{"op": "put", "key": a, "value": "new"}, {"op": "put", "key": b, "value": "new"}]);
    assert_eq!(txn(&server, json!({"success": puts}))["succeeded"], true);
    // Grow only `a`'s log until it compacts: overwrite a key of its partition.
    let filler = (0..64)
        .map(|i| format!("fill{i}"))
        .find(|key| put_new(&server, key) == partition)
        .unwrap();
    let rewrites = |server: &TestServer| -> f64 {
        let text = server.get("/metrics").body;
        let line = text
            .lines()
            .find(|line| line.starts_with("rustkv_log_rewrites_total "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let pad = "x".repeat(2000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    while rewrites(&server) < 1.0 {
        assert!(std::time::Instant::now() < deadline, "no compaction");
        round += 1;
        let body = json!({"round": round, "pad": pad}).to_string();
        server.request(
            "PUT",
            &format!("/v1/kv/{filler}"),
            &[],
            Some(body.as_bytes()),
        );
        if round % 10 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(server);
    let snapshots = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "snap")
        })
        .count();
    assert_eq!(snapshots, 1, "only the filler's partition compacted");
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(value(&server, &a), Some(json!("new")));
    assert_eq!(
        value(&server, &b),
        Some(json!("new")),
        "the uncompacted part was dropped"
    );
}

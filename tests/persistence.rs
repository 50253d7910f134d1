//! Durability over HTTP: what a restart keeps and drops, how versions and TTLs
//! survive it, `fsync = "always"` waiting for its sync, compaction, and start-up on
//! damaged or locked directories.
//!
//! Restarts here are graceful (the server stops, its logs are synced); `crash.rs`
//! kills the real binary instead. Time is the mock clock plus an injected wall
//! clock, so "the server was down for 30 s" is a start-up argument, not a sleep.

mod common;

use std::{
    fs,
    path::Path,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
        mpsc,
    },
    thread,
    time::{Duration, SystemTime},
};

use common::TestServer;
use rustkv::persist::SyncHook;
use serde_json::{Value, json};

fn config(dir: &Path, extra: &str) -> String {
    format!(
        "[persistence]\nmode = \"aof\"\ndir = \"{}\"\n{extra}",
        dir.display()
    )
}

fn put(server: &TestServer, key: &str, value: Value, query: &str) -> u64 {
    let reply = put_reply(server, &format!("{key}{query}"), &value);
    assert!(matches!(reply.status, 200 | 201), "PUT {key}: {reply:?}");
    reply.json()["version"].as_u64().expect("a version")
}

/// The reply to a native PUT of `value` at `target` (a key and its query).
fn put_reply(server: &TestServer, target: &str, value: &Value) -> common::Reply {
    server.request(
        "PUT",
        &format!("/v1/kv/{target}"),
        &[("Content-Type", "application/json")],
        Some(value.to_string().as_bytes()),
    )
}

/// The value, version and seconds to expiry of `key`, or `None` if absent.
fn read(server: &TestServer, key: &str) -> Option<(Value, u64, Option<u64>)> {
    let reply = server.get(&format!("/v1/kv/{key}"));
    if reply.status == 404 {
        return None;
    }
    assert_eq!(reply.status, 200, "{reply:?}");
    let etag = reply.header("etag").expect("an ETag").trim_matches('"');
    let expires = reply.header("x-expires-in").map(|s| s.parse().unwrap());
    Some((reply.json(), etag.parse().unwrap(), expires))
}

fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server.get("/metrics").body;
    let line = text
        .lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{name} not in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn restart_keeps_values_versions_and_ttls_and_drops_what_left() {
    let dir = tempfile::tempdir().unwrap();
    // One partition of capacity 3, so the fourth insert evicts the first.
    let toml = config(dir.path(), "[store]\npartitions = 1\ncapacity = 3\n");
    let wall = SystemTime::now();
    let server = TestServer::start_at(&toml, wall, None);
    let evicted = put(&server, "evicted", json!("old"), "");
    assert!(evicted > 0);
    let kept = put(&server, "kept", json!({"a": [1, 2]}), "");
    let ttl = put(&server, "ttl", json!(7), "?ttl=60");
    put(&server, "deleted", json!(null), "");
    assert_eq!(server.delete("/v1/kv/deleted").status, 204);
    put(&server, "short", json!("s"), "?ttl=5");
    assert_eq!(read(&server, "evicted"), None, "capacity 3 evicted it");
    server.advance(Duration::from_secs(6));
    // The tick reclaims "short" and logs its expiry.
    server.wait_for_stats(Duration::from_secs(5), |s| s["expirations"] == 1);
    drop(server);

    // Back 30 s of wall-clock time later: "ttl" has about 30 s left. With room
    // for all keys now, so "evicted" would come back if its eviction had not
    // been logged.
    let toml = toml.replace("capacity = 3", "capacity = 100");
    let later = wall + Duration::from_secs(30);
    let server = TestServer::start_at(&toml, later, None);
    assert_eq!(
        read(&server, "kept"),
        Some((json!({"a": [1, 2]}), kept, None))
    );
    let (value, version, expires) = read(&server, "ttl").expect("ttl survives");
    assert_eq!((value, version), (json!(7), ttl));
    assert!(
        expires.is_some_and(|s| (29..=30).contains(&s)),
        "{expires:?}"
    );
    for gone in ["evicted", "deleted", "short"] {
        assert_eq!(read(&server, gone), None, "{gone} came back");
    }
    drop(server);

    // 61 s after the first start, "ttl" has expired while the server was down.
    let server = TestServer::start_at(&toml, wall + Duration::from_secs(61), None);
    assert_eq!(read(&server, "ttl"), None);
    // "ttl", and "short" whose put record is past its expiry too.
    assert_eq!(metric(&server, "rustkv_log_recovery_expired_entries"), 2.0);
    assert!(read(&server, "kept").is_some());
}

/// An ETag a client holds never names a different value after a restart: versions
/// given out after it are above every version before it.
#[test]
fn versions_after_a_restart_are_new() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), "");
    let wall = SystemTime::now();
    let server = TestServer::start_at(&toml, wall, None);
    let before: Vec<u64> = (0..20)
        .map(|i| put(&server, &format!("k{i}"), json!(i), ""))
        .collect();
    drop(server);
    let server = TestServer::start_at(&toml, wall, None);
    let after = put(&server, "k0", json!("new"), "");
    assert!(
        before.iter().all(|&v| v < after),
        "{after} not above {before:?}"
    );
    let stale = server.request(
        "PUT",
        "/v1/kv/k0",
        &[
            ("Content-Type", "application/json"),
            ("If-Match", &format!("\"{}\"", before[0])),
        ],
        Some(b"1"),
    );
    assert_eq!(stale.status, 412, "k0's old version matched its new value");
}

/// The partition count changes between runs: records are routed anew, nothing is
/// lost, and the old layout's files are gone.
#[test]
fn partition_count_can_change_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let mut versions = Vec::new();
    let server = TestServer::start_at(&config(dir.path(), "[store]\npartitions = 2\n"), wall, None);
    for i in 0..200 {
        versions.push(put(&server, &format!("key-{i}"), json!(i), ""));
    }
    drop(server);
    for partitions in [3, 1, 2] {
        let extra = format!("[store]\npartitions = {partitions}\n");
        let server = TestServer::start_at(&config(dir.path(), &extra), wall, None);
        for (i, version) in versions.iter().enumerate() {
            let found = read(&server, &format!("key-{i}"));
            assert_eq!(found, Some((json!(i), *version, None)), "key-{i}");
        }
        assert_eq!(server.stats()["keys"], 200);
        drop(server);
        let logs = files(dir.path(), ".log");
        assert_eq!(logs.len(), partitions, "one log per partition: {logs:?}");
    }
}

/// `store.capacity` lowered between runs: the least recently used entries go.
#[test]
fn lower_capacity_evicts_the_least_recent_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let server = TestServer::start_at(&config(dir.path(), "[store]\npartitions = 1\n"), wall, None);
    for i in 0..100 {
        put(&server, &format!("k{i}"), json!(i), "");
    }
    drop(server);
    let toml = config(dir.path(), "[store]\npartitions = 1\ncapacity = 40\n");
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(server.stats()["keys"], 40);
    for i in 0..100 {
        let present = read(&server, &format!("k{i}")).is_some();
        assert_eq!(present, i >= 60, "k{i}");
    }
}

/// A gate a test holds shut to stop syncs from finishing.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    syncs: AtomicU64,
    /// Syncs that found the gate shut.
    held: AtomicU64,
}

impl Gate {
    fn hook(self: &Arc<Self>) -> SyncHook {
        let gate = Arc::clone(self);
        Arc::new(move |file: &fs::File| {
            let mut open = gate.open.lock().unwrap();
            if !*open {
                gate.held.fetch_add(1, SeqCst);
            }
            while !*open {
                open = gate.opened.wait(open).unwrap();
            }
            drop(open);
            gate.syncs.fetch_add(1, SeqCst);
            file.sync_data()
        })
    }

    fn set(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so a failing test does not leave the server's
/// final sync (and the test's end) waiting on it forever.
struct Opens(Arc<Gate>);

impl Drop for Opens {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// PUTs `key` on another thread; the receiver gets its status.
fn put_in_background(server: &TestServer, key: &str) -> mpsc::Receiver<u16> {
    let (sender, receiver) = mpsc::channel();
    let url = format!("{}/v1/kv/{key}", server.base);
    thread::spawn(move || {
        let reply = ureq::put(&url)
            .set("Content-Type", "application/json")
            .timeout(Duration::from_secs(20))
            .send_string("1");
        let status = match reply {
            Ok(response) => response.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(error) => panic!("PUT: {error}"),
        };
        let _ = sender.send(status);
    });
    receiver
}

/// Under `always` a write is answered only after the sync of its record: with syncs
/// held back, the reply waits; released, it comes. Under `everysec` it does not wait.
#[test]
fn always_answers_only_after_the_sync() {
    answers_only_after_the_sync("");
}

/// The same with the partitions' actors on their own threads, where the answers
/// wait with those threads' relays instead of the HTTP workers'.
#[test]
fn always_answers_only_after_the_sync_with_actors_on_arbiters() {
    answers_only_after_the_sync("[store]\nplacement = \"arbiters\"\n");
}

fn answers_only_after_the_sync(extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let toml = config(dir.path(), &format!("fsync = \"always\"\n{extra}"));
    let server = TestServer::start_at(&toml, SystemTime::now(), Some(gate.hook()));
    let _opens = Opens(Arc::clone(&gate));
    // One sync per sequential write at least: each waits for its own.
    let before = gate.syncs.load(SeqCst);
    for i in 0..10 {
        put(&server, &format!("seq{i}"), json!(i), "");
    }
    assert!(gate.syncs.load(SeqCst) - before >= 10);
    gate.set(false);
    let reply = put_in_background(&server, "held");
    let waited = reply.recv_timeout(Duration::from_millis(500));
    assert!(
        waited.is_err(),
        "answered {waited:?} while its sync was held"
    );
    gate.set(true);
    let status = reply
        .recv_timeout(Duration::from_secs(10))
        .expect("answered");
    assert_eq!(status, 201);
    assert!(metric(&server, "rustkv_log_sync_seconds_count") >= 11.0);
}

/// A server under `everysec` whose syncs wait at a shut gate (opened when the
/// `Opens` is dropped, before the server).
fn everysec_behind_a_gate(dir: &Path) -> (TestServer, Arc<Gate>, Opens) {
    let gate = Arc::new(Gate::default());
    let toml = config(dir, "fsync = \"everysec\"\n");
    let server = TestServer::start_at(&toml, SystemTime::now(), Some(gate.hook()));
    let opens = Opens(Arc::clone(&gate));
    (server, gate, opens)
}

#[test]
fn everysec_does_not_wait_for_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    // Syncs are held from the start: a write is still answered once written.
    let (server, gate, _opens) = everysec_behind_a_gate(dir.path());
    let reply = put_in_background(&server, "quick");
    let status = reply.recv_timeout(Duration::from_secs(5));
    gate.set(true);
    assert_eq!(status, Ok(201), "everysec waited for a sync");
}

/// A write wakes the log writer: it is not left for the writer's idle timeout
/// (one second under `fsync = "no"`), on the HTTP workers or on arbiters. Were the
/// wake lost, each of these sequential writes would wait about a second.
#[test]
fn a_write_wakes_the_log_writer() {
    for extra in ["", "[store]\nplacement = \"arbiters\"\n"] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(&config(dir.path(), &format!("fsync = \"no\"\n{extra}")));
        let started = std::time::Instant::now();
        for i in 0..10 {
            put(&server, &format!("k{i}"), json!(i), "");
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "10 writes took {took:?} ({extra:?})"
        );
    }
}

/// Under `everysec` a sync under way does not hold up the writes after it: they
/// are written and answered while the sync waits (as Redis's background fsync).
#[test]
fn everysec_answers_writes_while_a_sync_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (server, gate, _opens) = everysec_behind_a_gate(dir.path());
    put(&server, "before", json!(1), "");
    // The write leaves the log dirty: within about a second a sync starts and waits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gate.held.load(SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "no sync started");
        thread::sleep(Duration::from_millis(20));
    }
    let reply = put_in_background(&server, "during");
    let status = reply.recv_timeout(Duration::from_secs(5));
    assert_eq!(status, Ok(201), "a write waited for the sync under way");
    assert_eq!(gate.syncs.load(SeqCst), 0, "the sync was still held");
    gate.set(true);
}

/// A sync hook that fails (as after an I/O error) while its switch is on, and
/// counts the calls.
fn failing_sync(failing: &Arc<AtomicBool>, calls: &Arc<AtomicU64>) -> SyncHook {
    let (failing, calls) = (Arc::clone(failing), Arc::clone(calls));
    Arc::new(move |file: &fs::File| {
        calls.fetch_add(1, SeqCst);
        if failing.load(SeqCst) {
            return Err(std::io::Error::other("injected sync failure"));
        }
        file.sync_data()
    })
}

/// Polls `put` of fresh keys until one answers `status` (bounded); answers its body.
fn put_until(server: &TestServer, status: u16, what: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let reply = put_reply(server, &format!("{what}{i}"), &json!(1));
        assert!(matches!(reply.status, 201 | 503), "{what}: {reply:?}");
        if reply.status == status {
            return reply.json();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never {status}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    unreachable!()
}

/// A failed sync faults the log, also when it ran in the background (everysec):
/// writes are refused with 503 and `/health` says why, reads go on, and once syncs
/// work again a fresh log heals the node by itself.
#[test]
fn a_failed_sync_refuses_writes_until_a_fresh_log_is_written() {
    for fsync in ["everysec", "always"] {
        let dir = tempfile::tempdir().unwrap();
        let (failing, calls) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let toml = config(
            dir.path(),
            // One partition: one log, so no other log's fault can follow the healing.
            &format!("fsync = \"{fsync}\"\nretry_interval = \"100ms\"\n[store]\npartitions = 1\n"),
        );
        let server = TestServer::start_at(
            &toml,
            SystemTime::now(),
            Some(failing_sync(&failing, &calls)),
        );
        put(&server, "kept", json!("v"), "");
        failing.store(true, SeqCst);
        let refused = put_until(&server, 503, &format!("{fsync}-fail"));
        assert_eq!(refused["error"], "writes_refused", "{fsync}: {refused}");
        assert!(calls.load(SeqCst) > 0);
        assert_eq!(server.get("/health").status, 503, "{fsync}");
        assert_eq!(
            read(&server, "kept").map(|(value, ..)| value),
            Some(json!("v"))
        );
        failing.store(false, SeqCst);
        put_until(&server, 201, &format!("{fsync}-healed"));
        assert_eq!(server.get("/health").status, 200, "{fsync}");
        assert!(metric(&server, "rustkv_log_faults_total") >= 1.0, "{fsync}");
    }
}

/// The number of compactions once none has completed for a while (so none is
/// under way).
fn settled_rewrites(server: &TestServer, deadline: std::time::Instant) -> f64 {
    let mut last = metric(server, "rustkv_log_rewrites_total");
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = metric(server, "rustkv_log_rewrites_total");
        if now == last {
            return now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "compactions never settle"
        );
        last = now;
    }
}

fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// A log past its threshold is compacted into a snapshot and a new log, the old
/// files are deleted, and a restart loads the same data, recency included.
#[test]
fn compaction_replaces_the_log_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(
        dir.path(),
        "rewrite_min_size = \"16KiB\"\nrewrite_percentage = 10\n[store]\npartitions = 1\n",
    );
    let server = TestServer::start_at(&toml, wall, None);
    let mut versions = Vec::new();
    for i in 0..300 {
        versions.push(put(
            &server,
            &format!("k{i:03}"),
            json!({"n": i, "pad": "x".repeat(40)}),
            "",
        ));
    }
    // Overwrites grow the log without growing the data.
    for round in 0..3 {
        for (i, version) in versions.iter_mut().enumerate() {
            let value = json!({"n": i, "pad": "x".repeat(40), "round": round});
            *version = put(&server, &format!("k{i:03}"), value, "");
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rewrites = settled_rewrites(&server, deadline);
    assert!(rewrites >= 1.0, "no compaction");
    // Recently read keys must outlive a lower capacity after the restart: the
    // snapshot keeps the LRU order, reads included.
    for i in 0..10 {
        assert!(read(&server, &format!("k{i:03}")).is_some());
    }
    thread::sleep(Duration::from_millis(50)); // a tick applies the reads
    for i in 0..3 {
        put(
            &server,
            &format!("filler{i}"),
            json!("x".repeat(10_000)),
            "",
        );
    }
    assert!(
        settled_rewrites(&server, deadline) > rewrites,
        "no second compaction"
    );
    drop(server);
    assert_eq!(files(dir.path(), ".snap").len(), 1);
    assert_eq!(
        files(dir.path(), ".log").len(),
        1,
        "the snapshot's log only"
    );
    assert!(files(dir.path(), ".tmp").is_empty());

    let server = TestServer::start_at(&toml, wall, None);
    for (i, version) in versions.iter().enumerate() {
        let (_, found, _) = read(&server, &format!("k{i:03}")).expect("present");
        assert_eq!(found, *version, "k{i:03}");
    }
    drop(server);
    let small = toml.replace("partitions = 1\n", "partitions = 1\ncapacity = 20\n");
    let server = TestServer::start_at(&small, wall, None);
    for i in 0..10 {
        assert!(
            read(&server, &format!("k{i:03}")).is_some(),
            "k{i:03} was read last"
        );
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_start_up_continues() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(dir.path(), "[store]\npartitions = 1\n");
    let server = TestServer::start_at(&toml, wall, None);
    let version = put(&server, "whole", json!("w"), "");
    drop(server);
    let log = dir.path().join(&files(dir.path(), ".log")[0]);
    let whole = fs::metadata(&log).unwrap().len();
    // Half a record: a length saying 100 bytes, and 10 of them.
    let mut bytes = fs::read(&log).unwrap();
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(&[7; 10]);
    fs::write(&log, bytes).unwrap();
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(read(&server, "whole"), Some((json!("w"), version, None)));
    assert_eq!(metric(&server, "rustkv_log_recovery_truncated_bytes"), 14.0);
    assert_eq!(fs::metadata(&log).unwrap().len(), whole, "cut back");
}

#[test]
fn corruption_followed_by_valid_records_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(dir.path(), "[store]\npartitions = 1\n");
    let server = TestServer::start_at(&toml, wall, None);
    for i in 0..3 {
        put(&server, &format!("k{i}"), json!("value"), "");
    }
    drop(server);
    let name = files(dir.path(), ".log")[0].clone();
    let log = dir.path().join(&name);
    let mut bytes = fs::read(&log).unwrap();
    // Inside the first record's value: records after it are still valid.
    let at = 36 + 30;
    bytes[at] ^= 0x40;
    fs::write(&log, &bytes).unwrap();
    let error = TestServer::try_start_at(&toml, wall, None)
        .err()
        .expect("start-up stops");
    assert!(
        error.contains(&name) && error.contains("byte 36"),
        "{error}"
    );
    assert!(error.contains("truncate_corrupt"), "{error}");
    // The operator opts in: everything from the bad record on is dropped.
    let toml = toml.replace("[store]", "truncate_corrupt = true\n[store]");
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(server.stats()["keys"], 0);
}

#[test]
fn a_directory_held_by_another_server_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(dir.path(), "");
    let first = TestServer::start_at(&toml, SystemTime::now(), None);
    let error = TestServer::try_start_at(&toml, SystemTime::now(), None)
        .err()
        .expect("the second start fails");
    assert!(error.contains("lock"), "{error}");
    drop(first);
    TestServer::start_at(&toml, SystemTime::now(), None);
}

#[test]
fn a_directory_that_cannot_be_created_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    let toml = config(&file.join("data"), "");
    let error = TestServer::try_start_at(&toml, SystemTime::now(), None)
        .err()
        .expect("start-up stops");
    assert!(error.contains("plain-file"), "{error}");
}

/// A graceful stop syncs what the logs hold, even under `fsync = "no"`.
#[test]
fn a_graceful_stop_syncs_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    gate.set(true);
    let toml = config(dir.path(), "fsync = \"no\"\n");
    let server = TestServer::start_at(&toml, SystemTime::now(), Some(gate.hook()));
    put(&server, "k", json!(1), "");
    assert_eq!(gate.syncs.load(SeqCst), 0, "no syncs under \"no\"");
    drop(server);
    assert!(gate.syncs.load(SeqCst) >= 1, "the stop did not sync");
}

/// A start with no write before the next leaves an empty log: it is dropped at the
/// next start instead of piling up in the manifest until a compaction.
#[test]
fn empty_logs_do_not_pile_up_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let wall = SystemTime::now();
    let toml = config(dir.path(), "[store]\npartitions = 1\n");
    let server = TestServer::start_at(&toml, wall, None);
    let version = put(&server, "k", json!(1), "");
    drop(server);
    for _ in 0..3 {
        drop(TestServer::start_at(&toml, wall, None));
    }
    // The first run's log (with "k") and the last run's (empty) remain.
    assert_eq!(
        files(dir.path(), ".log").len(),
        2,
        "{:?}",
        files(dir.path(), ".log")
    );
    let server = TestServer::start_at(&toml, wall, None);
    assert_eq!(read(&server, "k"), Some((json!(1), version, None)));
    let after = put(&server, "k", json!(2), "");
    assert!(after > version);
}

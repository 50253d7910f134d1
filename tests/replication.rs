//! Replication over real HTTP between in-process servers on 127.0.0.1, port 0:
//! full copy under concurrent writes, the stream in order, 409 on a replica's
//! writes, resuming from the backlog, falling behind it, promotion and `follow`
//! (PSYNC2), versions across a failover, expiry and eviction decided by the
//! primary, and a persisting replica resuming after its own restart.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    thread,
    time::{Duration, Instant},
};

use common::{TestServer, encode};
use serde_json::{Value, json};

/// How long a replica may take to catch up in these tests.
const CATCH_UP: Duration = Duration::from_secs(20);

/// An address nothing listens on: a replica told to follow it is disconnected.
const NOWHERE: &str = "http://127.0.0.1:9";

fn status(server: &TestServer) -> Value {
    let reply = server.get("/v1/replication");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `replica` streams from its primary and holds `primary`'s position.
fn caught_up(primary: &TestServer, replica: &TestServer) {
    wait_until("the replica caught up", CATCH_UP, || {
        let (p, r) = (status(primary), status(replica));
        r["link"] == "streaming" && r["position"] == p["position"]
    });
}

fn replica_of(primary: &TestServer, extra: &str) -> TestServer {
    TestServer::start(&format!(
        "[replication]\nprimary = \"{}\"\n{extra}",
        primary.base
    ))
}

fn follow(server: &TestServer, primary: &str) -> Value {
    let body = json!({ "primary": primary }).to_string();
    let reply = server.request(
        "POST",
        "/v1/replication/follow",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn promote(server: &TestServer) -> Value {
    let reply = server.request("POST", "/v1/replication/promote", &[], None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// `PUT /v1/kv/{key}`: the version it answered.
fn put(server: &TestServer, key: &str, value: &Value) -> u64 {
    let body = value.to_string();
    let path = format!("/v1/kv/{}", encode(key));
    let headers = [("Content-Type", "application/json")];
    let reply = server.request("PUT", &path, &headers, Some(body.as_bytes()));
    assert!(matches!(reply.status, 200 | 201), "{}", reply.body);
    reply.json()["version"].as_u64().unwrap()
}

/// `GET /v1/kv/{key}`: the value and version, or `None` on 404.
fn read(server: &TestServer, key: &str) -> Option<(Value, u64)> {
    let reply = server.get(&format!("/v1/kv/{}", encode(key)));
    match reply.status {
        200 => {
            let etag = reply.header("etag").unwrap().trim_matches('"').to_owned();
            Some((reply.json(), etag.parse().unwrap()))
        }
        404 => None,
        status => panic!("GET {key}: {status} {}", reply.body),
    }
}

fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server.get("/metrics").body;
    let line = text
        .lines()
        .find(|line| line.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} not in /metrics"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Every key of `keys` reads the same (value and version) on both servers.
fn same_data(primary: &TestServer, replica: &TestServer, keys: impl Iterator<Item = String>) {
    for key in keys {
        assert_eq!(read(replica, &key), read(primary, &key), "key {key:?}");
    }
}

/// Writers on the primary while a replica takes its full copy: once caught up,
/// the replica holds exactly what the primary holds, versions included, though
/// its partition count differs. Red when the copy's start position is taken
/// after the walk instead of before it (changes made during the walk are lost).
#[test]
fn a_full_copy_under_concurrent_writes_converges_to_the_primary() {
    let primary = TestServer::start("[store]\npartitions = 4");
    for n in 0..3000 {
        put(&primary, &format!("pre/{n}"), &json!({ "n": n }));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|worker| {
            let (base, stop) = (primary.base.clone(), stop.clone());
            thread::spawn(move || {
                let agent = ureq::agent();
                let mut round = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || round < 200 {
                    let key = format!("pre/{}", (round * 7 + worker * 13) % 3000);
                    let url = format!("{base}/v1/kv/{}", encode(&key));
                    if round % 5 == 4 {
                        let _ = agent.delete(&url).call();
                    } else {
                        let body = json!({ "w": worker, "round": round }).to_string();
                        let _ = agent
                            .put(&url)
                            .set("Content-Type", "application/json")
                            .send_string(&body);
                    }
                    round += 1;
                }
            })
        })
        .collect();
    let replica = replica_of(&primary, "[store]\npartitions = 3");
    thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    caught_up(&primary, &replica);
    same_data(&primary, &replica, (0..3000).map(|n| format!("pre/{n}")));
    let (p, r) = (primary.stats(), replica.stats());
    assert_eq!(p["keys"], r["keys"]);
    let listed = status(&primary)["replicas"].as_array().unwrap().len();
    assert_eq!(listed, 1, "{}", status(&primary));
}

/// The stream keeps going: puts, replaces with TTLs, deletes and keys that need
/// escaping arrive in order with the primary's versions.
#[test]
fn a_replica_follows_every_change_in_order() {
    let primary = TestServer::start("");
    let replica = replica_of(&primary, "");
    caught_up(&primary, &replica);
    let keys = ["a", "a/b", "delete/x", "é✓", "q\"uote"];
    for round in 0..20 {
        for key in keys {
            put(&primary, key, &json!([round, key]));
        }
        primary.delete(&format!("/v1/kv/{}", encode(keys[round % keys.len()])));
    }
    primary.put("ttl", json!("soon"), Some(3600.0));
    caught_up(&primary, &replica);
    same_data(&primary, &replica, keys.iter().map(|k| k.to_string()));
    let ttl = replica.get("/v1/kv/ttl");
    assert_eq!(ttl.status, 200);
    let left: u64 = ttl.header("x-expires-in").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&left), "{left}");
    let lag = &status(&replica)["lag"];
    assert_eq!(
        (lag["records"].as_u64(), lag["seconds"].as_f64()),
        (Some(0), Some(0.0))
    );
}

/// Every write route answers a replica with 409 in its own dialect, naming the
/// primary in `detail` and in `RustKV-Primary`, and changes nothing. Red when
/// the partition does not check `following`.
#[test]
fn writes_to_a_replica_get_409_naming_the_primary() {
    let primary = TestServer::start("");
    primary.put("k", json!(1), None);
    let replica = replica_of(&primary, "");
    caught_up(&primary, &replica);
    let json_type = [("Content-Type", "application/json")];
    let insert = br#"{"key": "k", "value": 2}"#;
    let txn = br#"{"success": [{"op": "put", "key": "k", "value": 2}]}"#;
    let cases: [(&str, &str, Option<&[u8]>, bool); 5] = [
        ("PUT", "/v1/kv/k", Some(b"2"), true),
        ("DELETE", "/v1/kv/k", None, true),
        ("PUT", "/kv/insert", Some(insert), false),
        ("DELETE", "/kv/delete/k", None, false),
        ("POST", "/v1/txn", Some(txn), true),
    ];
    for (method, path, body, native) in cases {
        let reply = replica.request(method, path, &json_type, body);
        assert_eq!(reply.status, 409, "{method} {path}: {}", reply.body);
        assert_eq!(reply.header("rustkv-primary"), Some(primary.base.as_str()));
        let error = reply.json();
        assert!(error["detail"].as_str().unwrap().contains(&primary.base));
        assert_eq!(error.get("error").is_some(), native, "{error}");
    }
    // A batch answers each write 409 (its reads still read), the header too.
    let batch = br#"{"ops": [{"op": "put", "key": "k", "value": 2}, {"op": "get", "key": "k"}]}"#;
    let reply = replica.request("POST", "/v1/batch", &json_type, Some(batch));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("rustkv-primary"), Some(primary.base.as_str()));
    let results = reply.json()["results"].clone();
    assert_eq!(results[0]["status"], 409, "{results}");
    assert_eq!(results[0]["error"], "read_only");
    assert!(
        results[0]["detail"]
            .as_str()
            .unwrap()
            .contains(&primary.base)
    );
    assert_eq!(results[1]["status"], 200);
    // A transaction that only reads runs on a replica.
    let read =
        br#"{"compare": [{"key": "k", "exists": true}], "success": [{"op": "get", "key": "k"}]}"#;
    let reply = replica.request("POST", "/v1/txn", &json_type, Some(read));
    assert_eq!(
        (reply.status, reply.json()["results"][0]["value"].clone()),
        (200, json!(1))
    );
    assert_eq!(replica.value("k"), Some(json!(1)));
    assert_eq!(replica.get("/health/primary").status, 503);
    assert_eq!(primary.get("/health/primary").status, 200);
}

/// A replica cut off for a while resumes from the primary's backlog (no full
/// copy) and gets what it missed.
#[test]
fn a_disconnected_replica_resumes_from_the_backlog() {
    let primary = TestServer::start("");
    let replica = replica_of(&primary, "");
    put(&primary, "before", &json!(0));
    caught_up(&primary, &replica);
    follow(&replica, NOWHERE);
    for n in 0..100 {
        put(&primary, &format!("missed{n}"), &json!(n));
    }
    follow(&replica, &primary.base);
    caught_up(&primary, &replica);
    same_data(&primary, &replica, (0..100).map(|n| format!("missed{n}")));
    assert_eq!(metric(&primary, "rustkv_replication_full_syncs_total"), 1.0);
    assert_eq!(
        metric(&primary, "rustkv_replication_partial_syncs_total"),
        1.0
    );
    assert_eq!(metric(&replica, "rustkv_replication_resumes_total"), 1.0);
}

/// A replica that fell further behind than the backlog holds takes a full copy,
/// and the primary's backlog stays within its size meanwhile.
#[test]
fn a_replica_behind_the_backlog_takes_a_full_copy() {
    let primary = TestServer::start("[replication]\nbacklog_size = \"1MiB\"");
    let replica = replica_of(&primary, "");
    caught_up(&primary, &replica);
    follow(&replica, NOWHERE);
    let big = json!("x".repeat(8 * 1024));
    for n in 0..400 {
        put(&primary, &format!("big{n}"), &big);
    }
    let held = status(&primary)["backlog_bytes"].as_u64().unwrap();
    assert!(
        held <= 1024 * 1024 + 80 * 1024,
        "backlog holds {held} bytes"
    );
    follow(&replica, &primary.base);
    caught_up(&primary, &replica);
    same_data(&primary, &replica, (0..400).map(|n| format!("big{n}")));
    assert_eq!(metric(&primary, "rustkv_replication_full_syncs_total"), 2.0);
    assert_eq!(
        metric(&primary, "rustkv_replication_partial_syncs_total"),
        0.0
    );
}

/// Reads a raw HTTP response head from `stream`.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A replica that stops reading is disconnected once it falls behind the
/// backlog: the primary holds no more than the backlog for it, and its stream
/// ends instead of going on. Red when the stream does not check for `Gone`.
#[test]
fn a_stuck_replica_is_disconnected_when_it_falls_behind_the_backlog() {
    let primary = TestServer::start("[replication]\nbacklog_size = \"1MiB\"");
    let mut stream = TcpStream::connect(primary.addr).unwrap();
    let request = "GET /v1/replication/sync?id=new&position=0 HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut stream);
    assert!(head.contains("rustkv-replication-sync: full"), "{head}");
    // The replica reads nothing while 8 MiB of changes go by.
    let big = json!("y".repeat(16 * 1024));
    for n in 0..512 {
        put(&primary, &format!("k{}", n % 64), &big);
    }
    assert!(status(&primary)["backlog_bytes"].as_u64().unwrap() <= 1200 * 1024);
    // Pings keep a live stream talking, so only the end of the stream (or a
    // broken connection) stops this loop before its deadline.
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (mut chunk, mut received) = (vec![0u8; 64 * 1024], 0);
    let ended = loop {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the stream did not end"
        );
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(read) => received += read,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => {}
        }
    };
    assert!(ended);
    assert!(received < 6 << 20, "got {received} bytes");
    assert_eq!(
        metric(&primary, "rustkv_replication_replicas_dropped_total"),
        1.0
    );
    wait_until("the replica is unlisted", CATCH_UP, || {
        status(&primary)["replicas"].as_array().unwrap().is_empty()
    });
}

/// Failover: the replica is promoted after its primary dies, with a write the
/// replica never got. Versions the promoted node hands out are above the old
/// primary's, so the ETag a client got from the old primary never names the new
/// value. Red without the promotion's version floor (one partition each, so the
/// counters would meet).
#[test]
fn promotion_keeps_versions_unique_and_other_replicas_resume_from_it() {
    let one = "[store]\npartitions = 1";
    let primary = TestServer::start(one);
    let replica = replica_of(&primary, one);
    let sibling = replica_of(&primary, one);
    put(&primary, "a", &json!(1));
    put(&primary, "b", &json!(2));
    caught_up(&primary, &replica);
    caught_up(&primary, &sibling);
    follow(&replica, NOWHERE);
    let lost = put(&primary, "c", &json!("lost with the primary"));
    caught_up(&primary, &sibling);
    drop(primary);

    let promoted = promote(&replica);
    assert_eq!(promoted["role"], "primary");
    let written = put(&replica, "c", &json!("after the failover"));
    assert!(
        written > lost,
        "version {written} not above the old primary's {lost}"
    );
    let stale = replica.request(
        "PUT",
        "/v1/kv/c",
        &[
            ("If-Match", &format!("\"{lost}\"")),
            ("Content-Type", "application/json"),
        ],
        Some(b"3"),
    );
    assert_eq!(stale.status, 412, "{}", stale.body);

    // The sibling went further than the promoted node (it got "c"): that history
    // is not the promoted node's, so it takes a full copy.
    follow(&sibling, &replica.base);
    caught_up(&replica, &sibling);
    same_data(
        &replica,
        &sibling,
        ["a", "b", "c"].map(String::from).into_iter(),
    );
    assert_eq!(metric(&replica, "rustkv_replication_full_syncs_total"), 1.0);
}

/// PSYNC2: a replica at the promoted node's position resumes from it without a
/// full copy, though the promoted node's replication id is new.
#[test]
fn a_sibling_at_the_promotion_point_resumes_without_a_full_copy() {
    let primary = TestServer::start("");
    let replica = replica_of(&primary, "");
    let sibling = replica_of(&primary, "");
    for n in 0..50 {
        put(&primary, &format!("k{n}"), &json!(n));
    }
    caught_up(&primary, &replica);
    caught_up(&primary, &sibling);
    let old_id = status(&primary)["replication_id"].clone();
    drop(primary);
    let promoted = promote(&replica);
    assert_ne!(promoted["replication_id"], old_id);
    put(&replica, "new", &json!("after"));
    follow(&sibling, &replica.base);
    caught_up(&replica, &sibling);
    assert_eq!(read(&sibling, "new"), read(&replica, "new"));
    assert_eq!(
        metric(&replica, "rustkv_replication_partial_syncs_total"),
        1.0
    );
    assert_eq!(metric(&replica, "rustkv_replication_full_syncs_total"), 0.0);
    assert_eq!(
        status(&sibling)["replication_id"],
        promoted["replication_id"]
    );
}

/// A replica neither evicts nor expires on its own: with a smaller capacity it
/// holds all its primary holds; a key past its deadline reads as missing but
/// stays until the primary's expiry removes it. Red when a replica's tick expires.
#[test]
fn expiry_and_eviction_are_the_primarys() {
    let primary = TestServer::start_mocked("[store]\ncapacity = 1000");
    let replica = TestServer::start_mocked(&format!(
        "[store]\ncapacity = 10\n[replication]\nprimary = \"{}\"",
        primary.base
    ));
    for n in 0..50 {
        put(&primary, &format!("k{n}"), &json!(n));
    }
    primary.put("ttl", json!("short"), Some(10.0));
    caught_up(&primary, &replica);
    assert_eq!(replica.stats()["keys"], 51);
    assert_eq!(replica.stats()["evictions_capacity"], 0);
    replica.advance(Duration::from_secs(11));
    assert_eq!(replica.value("ttl"), None);
    thread::sleep(Duration::from_millis(100)); // ten of the replica's ticks
    assert_eq!(
        replica.stats()["keys"],
        51,
        "the replica expired on its own"
    );
    primary.advance(Duration::from_secs(11));
    replica.wait_for_stats(CATCH_UP, |stats| stats["keys"] == 50);
    assert_eq!(replica.stats()["expirations"], 0);
}

/// With persistence on, a replica restarted on its data directory resumes from
/// its saved position (no full copy) and gets what it missed while down.
#[test]
fn a_persisting_replica_resumes_after_its_own_restart() {
    let dir = tempfile::tempdir().unwrap();
    let primary = TestServer::start("");
    let config = format!(
        "[persistence]\nmode = \"aof\"\ndir = \"{}\"\n[replication]\nprimary = \"{}\"",
        dir.path().display(),
        primary.base
    );
    let replica = TestServer::start(&config);
    for n in 0..200 {
        put(&primary, &format!("k{n}"), &json!(n));
    }
    caught_up(&primary, &replica);
    thread::sleep(Duration::from_millis(1200)); // the position is saved each second
    put(&primary, "tail", &json!("saved or not, it is resent"));
    caught_up(&primary, &replica);
    drop(replica);
    for n in 0..50 {
        put(&primary, &format!("while-down{n}"), &json!(n));
    }
    let replica = TestServer::start(&config);
    caught_up(&primary, &replica);
    let keys = (0..200).map(|n| format!("k{n}"));
    let missed = (0..50).map(|n| format!("while-down{n}"));
    same_data(
        &primary,
        &replica,
        keys.chain(missed).chain(["tail".into()]),
    );
    assert_eq!(
        metric(&replica, "rustkv_replication_full_copies_total"),
        0.0
    );
    assert_eq!(metric(&replica, "rustkv_replication_resumes_total"), 1.0);
    assert_eq!(metric(&primary, "rustkv_replication_full_syncs_total"), 1.0);
}

/// Bad replication requests get JSON 4xx (the harness checks each against the
/// OpenAPI document), and a token guards the stream as every route.
#[test]
fn bad_replication_requests_get_clear_errors() {
    let server = TestServer::start("");
    let json_type = [("Content-Type", "application/json")];
    let bodies: [&[u8]; 5] = [
        b"",
        b"{}",
        br#"{"primary": "ftp://127.0.0.1:1"}"#,
        br#"{"primary": "http://127.0.0.1"}"#,
        br#"{"primary": "http://h:1/path", "x": 1}"#,
    ];
    for body in bodies {
        let reply = server.request("POST", "/v1/replication/follow", &json_type, Some(body));
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_body");
    }
    let text = [("Content-Type", "text/plain")];
    let reply = server.request("POST", "/v1/replication/follow", &text, Some(b"x"));
    assert_eq!(reply.status, 415);
    for query in ["", "?id=x", "?position=1", "?id=x&position=-1"] {
        let reply = server.get(&format!("/v1/replication/sync{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }
    assert_eq!(server.get("/v1/replication/promote").status, 405);
    assert_eq!(status(&server)["role"], "primary");

    let guarded = TestServer::start("[auth]\ntoken = \"secret\"");
    let reply = guarded.get("/v1/replication/sync?id=x&position=0");
    assert_eq!(reply.status, 401);
    assert_eq!(guarded.get("/health/primary").status, 200);
}

/// Replicas present their primary's token: `[auth]` shared by both here.
#[test]
fn a_replica_presents_the_token() {
    let auth = "[auth]\ntoken = \"shared\"\n";
    let primary = TestServer::start(auth);
    let replica = replica_of(&primary, auth);
    let bearer = [("Authorization", "Bearer shared")];
    let value = br#"{"key": "k", "value": 1}"#;
    let headers = [bearer[0], ("Content-Type", "application/json")];
    assert_eq!(
        primary
            .request("PUT", "/kv/insert", &headers, Some(value))
            .status,
        200
    );
    wait_until("the key reached the replica", CATCH_UP, || {
        replica.request("GET", "/kv/k", &bearer, None).status == 200
    });
}

/// A transaction on the primary lands on a replica as a whole: auditors on the
/// replica, each reading every account in one read-only transaction, never see
/// a transfer half applied, though the replica splits the keys over other
/// partitions. Red when the replica applies a transaction's changes one by one
/// (as it did when the stream carried only the writes).
#[test]
fn a_replica_applies_each_transaction_as_a_whole() {
    const ACCOUNTS: usize = 8;
    const START: i64 = 100;
    let primary = TestServer::start("[store]\npartitions = 8\n[server]\nworkers = 2");
    let replica = replica_of(&primary, "[store]\npartitions = 3\n[server]\nworkers = 2");
    let mut balances = [START; ACCOUNTS];
    for i in 0..ACCOUNTS {
        put(&primary, &format!("acct{i}"), &json!(START));
    }
    caught_up(&primary, &replica);
    let txn = |server: &TestServer, body: Value| {
        let json = [("Content-Type", "application/json")];
        let body = body.to_string();
        let reply = server.request("POST", "/v1/txn", &json, Some(body.as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let audits = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..2 {
            let (replica, stop, audits) = (&replica, &stop, &audits);
            scope.spawn(move || {
                let gets: Vec<Value> = (0..ACCOUNTS)
                    .map(|i| json!({"op": "get", "key": format!("acct{i}")}))
                    .collect();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let done = txn(replica, json!({ "success": gets }));
                    let results = done["results"].as_array().unwrap();
                    let total: i64 = results.iter().map(|r| r["value"].as_i64().unwrap()).sum();
                    assert_eq!(total, START * ACCOUNTS as i64, "an audit saw {results:?}");
                    audits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        for round in 0..600 {
            let (from, to) = (round % ACCOUNTS, (round * 3 + 1) % ACCOUNTS);
            if from == to {
                continue;
            }
            let amount = 1 + (round as i64 % 7);
            balances[from] -= amount;
            balances[to] += amount;
            let body = json!({"success": [
                {"op": "put", "key": format!("acct{from}"), "value": balances[from]},
                {"op": "put", "key": format!("acct{to}"), "value": balances[to]},
            ]});
            txn(&primary, body);
        }
        caught_up(&primary, &replica);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    same_data(
        &primary,
        &replica,
        (0..ACCOUNTS).map(|i| format!("acct{i}")),
    );
    let audits = audits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(audits > 50, "only {audits} audits ran");
}

/// A promoted replica that persists keeps its promotion's epoch with its data:
/// restarted at once, it still hands out versions above the write its old
/// primary acknowledged but never sent (its primary had restarted more often
/// than it had). Red when the restart's epoch comes from the replica's own
/// manifest and records alone: the key gets exactly the lost write's version.
#[test]
fn a_promoted_replica_keeps_versions_above_its_promotion_after_a_restart() {
    let persisting = |dir: &tempfile::TempDir| {
        let dir = dir.path().display();
        format!("[store]\npartitions = 1\n[persistence]\nmode = \"aof\"\ndir = \"{dir}\"\n")
    };
    let primary_dir = tempfile::tempdir().unwrap();
    // Three starts: the primary's versions are in its third epoch.
    for _ in 0..2 {
        drop(TestServer::start(&persisting(&primary_dir)));
    }
    let primary = TestServer::start(&persisting(&primary_dir));
    let replica_dir = tempfile::tempdir().unwrap();
    let replica = replica_of(&primary, &persisting(&replica_dir));
    put(&primary, "a", &json!(1));
    caught_up(&primary, &replica);
    follow(&replica, NOWHERE);
    let lost = put(&primary, "c", &json!("lost with the primary"));
    drop(primary);
    promote(&replica);
    drop(replica);

    let restarted = TestServer::start(&persisting(&replica_dir));
    let after = put(&restarted, "c", &json!("after the restart"));
    assert!(
        after > lost,
        "version {after} not above the lost write's {lost}"
    );
}

/// `fence_on_start`: a primary refuses client writes (503, single, batch and
/// transaction alike) and fails `/health/primary` until a replica connects to it
/// or it is promoted, so an old primary restarted after a failover takes no
/// writes back before it is told to follow. Red without the fence, and red when
/// a connecting replica does not lift it.
#[test]
fn a_fenced_primary_takes_writes_once_a_replica_connects_or_it_is_promoted() {
    let fenced = "[replication]\nfence_on_start = true";
    let primary = TestServer::start(fenced);
    let json = [("Content-Type", "application/json")];
    let refused = primary.request("PUT", "/v1/kv/k", &json, Some(b"1"));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"], "writes_refused");
    assert!(refused.body.contains("fence_on_start"), "{}", refused.body);
    let batch = br#"{"ops": [{"op": "put", "key": "b", "value": 1}]}"#;
    let reply = primary.request("POST", "/v1/batch", &json, Some(batch));
    assert_eq!(reply.json()["results"][0]["status"], 503, "{}", reply.body);
    let txn = br#"{"success": [{"op": "put", "key": "t", "value": 1}]}"#;
    let reply = primary.request("POST", "/v1/txn", &json, Some(txn));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(primary.get("/health/primary").status, 503);
    assert_eq!(status(&primary)["fenced"], true);
    assert_eq!(primary.get("/v1/kv/k").status, 404, "reads are served");

    let replica = replica_of(&primary, "");
    caught_up(&primary, &replica);
    assert_eq!(status(&primary)["fenced"], false);
    assert_eq!(primary.get("/health/primary").status, 200);
    put(&primary, "k", &json!(1));

    let alone = TestServer::start(fenced);
    assert_eq!(alone.get("/health/primary").status, 503);
    promote(&alone);
    assert_eq!(alone.get("/health/primary").status, 200);
    put(&alone, "k", &json!(2));
}

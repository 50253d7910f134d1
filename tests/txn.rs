//! `POST /v1/txn`: compares and branches, validation, atomicity across
//! partitions (a bank that never loses money), atomic visibility for lock-free
//! readers, and no deadlock or starvation among transactions and plain writes.

mod common;

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    thread,
    time::{Duration, Instant},
};

use common::TestServer;
use serde_json::{Value, json};

const SERVER: &str = "[store]\npartitions = 8\ncapacity = 100000\n[server]\nworkers = 2\n";

fn txn(server: &TestServer, body: &Value) -> common::Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let json = [("Content-Type", "application/json")];
    server.request("POST", "/v1/txn", &json, Some(&bytes))
}

fn ok(server: &TestServer, body: Value) -> Value {
    let reply = txn(server, &body);
    assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    reply.json()
}

fn put(server: &TestServer, key: &str, value: &str) -> u64 {
    let reply = server.request("PUT", &format!("/v1/kv/{key}"), &[], Some(value.as_bytes()));
    assert!(reply.status == 200 || reply.status == 201, "{}", reply.body);
    reply.json()["version"].as_u64().unwrap()
}

#[test]
fn compares_choose_the_branch() {
    let server = TestServer::start(SERVER);
    let version = put(&server, "a", r#"{"x": 1, "y": [true, null]}"#);
    let cases = [
        (json!([{"key": "a", "version": version}]), true),
        (json!([{"key": "a", "version": version + 1}]), false),
        (json!([{"key": "a", "exists": true}]), true),
        (json!([{"key": "nope", "exists": false}]), true),
        (json!([{"key": "nope", "exists": true}]), false),
        (
            json!([{"key": "a", "value": {"y": [true, null], "x": 1}}]),
            true,
        ),
        (json!([{"key": "a", "value": {"x": 1}}]), false),
        (json!([{"key": "nope", "value": null}]), false),
        (json!([{"key": "nope", "version": 0}]), false),
        (
            json!([{"key": "a", "exists": true}, {"key": "nope", "exists": true}]),
            false,
        ),
        (json!([]), true),
    ];
    for (compare, succeeded) in cases {
        let body = json!({
            "compare": compare,
            "success": [{"op": "get", "key": "a"}],
            "failure": [{"op": "get", "key": "nope"}],
        });
        let done = ok(&server, body);
        assert_eq!(done["succeeded"], succeeded, "{compare}");
        let status = if succeeded { 200 } else { 404 };
        assert_eq!(done["results"][0]["status"], status, "{compare}");
    }
    // A branch's ops see its own earlier writes, and its results are in order.
    let done = ok(
        &server,
        json!({"success": [
            {"op": "put", "key": "b", "value": 1},
            {"op": "get", "key": "b"},
            {"op": "delete", "key": "a"},
            {"op": "put", "key": "c", "value": 2, "if_match": "\"1\""},
        ]}),
    );
    let statuses: Vec<u64> = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 204, 412]);
    assert_eq!(server.get("/v1/kv/a").status, 404);
    assert_eq!(server.get("/v1/kv/b").body, "1");
}

#[test]
fn bad_transactions_get_a_4xx_and_change_nothing() {
    let server = TestServer::start("[store]\nmax_txn_ops = 4\nmax_key_bytes = 8\n");
    let put_a = json!({"op": "put", "key": "a", "value": 1});
    let cases = [
        (
            json!({"compare": [{"key": "a"}], "success": [put_a]}),
            400,
            "compare[0]",
        ),
        (
            json!({"compare": [{"key": "a", "exists": true, "version": 1}], "success": [put_a]}),
            400,
            "compare[0]",
        ),
        (
            json!({"compare": [{"key": "a", "exists": 1}], "success": [put_a]}),
            400,
            "compare[0]",
        ),
        (
            json!({"success": [put_a, {"op": "put", "key": "b"}]}),
            400,
            "success[1]",
        ),
        (
            json!({"success": [put_a], "failure": [{"op": "get"}]}),
            400,
            "failure[0]",
        ),
        (
            json!({"success": [put_a, {"op": "get", "key": "123456789"}]}),
            413,
            "success[1]",
        ),
        (
            json!({"compare": [{"key": "x", "exists": true}], "success": [put_a, put_a, put_a], "failure": [put_a]}),
            413,
            "5 ops",
        ),
        (json!({"success": [put_a], "branch": []}), 400, "branch"),
        (json!([]), 400, "object"),
        (json!({"compare": [["a", 1]]}), 400, "compare[0]"),
        (json!({"success": [["put", "a", 1]]}), 400, "success[0]"),
    ];
    for (body, status, named) in cases {
        let reply = txn(&server, &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let detail = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(named), "{body}: {detail}");
        assert_eq!(server.get("/v1/kv/a").status, 404, "{body} applied a put");
    }
    assert_eq!(server.request("GET", "/v1/txn", &[], None).status, 405);
    // An empty transaction is valid.
    assert_eq!(
        ok(&server, json!({})),
        json!({"succeeded": true, "results": []})
    );
}

const ACCOUNTS: usize = 16;
const START: i64 = 100;

fn balances(server: &TestServer) -> Vec<(i64, u64)> {
    let gets: Vec<Value> = (0..ACCOUNTS)
        .map(|i| json!({"op": "get", "key": format!("acct{i}")}))
        .collect();
    let done = ok(server, json!({"success": gets}));
    done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["value"].as_i64().unwrap(), r["version"].as_u64().unwrap()))
        .collect()
}

/// Transfers between accounts on 8 partitions, each a transaction that checks
/// both balances' versions; auditors read every account inside a transaction.
/// The total never changes, and every transfer eventually goes through.
#[test]
fn a_bank_never_loses_money() {
    let server = TestServer::start(SERVER);
    for i in 0..ACCOUNTS {
        put(&server, &format!("acct{i}"), &START.to_string());
    }
    let partitions: Vec<Value> = server.stats()["partitions"].as_array().unwrap().clone();
    let used = partitions
        .iter()
        .filter(|p| p["keys"].as_u64().unwrap() > 0)
        .count();
    assert!(used >= 4, "accounts on {used} partitions");
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let audits = AtomicUsize::new(0);
    thread::scope(|scope| {
        for teller in 0..3 {
            let (server, done) = (&server, &done);
            scope.spawn(move || {
                for round in 0..60 {
                    let from = (teller * 7 + round * 3) % ACCOUNTS;
                    let to = (from + 1 + round % (ACCOUNTS - 1)) % ACCOUNTS;
                    loop {
                        let get = |i: usize| {
                            let reply = server.get(&format!("/v1/kv/acct{i}"));
                            let version: u64 = reply.header("ETag").unwrap().trim_matches('"').parse().unwrap();
                            (reply.json().as_i64().unwrap(), version)
                        };
                        let ((a, va), (b, vb)) = (get(from), get(to));
                        let amount = 1 + (round as i64 % 5);
                        let body = json!({
                            "compare": [{"key": format!("acct{from}"), "version": va}, {"key": format!("acct{to}"), "version": vb}],
                            "success": [
                                {"op": "put", "key": format!("acct{from}"), "value": a - amount},
                                {"op": "put", "key": format!("acct{to}"), "value": b + amount},
                            ],
                        });
                        if ok(server, body)["succeeded"] == true {
                            break;
                        }
                    }
                    done.fetch_add(1, Relaxed);
                }
            });
        }
        let (server, stop, audits) = (&server, &stop, &audits);
        scope.spawn(move || {
            while !stop.load(Relaxed) {
                let total: i64 = balances(server).iter().map(|(balance, _)| balance).sum();
                assert_eq!(
                    total,
                    START * ACCOUNTS as i64,
                    "an audit saw money appear or vanish"
                );
                audits.fetch_add(1, Relaxed);
            }
        });
        while done.load(Relaxed) < 180 {
            thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Relaxed);
    });
    let total: i64 = balances(&server).iter().map(|(balance, _)| balance).sum();
    assert_eq!(total, START * ACCOUNTS as i64);
    assert!(
        audits.load(Relaxed) > 5,
        "only {} audits ran",
        audits.load(Relaxed)
    );
}

/// Transactions write the same counter to keys on different partitions; readers
/// that GET the first key and then the second (plain lock-free reads) must never
/// find the second older than the first.
#[test]
fn readers_never_see_part_of_a_transaction() {
    let server = TestServer::start(SERVER);
    // Keys on distinct partitions: the stats say which partition each landed in.
    let mut pair: Vec<String> = Vec::new();
    let mut seen_partitions = Vec::new();
    for i in 0..64 {
        let key = format!("vis{i}");
        let before: Vec<u64> = keys_per_partition(&server);
        put(&server, &key, "0");
        let after = keys_per_partition(&server);
        let partition = (0..before.len()).find(|&p| after[p] > before[p]).unwrap();
        if !seen_partitions.contains(&partition) {
            seen_partitions.push(partition);
            pair.push(key);
        }
        if pair.len() == 4 {
            break;
        }
    }
    assert_eq!(pair.len(), 4, "four keys on four partitions");
    let stop = AtomicBool::new(false);
    let checks = AtomicUsize::new(0);
    let run = Duration::from_secs(3);
    thread::scope(|scope| {
        let (server, stop, pair) = (&server, &stop, &pair);
        scope.spawn(move || {
            let mut counter = 0;
            while !stop.load(Relaxed) {
                counter += 1;
                let puts: Vec<Value> = pair
                    .iter()
                    .map(|key| json!({"op": "put", "key": key, "value": counter}))
                    .collect();
                ok(server, json!({"success": puts}));
            }
        });
        for reader in 0..2 {
            let checks = &checks;
            scope.spawn(move || {
                let started = Instant::now();
                while started.elapsed() < run {
                    // Plain GETs, and a batch's gets, which read lock-free one
                    // after another within microseconds (a much finer probe).
                    let order: Vec<usize> = if reader == 0 {
                        vec![0, 1, 2, 3]
                    } else {
                        vec![3, 2, 1, 0]
                    };
                    let read = |i: usize| -> i64 {
                        server
                            .get(&format!("/v1/kv/{}", pair[i]))
                            .json()
                            .as_i64()
                            .unwrap()
                    };
                    let (a, b) = (read(order[0]), read(order[3]));
                    assert!(
                        b >= a,
                        "read {} = {a}, then {} = {b}: part of a transaction",
                        pair[order[0]],
                        pair[order[3]]
                    );
                    let gets: Vec<Value> = order
                        .iter()
                        .map(|&i| json!({"op": "get", "key": pair[i]}))
                        .collect();
                    for _ in 0..20 {
                        let body = serde_json::to_vec(&json!({ "ops": gets })).unwrap();
                        let reply = server.request(
                            "POST",
                            "/v1/batch",
                            &[("Content-Type", "application/json")],
                            Some(&body),
                        );
                        let values: Vec<i64> = reply.json()["results"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|r| r["value"].as_i64().unwrap())
                            .collect();
                        assert!(
                            values.windows(2).all(|w| w[1] >= w[0]),
                            "read in order {order:?}: {values:?}: part of a transaction"
                        );
                        checks.fetch_add(1, Relaxed);
                    }
                }
            });
        }
        thread::sleep(run);
        stop.store(true, Relaxed);
    });
    assert!(
        checks.load(Relaxed) > 100,
        "only {} checks",
        checks.load(Relaxed)
    );
}

fn keys_per_partition(server: &TestServer) -> Vec<u64> {
    server.stats()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keys"].as_u64().unwrap())
        .collect()
}

/// Transactions taking overlapping keys in opposite orders, alongside plain
/// writes to the same keys, all finish: no deadlock, and plain writes are not
/// starved by a stream of transactions.
#[test]
fn no_deadlock_and_plain_writes_keep_going() {
    let server = TestServer::start(SERVER);
    let keys: Vec<String> = (0..12).map(|i| format!("dl{i}")).collect();
    let plain = AtomicUsize::new(0);
    let txns = AtomicUsize::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for worker in 0..3 {
            let (server, keys, txns) = (&server, &keys, &txns);
            scope.spawn(move || {
                for round in 0..80 {
                    let mut order: Vec<&String> = keys.iter().collect();
                    if (worker + round) % 2 == 1 {
                        order.reverse();
                    }
                    let puts: Vec<Value> = order.iter().map(|key| json!({"op": "put", "key": key, "value": round})).collect();
                    ok(server, json!({"compare": [{"key": order[0], "exists": true}], "success": puts.clone(), "failure": puts}));
                    txns.fetch_add(1, Relaxed);
                }
            });
        }
        let (server, keys, plain) = (&server, &keys, &plain);
        scope.spawn(move || {
            for round in 0..200 {
                let status = server.status(
                    "PUT",
                    &format!("/v1/kv/{}", keys[round % keys.len()]),
                    Some(b"-1"),
                );
                assert!(status == 200 || status == 201);
                plain.fetch_add(1, Relaxed);
            }
        });
    });
    assert_eq!((txns.load(Relaxed), plain.load(Relaxed)), (240, 200));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

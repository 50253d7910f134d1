//! `GET /v1/kv`: ordered pages across partitions, bounds and MATCH, cursors,
//! exactly-once under concurrent writes, expiry, and no effect on LRU or stats.

mod common;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering::Relaxed},
    thread,
    time::Duration,
};

use common::{TestServer, encode};
use serde_json::{Value, json};

/// Every page of a scan with `query`, as (key, item) pairs in order.
fn scan_all(server: &TestServer, query: &str) -> Vec<(String, Value)> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/v1/kv?{query}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let reply = server.get(&path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let page = reply.json();
        for item in page["items"].as_array().unwrap() {
            items.push((item["key"].as_str().unwrap().to_owned(), item.clone()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
    panic!("the scan never ended");
}

fn fill(server: &TestServer, keys: &[String]) {
    for chunk in keys.chunks(500) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|key| json!({"op": "put", "key": key, "value": {"k": key}}))
            .collect();
        let body = serde_json::to_vec(&json!({ "ops": ops })).unwrap();
        let reply = server.request(
            "POST",
            "/v1/batch",
            &[("Content-Type", "application/json")],
            Some(&body),
        );
        assert_eq!(reply.status, 200);
    }
}

fn keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..400).map(|i| format!("user:{i}")).collect();
    keys.extend((0..50).map(|i| format!("order/{i:03}")));
    keys.extend(["a", "é", "user", "user:", "z\"q", "ü:1"].map(String::from));
    keys
}

#[test]
fn pages_return_every_key_once_in_byte_order() {
    let server = TestServer::start("[store]\npartitions = 8\ncapacity = 10000\n");
    let keys = keys();
    fill(&server, &keys);
    let mut sorted = keys.clone();
    sorted.sort();
    for limit in [1, 7, 100, 1000] {
        let got = scan_all(&server, &format!("limit={limit}"));
        let got_keys: Vec<&String> = got.iter().map(|(key, _)| key).collect();
        assert_eq!(got_keys, sorted.iter().collect::<Vec<_>>(), "limit {limit}");
        for (key, item) in &got {
            assert_eq!(item["value"], json!({"k": key}));
            assert!(item["version"].as_u64().unwrap() >= 1);
        }
    }
    let bare = scan_all(&server, "values=false&limit=50");
    assert!(bare.iter().all(|(_, item)| item.get("value").is_none()));
}

#[test]
fn prefix_start_end_and_match_intersect() {
    let server =
        TestServer::start("[store]\npartitions = 8\ncapacity = 10000\n[server]\nworkers = 2\n");
    let keys = keys();
    fill(&server, &keys);
    fn glob(pattern: &str, key: &str) -> bool {
        // The test's own reading of the few pattern forms used below.
        match pattern {
            "user:1?" => key.len() == 7 && key.starts_with("user:1"),
            "*:[2-3]*" => key
                .split_once(':')
                .is_some_and(|(_, rest)| rest.starts_with(['2', '3'])),
            "*[^0-9]" => !key.ends_with(|c: char| c.is_ascii_digit()),
            _ => unreachable!(),
        }
    }
    type Filter = Box<dyn Fn(&str) -> bool>;
    let cases: Vec<(&str, Filter)> = vec![
        ("prefix=user:", Box::new(|k| k.starts_with("user:"))),
        (
            "prefix=user:1&start=user:15&end=user:2",
            Box::new(|k| k.starts_with("user:1") && ("user:15".."user:2").contains(&k)),
        ),
        (
            "start=order/010&end=order/020",
            Box::new(|k| ("order/010".."order/020").contains(&k)),
        ),
        (
            "prefix=order/&start=a",
            Box::new(|k| k.starts_with("order/")),
        ),
        ("prefix=user:&start=zzz", Box::new(|_| false)),
        ("match=user:1?", Box::new(|k| glob("user:1?", k))),
        (
            "prefix=user:&match=*:[2-3]*&limit=3",
            Box::new(|k| k.starts_with("user:") && glob("*:[2-3]*", k)),
        ),
        ("match=*[^0-9]", Box::new(|k| glob("*[^0-9]", k))),
        ("prefix=%C3%BC", Box::new(|k| k.starts_with('ü'))),
        ("end=b", Box::new(|k| k < "b")),
    ];
    for (query, keep) in cases {
        let mut want: Vec<&String> = keys.iter().filter(|k| keep(k)).collect();
        want.sort();
        let got = scan_all(&server, query);
        let got: Vec<&String> = got.iter().map(|(key, _)| key).collect();
        assert_eq!(got, want, "{query}");
    }
}

#[test]
fn bad_parameters_and_cursors_get_400() {
    let server =
        TestServer::start("[store]\nmax_scan_limit = 10\nscan_limit = 5\nmax_scan_examined = 20\n");
    for query in [
        "limit=0",
        "limit=11",
        "limit=x",
        "limit=-1",
        "cursor=abc",
        "cursor=k1.zz",
        "cursor=k1.6",
        "values=yes",
        "prefix=a&prefix=b",
        "colour=red",
    ] {
        let reply = server.get(&format!("/v1/kv?{query}"));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
    }
    assert_eq!(server.request("PUT", "/v1/kv", &[], Some(b"1")).status, 405);
    // The page's default size and the examined bound: 30 keys, none matching.
    let keys: Vec<String> = (0..30).map(|i| format!("k{i:02}")).collect();
    fill(&server, &keys);
    let page = server.get("/v1/kv").json();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let page = server.get("/v1/kv?match=nothing*").json();
    assert_eq!(
        page["items"],
        json!([]),
        "at most 20 keys examined, none matched"
    );
    assert!(
        page["next_cursor"].is_string(),
        "a page that stopped early says where"
    );
    assert!(scan_all(&server, "match=nothing*").is_empty());
}

/// Keys present for the whole scan come back exactly once while writers replace,
/// insert and delete other keys (and replace the stable ones) all along.
#[test]
fn stable_keys_come_back_exactly_once_under_concurrent_writes() {
    let server =
        TestServer::start("[store]\npartitions = 8\ncapacity = 100000\n[server]\nworkers = 2\n");
    let stable: Vec<String> = (0..300).map(|i| format!("s{i:04}")).collect();
    fill(&server, &stable);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for writer in 0..2 {
            let (server, stop, stable) = (&server, &stop, &stable);
            scope.spawn(move || {
                let mut round = 0usize;
                while !stop.load(Relaxed) {
                    round += 1;
                    let churn = format!("s{:04}x{writer}", round % 300);
                    let body = round.to_string();
                    server.status("PUT", &format!("/v1/kv/{churn}"), Some(body.as_bytes()));
                    server.status(
                        "PUT",
                        &format!("/v1/kv/{}", stable[round % 300]),
                        Some(body.as_bytes()),
                    );
                    server.status("DELETE", &format!("/v1/kv/{}", encode(&churn)), None);
                }
            });
        }
        for limit in [3, 17, 64, 3, 17, 64] {
            let got = scan_all(&server, &format!("limit={limit}&values=false"));
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (key, _) in &got {
                *counts.entry(key.as_str()).or_default() += 1;
            }
            for key in &stable {
                assert_eq!(
                    counts.get(key.as_str()),
                    Some(&1),
                    "{key} with limit {limit}"
                );
            }
            let keys: Vec<&String> = got.iter().map(|(key, _)| key).collect();
            assert!(
                keys.windows(2).all(|pair| pair[0] < pair[1]),
                "not in order"
            );
        }
        stop.store(true, Relaxed);
    });
}

#[test]
fn expired_keys_never_appear() {
    let server =
        TestServer::start_mocked("[store]\npartitions = 4\ncapacity = 10000\ntick = \"10s\"\n");
    let keys: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    fill(&server, &keys[..20]);
    for key in &keys[20..] {
        assert_eq!(
            server.status("PUT", &format!("/v1/kv/{key}?ttl=5"), Some(b"1")),
            201
        );
    }
    assert_eq!(scan_all(&server, "limit=6").len(), 40);
    server.advance(Duration::from_secs(6));
    let got = scan_all(&server, "limit=6");
    let got: Vec<&String> = got.iter().map(|(key, _)| key).collect();
    assert_eq!(got, keys[..20].iter().collect::<Vec<_>>());
}

/// A scan reads without counting hits or refreshing LRU order: after scanning,
/// the least recently used key is still the one evicted.
#[test]
fn scans_touch_neither_lru_order_nor_hit_counts() {
    let server = TestServer::start("[store]\npartitions = 1\ncapacity = 3\n");
    for key in ["a", "b", "c"] {
        assert_eq!(
            server.status("PUT", &format!("/v1/kv/{key}"), Some(b"1")),
            201
        );
    }
    let hits = server.stats()["hits"].clone();
    assert_eq!(scan_all(&server, "").len(), 3);
    assert_eq!(server.stats()["hits"], hits);
    assert_eq!(server.status("PUT", "/v1/kv/d", Some(b"1")), 201);
    let left: Vec<String> = scan_all(&server, "")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(left, ["b", "c", "d"], "the scan refreshed a");
}

//! PyRustKV's 23 store tests ported to HTTP.
//!
//! PyRustKV tested its store object directly; here each test drives a real RustKV
//! server through the PyRustKV-compatible routes (`PUT /kv/insert`, `GET /kv/{key}`,
//! `DELETE /kv/delete/{key}`), and, where the original asserted nothing useful,
//! asserts what it meant to. Groups, as in `pyrustkv.md`: CRUD (8), LRU (6), TTL (5),
//! concurrency (4). Capacity is 2 unless a test says otherwise; a store that small has
//! one partition, so LRU order is exact. TTL tests run on a mock clock and move it
//! with `advance` rather than sleeping; only the TTL race uses a real clock.

mod common;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use common::{TestServer, encode};
use serde_json::{Value, json};

const CAPACITY_2: &str = "[store]\ncapacity = 2\n";
const CAPACITY_3: &str = "[store]\ncapacity = 3\n";

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// Asserts which of `keys` are readable (`true`) or absent (`false`).
fn assert_present(server: &TestServer, expected: &[(&str, bool)]) {
    for &(key, present) in expected {
        assert_eq!(
            server.value(key).is_some(),
            present,
            "key {key:?} should be {}",
            if present { "present" } else { "absent" }
        );
    }
}

fn stat(server: &TestServer, name: &str) -> u64 {
    let stats = server.stats();
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("stats.{name} missing: {stats}"))
}

// ---------------------------------------------------------------- CRUD (8)

#[test]
fn crud_put_then_get_returns_value() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!({"x": 1, "y": [true, null]}), None);
    assert_eq!(server.value("a"), Some(json!({"x": 1, "y": [true, null]})));
    let reply = server.get("/kv/a");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"key": "a", "value": {"x": 1, "y": [true, null]}})
    );
}

#[test]
fn crud_missing_key_is_absent() {
    let server = TestServer::start(CAPACITY_2);
    let reply = server.get("/kv/missing");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"detail": "Key not found"}));
    // Absent also next to a key that does exist.
    server.put("present", json!(1), None);
    assert_eq!(server.value("missing"), None);
    assert_eq!(server.value("present"), Some(json!(1)));
}

#[test]
fn crud_overwrite_returns_new_value() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!("old"), None);
    server.put("a", json!({"new": true}), None);
    assert_eq!(server.value("a"), Some(json!({"new": true})));
    let stats = server.stats();
    assert_eq!(stats["keys"], 1, "{stats}");
    assert_eq!(stats["inserts"], 1, "{stats}");
    assert_eq!(stats["updates"], 1, "{stats}");
}

#[test]
fn crud_delete_then_absent() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    let reply = server.delete("/kv/delete/a");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"status": "success"}));
    assert_eq!(server.value("a"), None);
    // Only the named key went.
    assert_eq!(server.value("b"), Some(json!(2)));
    assert_eq!(stat(&server, "keys"), 1);
}

#[test]
fn crud_delete_of_missing_key_is_noop() {
    let server = TestServer::start(CAPACITY_2);
    server.put("kept", json!("v"), None);
    for _ in 0..2 {
        let reply = server.delete("/kv/delete/missing");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json(), json!({"status": "success"}));
    }
    assert_eq!(server.value("missing"), None);
    assert_eq!(server.value("kept"), Some(json!("v")));
    let stats = server.stats();
    assert_eq!(stats["keys"], 1, "{stats}");
    assert_eq!(stats["deletes"], 0, "nothing was deleted: {stats}");
}

#[test]
fn crud_three_keys_readable_with_capacity_three() {
    let server = TestServer::start(CAPACITY_3);
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    server.put("c", json!(3), None);
    assert_eq!(server.value("a"), Some(json!(1)));
    assert_eq!(server.value("b"), Some(json!(2)));
    assert_eq!(server.value("c"), Some(json!(3)));
    let stats = server.stats();
    assert_eq!(stats["keys"], 3, "{stats}");
    assert_eq!(stats["evictions_capacity"], 0, "{stats}");
}

#[test]
fn crud_get_does_not_create_key() {
    let server = TestServer::start(CAPACITY_2);
    assert_eq!(server.value("ghost"), None);
    assert_eq!(server.value("ghost"), None);
    let stats = server.stats();
    assert_eq!(stats["keys"], 0, "{stats}");
    assert_eq!(stats["inserts"], 0, "{stats}");
    assert_eq!(stats["misses"], 2, "{stats}");
    // A miss takes no room: two real keys still fit in capacity 2.
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    assert_present(&server, &[("a", true), ("b", true), ("ghost", false)]);
}

#[test]
fn crud_overwrite_keeps_one_entry() {
    let server = TestServer::start(CAPACITY_3);
    server.put("a", json!("first"), None);
    server.put("a", json!("second"), None);
    server.put("b", json!("b"), None);
    server.put("c", json!("c"), None);
    // Had the overwrite taken a second slot, capacity 3 would have evicted something.
    assert_eq!(server.value("a"), Some(json!("second")));
    assert_eq!(server.value("b"), Some(json!("b")));
    assert_eq!(server.value("c"), Some(json!("c")));
    let stats = server.stats();
    assert_eq!(stats["keys"], 3, "{stats}");
    assert_eq!(stats["evictions_capacity"], 0, "{stats}");
}

// ---------------------------------------------------------------- LRU (6)

#[test]
fn lru_third_put_evicts_least_recent() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    server.put("c", json!(3), None);
    assert_present(&server, &[("a", false), ("b", true), ("c", true)]);
    let stats = server.stats();
    assert_eq!(stats["keys"], 2, "{stats}");
    assert_eq!(stats["evictions_capacity"], 1, "{stats}");
}

#[test]
fn lru_get_refreshes_recency() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    assert_eq!(server.value("a"), Some(json!(1)));
    server.put("c", json!(3), None);
    assert_present(&server, &[("a", true), ("b", false), ("c", true)]);
}

#[test]
fn lru_overwrite_counts_as_use() {
    let server = TestServer::start(CAPACITY_2);
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    server.put("a", json!(10), None);
    server.put("c", json!(3), None);
    assert_eq!(server.value("b"), None);
    assert_eq!(server.value("a"), Some(json!(10)));
    assert_eq!(server.value("c"), Some(json!(3)));
}

#[test]
fn lru_expired_entry_goes_before_live_ones() {
    // As in PyRustKV: put a (ttl 0.05 s), put b, wait 0.1 s, put c.
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("a", json!(1), Some(0.05));
    server.put("b", json!(2), None);
    server.advance(ms(100));
    server.put("c", json!(3), None);
    assert_present(&server, &[("a", false), ("b", true), ("c", true)]);

    // The same with the expired key the most recently used: plain LRU would evict
    // the live `b`; the expired `a` must go instead.
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("b", json!(2), None);
    server.put("a", json!(1), Some(0.05));
    server.advance(ms(100));
    server.put("c", json!(3), None);
    assert_present(&server, &[("a", false), ("b", true), ("c", true)]);
    let stats = server.stats();
    assert_eq!(stats["keys"], 2, "{stats}");
    assert_eq!(
        stats["evictions_capacity"], 0,
        "a live key was evicted: {stats}"
    );
    assert_eq!(stats["expirations"], 1, "{stats}");
}

#[test]
fn lru_fourth_put_evicts_two_oldest() {
    let server = TestServer::start(CAPACITY_2);
    for (index, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        server.put(key, json!(index), None);
    }
    assert_present(
        &server,
        &[("a", false), ("b", false), ("c", true), ("d", true)],
    );
    assert_eq!(server.value("c"), Some(json!(2)));
    assert_eq!(server.value("d"), Some(json!(3)));
    let stats = server.stats();
    assert_eq!(stats["keys"], 2, "{stats}");
    assert_eq!(stats["evictions_capacity"], 2, "{stats}");
}

#[test]
fn lru_expired_key_not_revived_by_get_and_does_not_disturb_inserts() {
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("a", json!(1), Some(0.05));
    server.put("b", json!(2), None);
    server.advance(ms(100));
    // A GET of the expired key neither returns it nor makes it recently used.
    assert_eq!(server.value("a"), None);
    assert_eq!(server.value("a"), None);
    server.put("c", json!(3), None);
    assert_present(&server, &[("a", false), ("b", true), ("c", true)]);
    let stats = server.stats();
    assert_eq!(stats["keys"], 2, "{stats}");
    assert_eq!(
        stats["evictions_capacity"], 0,
        "a live key was evicted: {stats}"
    );
    // The key can be written again as a fresh key.
    server.put("a", json!("again"), None);
    assert_eq!(server.value("a"), Some(json!("again")));
}

// ---------------------------------------------------------------- TTL (5)

#[test]
fn ttl_key_gone_after_its_ttl() {
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("a", json!("v"), Some(1.0));
    server.put("forever", json!("f"), None);
    server.advance(ms(1001));
    assert_eq!(server.value("a"), None);
    assert_eq!(server.value("forever"), Some(json!("f")));
}

#[test]
fn ttl_key_readable_before_its_ttl() {
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("a", json!("v"), Some(1.0));
    assert_eq!(server.value("a"), Some(json!("v")));
    server.advance(ms(999));
    assert_eq!(server.value("a"), Some(json!("v")));
    server.advance(ms(2));
    assert_eq!(
        server.value("a"),
        None,
        "the same key expires just after 1 s"
    );
}

#[test]
fn ttl_absent_or_null_never_expires() {
    let server = TestServer::start_mocked(CAPACITY_2);
    // `ttl` omitted and `ttl: null` both mean no expiry.
    let reply = server.insert(json!({"key": "omitted", "value": 1}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.put("null", json!(2), None);
    server.advance(secs(20 * 365 * 24 * 3600));
    assert_eq!(server.value("omitted"), Some(json!(1)));
    assert_eq!(server.value("null"), Some(json!(2)));
}

#[test]
fn ttl_expired_key_stays_gone_on_repeated_reads() {
    let server = TestServer::start_mocked(CAPACITY_2);
    server.put("a", json!("v"), Some(0.5));
    server.advance(secs(1));
    for _ in 0..5 {
        assert_eq!(server.value("a"), None);
    }
    server.advance(secs(3600));
    assert_eq!(server.value("a"), None);
    // Background expiry reclaims it without any write.
    let stats = server.wait_for_stats(secs(3), |stats| stats["keys"] == 0);
    assert_eq!(stats["expirations"], 1, "{stats}");
    assert_eq!(server.value("a"), None);
}

#[test]
fn ttl_overwrite_with_new_ttl_replaces_deadline() {
    let server = TestServer::start_mocked(CAPACITY_2);
    // Longer: 1 s then 10 s.
    server.put("longer", json!("old"), Some(1.0));
    // Shorter: 10 s then 1 s.
    server.put("shorter", json!("old"), Some(10.0));
    server.put("longer", json!("new"), Some(10.0));
    server.put("shorter", json!("new"), Some(1.0));
    server.advance(secs(2));
    assert_eq!(server.value("longer"), Some(json!("new")));
    assert_eq!(server.value("shorter"), None);
    server.advance(secs(9));
    assert_eq!(server.value("longer"), None);
}

// ---------------------------------------------------------------- Concurrency (4)

#[test]
fn concurrent_distinct_puts_respect_capacity() {
    let server = TestServer::start("[store]\ncapacity = 50\n");
    let server = &server;
    thread::scope(|scope| {
        for writer in 0..5 {
            scope.spawn(move || {
                for index in 0..100 {
                    let key = format!("t{writer}-k{index}");
                    let reply =
                        server.insert(json!({"key": key, "value": {"t": writer, "i": index}}));
                    assert_eq!(reply.status, 200, "insert {key}: {}", reply.body);
                    assert_eq!(reply.json(), json!({"status": "success"}));
                }
            });
        }
    });
    let mut readable = 0;
    for writer in 0..5 {
        for index in 0..100 {
            if let Some(value) = server.value(&format!("t{writer}-k{index}")) {
                assert_eq!(value, json!({"t": writer, "i": index}));
                readable += 1;
            }
        }
    }
    assert!(readable <= 50, "{readable} keys readable with capacity 50");
    let stats = server.stats();
    assert_eq!(stats["keys"], 50, "{stats}");
    assert_eq!(stats["inserts"], 500, "{stats}");
    assert_eq!(stats["evictions_capacity"], 450, "{stats}");
    assert_eq!(readable, 50, "every key the store holds is readable");
}

/// The value the writer writes in round `n`: a distinct, whole JSON object large
/// enough that a torn read would show.
fn round_value(n: usize) -> Value {
    let letter = char::from(b'a' + (n % 26) as u8);
    json!({"n": n, "pad": letter.to_string().repeat(2000 + n), "tail": n})
}

#[test]
fn concurrent_writer_and_readers_see_only_written_values() {
    const ROUNDS: usize = 200;
    let server = TestServer::start(CAPACITY_2);
    let server = &server;
    let written: Vec<Value> = (0..ROUNDS).map(round_value).collect();
    let written = &written;
    let done = AtomicBool::new(false);
    let done = &done;
    let start = Instant::now();
    let results: Vec<(usize, usize)> = thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(move || {
                    let (mut reads, mut found, mut after_done, mut last_n) = (0, 0, 0, None);
                    // Reads while the writer runs, then a few more; bounded either way.
                    while after_done < 20 && reads < 5000 && start.elapsed() < secs(8) {
                        // Set only once the last put has been answered.
                        let writer_done = done.load(Ordering::Acquire);
                        reads += 1;
                        let read = server.value("shared");
                        if writer_done {
                            after_done += 1;
                            assert_eq!(
                                read.as_ref(),
                                Some(&written[ROUNDS - 1]),
                                "read after the last write"
                            );
                        }
                        let Some(value) = read else {
                            continue;
                        };
                        let n = value["n"].as_u64().expect("n is a number") as usize;
                        assert!(n < ROUNDS, "never written: n = {n}");
                        assert_eq!(
                            value, written[n],
                            "read a value that was never written (torn?)"
                        );
                        if let Some(last) = last_n {
                            assert!(n >= last, "read went back in time: {last} then {n}");
                        }
                        last_n = Some(n);
                        found += 1;
                    }
                    (reads, found)
                })
            })
            .collect();
        for value in written {
            server.put("shared", value.clone(), None);
        }
        done.store(true, Ordering::Release);
        readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect()
    });
    for (reads, found) in results {
        assert!(found > 0, "a reader saw no value in {reads} reads");
    }
    assert_eq!(server.value("shared"), Some(written[ROUNDS - 1].clone()));
    assert_eq!(stat(server, "keys"), 1);
}

#[test]
fn concurrent_deletes_of_same_keys_all_gone() {
    let server = TestServer::start("[store]\ncapacity = 10\n");
    let server = &server;
    let keys: Vec<String> = (0..10).map(|index| format!("key{index}")).collect();
    for key in &keys {
        server.put(key, json!(key), None);
    }
    assert_eq!(stat(server, "keys"), 10);
    let keys = &keys;
    thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(move || {
                for key in keys {
                    let reply = server.delete(&format!("/kv/delete/{}", encode(key)));
                    assert_eq!(reply.status, 200, "delete {key}: {}", reply.body);
                    assert_eq!(reply.json(), json!({"status": "success"}));
                }
            });
        }
    });
    for key in keys {
        assert_eq!(server.value(key), None, "{key} survived");
    }
    let stats = server.stats();
    assert_eq!(stats["keys"], 0, "{stats}");
    assert_eq!(
        stats["deletes"], 10,
        "each key deleted exactly once: {stats}"
    );
}

#[test]
fn concurrent_readers_racing_short_ttl_see_it_gone() {
    // A real clock: readers race the 0.05 s deadline.
    let server = TestServer::start(CAPACITY_2);
    let server = &server;
    server.put("brief", json!({"v": "short-lived"}), Some(0.05));
    let written_at = Instant::now();
    thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(move || {
                let mut seen_gone = false;
                let mut reads = 0;
                while written_at.elapsed() < ms(200) && reads < 2000 {
                    reads += 1;
                    match server.value("brief") {
                        Some(value) => {
                            assert_eq!(value, json!({"v": "short-lived"}));
                            assert!(!seen_gone, "an expired key came back");
                        }
                        None => seen_gone = true,
                    }
                    thread::sleep(ms(1));
                }
            });
        }
    });
    let left = ms(100).saturating_sub(written_at.elapsed());
    thread::sleep(left);
    assert_eq!(server.value("brief"), None);
    assert_eq!(server.value("brief"), None);
    server.wait_for_stats(secs(3), |stats| stats["keys"] == 0);
}

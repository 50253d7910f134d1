//! Active expiry on the real clock: the timer wheel reclaims expired entries without
//! any request touching them, within one tick plus the wheel's finest span, and the
//! memory account comes back down to the one entry without a TTL.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

#[test]
fn wheel_reclaims_untouched_entries_promptly() {
    let server = TestServer::start("[store]\ncapacity = 100000\npartitions = 2\ntick = \"20ms\"\n");
    server.put("forever", json!(1), None);
    let first = Instant::now();
    for index in 0..200 {
        server.put(&format!("k{index}"), json!({"index": index}), Some(1.0));
    }
    let written = Instant::now();
    // All 200 are live only if writing them took less than their 1 s TTL.
    if first.elapsed() < Duration::from_millis(900) {
        assert_eq!(server.stats()["keys"], 201);
    }
    let stats = server.wait_for_stats(Duration::from_secs(5), |stats| stats["keys"] == 1);
    let elapsed = written.elapsed();
    // The last deadline is at most 1 s after `written`; + tick 20 ms + finest span
    // 17 ms, with slack for a busy machine.
    assert!(
        elapsed < Duration::from_millis(1200),
        "reclaimed after {elapsed:?}"
    );
    assert_eq!(stats["expirations"], 200);
    assert_eq!(stats["evictions_capacity"], 0);
    let one_entry = stats["memory"].as_u64().unwrap();
    assert!(
        one_entry > 0 && one_entry < 512,
        "only `forever` is charged: {stats}"
    );
    assert_eq!(server.value("forever"), Some(json!(1)));
}

#[test]
fn expired_entries_are_misses_before_the_wheel_runs() {
    // A one-second tick: reads must not wait for it.
    let server = TestServer::start_mocked("[store]\ntick = \"1s\"\n");
    server.put("k", json!("v"), Some(5.0));
    server.advance(Duration::from_secs(5));
    assert_eq!(server.value("k"), None);
    let stats = server.stats();
    assert_eq!(stats["expired_reads"], 1);
    assert_eq!(stats["misses"], 1);
}

//! The eviction policy end to end: `store.eviction` reaches the partitions, and a
//! read-through client's misses reach W-TinyLFU's sketch through the read path.

mod common;

use common::TestServer;

/// A client reads a hot set through the cache five times (GET; on a 404, PUT),
/// then scans 2,000 one-off keys the same way: how many hot keys are still held.
fn hot_keys_left_after_a_scan(eviction: &str) -> usize {
    let server = TestServer::start(&format!(
        "[store]\ncapacity = 200\npartitions = 1\neviction = \"{eviction}\"\n"
    ));
    let hot: Vec<String> = (0..100).map(|i| format!("hot{i}")).collect();
    let read_through = |key: &str| {
        if server.get(&format!("/v1/kv/{key}")).status == 404 {
            let reply = server.request("PUT", &format!("/v1/kv/{key}"), &[], Some(b"1"));
            assert_eq!(reply.status, 201, "{}", reply.body);
        }
    };
    for _ in 0..5 {
        hot.iter().for_each(|key| read_through(key));
    }
    (0..2_000).for_each(|i| read_through(&format!("scan{i}")));
    let stats = server.stats();
    assert_eq!(stats["keys"], 200, "the cache is full: {stats}");
    hot.iter()
        .filter(|key| server.get(&format!("/v1/kv/{key}")).status == 200)
        .count()
}

#[test]
fn tinylfu_keeps_a_hot_set_through_a_scan_over_http() {
    assert_eq!(hot_keys_left_after_a_scan("lru"), 0, "LRU keeps the scan");
    let kept = hot_keys_left_after_a_scan("tinylfu");
    assert!(kept >= 90, "tinylfu kept {kept} of 100 hot keys");
}

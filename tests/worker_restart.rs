//! Regression: a partition's actor was orphaned when its HTTP worker thread died.
//! actix-server restarts the thread, but the new one adopted nothing while the dead
//! actor's address stayed set, so every write to those partitions answered 503
//! forever and their expiry stopped (issue 12, item 3). Here a test-only route
//! stops one worker's thread; afterwards every partition must still hold its data,
//! take writes, expire entries and report healthy.

mod common;

use std::{
    collections::HashSet,
    thread,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, web};
use common::TestServer;
use serde_json::json;

const KEYS: usize = 64;

/// Test-only routes: which thread serves a request, and stop that thread.
fn hooks(cfg: &mut web::ServiceConfig) {
    cfg.route("/test/thread", web::get().to(|| async { thread_name() }))
        .route(
            "/test/stop-worker",
            web::post().to(|| async {
                // Answer first, then stop the thread's arbiter: the worker's event
                // loop ends and everything on it, the partitions' actors too, drops.
                actix_web::rt::spawn(async {
                    actix_web::rt::time::sleep(Duration::from_millis(50)).await;
                    actix_rt::Arbiter::current().stop();
                });
                thread_name()
            }),
        );
}

fn thread_name() -> HttpResponse {
    HttpResponse::Ok().body(format!("{:?}", thread::current().id()))
}

/// A hook's answer on a fresh connection (the pooled one may be on a dead worker).
fn hook(server: &TestServer, method: &str, path: &str) -> Option<String> {
    let response = ureq::request(method, &format!("{}{path}", server.base))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?;
    response.into_string().ok()
}

fn put(server: &TestServer, key: &str, value: serde_json::Value, ttl: Option<f64>) -> u16 {
    let body = json!({"key": key, "value": value, "ttl": ttl}).to_string();
    server.status("PUT", "/kv/insert", Some(body.as_bytes()))
}

#[test]
fn partitions_keep_their_data_and_serve_after_a_worker_thread_dies() {
    let server = TestServer::start_with_routes(
        "[server]\nworkers = 2\n[store]\npartitions = 4\ncapacity = 4096\n",
        hooks,
    );
    for index in 0..KEYS {
        assert_eq!(put(&server, &format!("k{index}"), json!(0), None), 200);
    }
    assert_eq!(put(&server, "short-lived", json!(0), Some(0.3)), 200);

    let dead = hook(&server, "POST", "/test/stop-worker").expect("the hook answers");
    // actix-server notices the dead worker and starts another thread for it.
    let started = Instant::now();
    let mut seen = HashSet::new();
    while !seen.iter().any(|name: &String| *name != dead) || seen.contains(&dead) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no new worker: {seen:?}"
        );
        seen.clear();
        seen.extend((0..8).filter_map(|_| hook(&server, "GET", "/test/thread")));
        thread::sleep(Duration::from_millis(20));
    }

    // Every partition takes writes again, its data intact.
    for index in 0..KEYS {
        let status = put(&server, &format!("k{index}"), json!(1), None);
        assert_eq!(status, 200, "write to k{index} after the worker died");
    }
    let stats = server.stats();
    assert_eq!(stats["keys"], KEYS as u64 + 1, "nothing lost: {stats}");
    assert_eq!(
        stats["updates"], KEYS as u64,
        "every write replaced: {stats}"
    );
    assert!((0..KEYS).all(|index| server.value(&format!("k{index}")) == Some(json!(1))));

    // Expiry runs again on the partitions that were adopted.
    server.wait_for_stats(Duration::from_secs(5), |stats| stats["expirations"] == 1);
    let health = server.get("/health");
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
}

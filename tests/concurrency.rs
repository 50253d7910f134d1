//! Many client threads against a multi-partition server: shared and distinct keys,
//! no error, no torn value, and the capacity never exceeded, even while writing.

mod common;

use std::{
    collections::HashSet,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use common::TestServer;
use serde_json::{Value, json};

const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 150;

/// A value whose parts must agree: a torn read would mix two writes.
fn value(writer: usize, round: usize) -> Value {
    let tag = format!("w{writer}r{round}");
    json!({"tag": tag, "again": tag, "pad": "x".repeat(512 + round % 7)})
}

fn assert_whole(value: &Value) {
    assert_eq!(value["tag"], value["again"], "torn value: {value}");
    let round: usize = value["tag"]
        .as_str()
        .unwrap()
        .split('r')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        value["pad"].as_str().unwrap().len(),
        512 + round % 7,
        "torn pad: {value}"
    );
}

#[test]
fn shared_and_distinct_keys_under_load_stay_within_capacity() {
    // Four partitions of 64 entries: writers overflow them, so eviction runs concurrently.
    let server =
        TestServer::start("[store]\ncapacity = 256\npartitions = 4\n[server]\nworkers = 2\n");
    let done = AtomicBool::new(false);
    let max_seen = thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut max_keys = 0;
            while !done.load(Ordering::Relaxed) {
                let stats = server.stats();
                let keys = stats["keys"].as_u64().unwrap();
                for partition in stats["partitions"].as_array().unwrap() {
                    assert!(
                        partition["keys"].as_u64() <= partition["capacity"].as_u64(),
                        "{partition}"
                    );
                }
                max_keys = max_keys.max(keys);
                thread::sleep(Duration::from_millis(2));
            }
            max_keys
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|writer| {
                let server = &server;
                scope.spawn(move || {
                    for round in 0..OPS_PER_THREAD {
                        // Distinct keys per writer, plus a few keys everyone fights over.
                        server.put(&format!("own-{writer}-{round}"), value(writer, round), None);
                        let shared = format!("shared-{}", round % 4);
                        server.put(&shared, value(writer, round), Some(60.0));
                        if let Some(read) = server.value(&shared) {
                            assert_whole(&read);
                        }
                        if round % 10 == 0 {
                            let reply =
                                server.delete(&format!("/kv/delete/own-{writer}-{}", round / 2));
                            assert_eq!(reply.status, 200);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .for_each(|worker| worker.join().unwrap());
        done.store(true, Ordering::Relaxed);
        watcher.join().unwrap()
    });
    assert!(max_seen <= 256, "saw {max_seen} keys with capacity 256");
    let stats = server.stats();
    assert_eq!(stats["keys"], 256, "the store ends full: {stats}");
    let writes = (THREADS * OPS_PER_THREAD * 2) as u64;
    let inserts = stats["inserts"].as_u64().unwrap();
    let updates = stats["updates"].as_u64().unwrap();
    assert_eq!(
        inserts + updates,
        writes,
        "every write counted once: {stats}"
    );
    let removed =
        stats["evictions_capacity"].as_u64().unwrap() + stats["deletes"].as_u64().unwrap();
    assert_eq!(
        inserts - removed,
        256,
        "inserts minus removals is what is left: {stats}"
    );
}

#[test]
fn every_acknowledged_write_is_readable_when_nothing_is_evicted() {
    let server = TestServer::start("[store]\ncapacity = 100000\npartitions = 3\n");
    thread::scope(|scope| {
        for writer in 0..THREADS {
            let server = &server;
            scope.spawn(move || {
                for round in 0..OPS_PER_THREAD {
                    let key = format!("k-{writer}-{round}");
                    server.put(&key, value(writer, round), None);
                    // Read-your-writes: the actor answered, so the skiplist has it.
                    assert_eq!(server.value(&key), Some(value(writer, round)));
                }
            });
        }
    });
    let stats = server.stats();
    assert_eq!(stats["keys"], (THREADS * OPS_PER_THREAD) as u64);
    let spread: HashSet<u64> = stats["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keys"].as_u64().unwrap())
        .collect();
    assert!(!spread.contains(&0), "every partition got keys: {stats}");
}

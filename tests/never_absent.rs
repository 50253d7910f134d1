//! Regression: a GET answered 404 for a key that exists while another request
//! replaced it (370 of 190,190 GETs under wrk), because the skiplist briefly held
//! neither the old nor the new node (issue 12, item 1). "Once seen, never absent":
//! a key that is only ever replaced must answer every read after its first write,
//! on both route families and both actor placements, with 2 HTTP workers.

mod common;

use std::{
    sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    thread,
    time::{Duration, Instant},
};

use common::TestServer;

/// How long writers replace the key while readers read it; long enough that
/// today's code (about 0.2% of reads missing) fails every run.
const RUN: Duration = Duration::from_secs(3);
const WRITERS: usize = 2;
const READERS: usize = 4;

struct Routes {
    write: fn(&TestServer, usize) -> u16,
    read: &'static str,
}

const NATIVE: Routes = Routes {
    write: |server, round| {
        let body = round.to_string();
        server.status("PUT", "/v1/kv/hot", Some(body.as_bytes()))
    },
    read: "/v1/kv/hot",
};

const COMPAT: Routes = Routes {
    write: |server, round| {
        let body = format!(r#"{{"key": "hot", "value": {round}}}"#);
        server.status("PUT", "/kv/insert", Some(body.as_bytes()))
    },
    read: "/kv/hot",
};

fn once_seen_never_absent(placement: &str, routes: Routes) {
    let server = TestServer::start(&format!(
        "[server]\nworkers = 2\n[store]\npartitions = 2\nplacement = \"{placement}\"\n"
    ));
    assert!(matches!((routes.write)(&server, 0), 200 | 201));
    let (done, reads, missed) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    thread::scope(|scope| {
        for _ in 0..READERS {
            scope.spawn(|| {
                while !done.load(Relaxed) {
                    let status = server.status("GET", routes.read, None);
                    assert!(matches!(status, 200 | 404), "GET answered {status}");
                    reads.fetch_add(1, Relaxed);
                    missed.fetch_add(usize::from(status == 404), Relaxed);
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let server = &server;
                scope.spawn(move || {
                    let started = Instant::now();
                    let mut round = writer;
                    while started.elapsed() < RUN {
                        assert_eq!((routes.write)(server, round), 200, "a replace");
                        round += WRITERS;
                    }
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        done.store(true, Relaxed);
    });
    let stats = server.stats();
    assert_eq!(stats["deletes"], 0, "nothing deleted the key: {stats}");
    let (reads, missed) = (reads.into_inner(), missed.into_inner());
    assert!(reads > 1000, "too few reads to tell: {reads}");
    assert_eq!(
        missed, 0,
        "{missed} of {reads} GETs answered 404 for a live key"
    );
}

#[test]
fn native_reads_never_miss_a_replaced_key() {
    once_seen_never_absent("workers", NATIVE);
}

#[test]
fn compat_reads_never_miss_a_replaced_key() {
    once_seen_never_absent("workers", COMPAT);
}

#[test]
fn reads_never_miss_a_replaced_key_with_actors_on_arbiters() {
    once_seen_never_absent("arbiters", NATIVE);
}

//! Linearizability of the native API (issue 12): histories of concurrent GET, PUT,
//! PUT with `If-Match` and DELETE on a few keys, recorded against the real server and
//! checked per key against a register model.
//!
//! # Layout
//! - `history`: operations, their answers and times; JSON for fixtures.
//! - `model`: one key as a register `Option<(value, version)>`, and `step`.
//! - `checker`: the Wing–Gong/Lowe search with memoization (as porcupine does).
//! - `shrink`: a failing history cut down to a small honest witness.
//! - `record`: client threads running a workload and timing every request.
//! - `cases`, `simulate`: the checker on hand-made and simulated histories with known
//!   verdicts.
//!
//! The live tests below assert linearizability. On code where a GET can miss a key
//! that another request is replacing (crossbeam-skiplist's insert unlinks the old node
//! before linking the new one), they fail with the operations around the bad read;
//! `tests/fixtures/overwrite_race_history.json` is such a history, recorded here.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod checker;
mod history;
mod model;
mod record;
mod shrink;
mod simulate;

use std::{
    fs,
    time::{Duration, Instant},
};

use common::TestServer;
use history::{Input, Op, Output};
use rand::Rng;
use record::{Client, Workload};

/// Two workers, so reads on one thread race writes on the other; nothing is evicted.
const CONFIG: &str = "[server]\nworkers = 2\n[store]\npartitions = 4\ncapacity = 100000\n";

/// Fails with the violation, a shrunk witness, and where both histories were saved.
fn assert_linearizable(name: &str, history: &[Op]) {
    let Err(violation) = checker::check(history) else {
        return;
    };
    let dir = env!("CARGO_TARGET_TMPDIR");
    let full = format!("{dir}/{name}-history.json");
    fs::write(&full, history::to_json(history)).expect("saves the history");
    let witness = match shrink::witness(&violation) {
        Some(ops) => {
            let path = format!("{dir}/{name}-witness.json");
            fs::write(&path, history::to_json(&ops)).expect("saves the witness");
            let lines: Vec<String> = ops.iter().map(|op| format!("    {op}")).collect();
            format!(
                "A witness of {} operations ({path}):\n{}",
                ops.len(),
                lines.join("\n")
            )
        }
        None => "No smaller witness found.".to_owned(),
    };
    panic!("{violation}{witness}\nThe whole history: {full}");
}

/// Creates `key` before the clients start, as client `client`, so a 404 on it is news.
fn create(server: &TestServer, start: Instant, client: usize, key: &str) -> Op {
    let agent = ureq::AgentBuilder::new().build();
    let input = Input::Put {
        value: format!("{key}-initial"),
    };
    let op = record::perform(&agent, &server.base, start, client, key, input);
    assert!(
        matches!(op.output, Output::Written { created: true, .. }),
        "{op}"
    );
    op
}

fn summary(history: &[Op]) -> String {
    let count = |f: fn(&Op) -> bool| history.iter().filter(|op| f(op)).count();
    let last = history.iter().filter_map(|op| op.ret).max().unwrap_or(0);
    format!(
        "{} ops in {} ms: {} GET ({} 404), {} unanswered",
        history.len(),
        last / 1000,
        count(|op| op.input == Input::Get),
        count(|op| op.output == Output::Missing),
        count(|op| op.ret.is_none()),
    )
}

/// Writers overwrite one hot key while readers read it: no deletes, so after the
/// first PUT every GET must find it (the overwrite race makes a few answer 404).
#[test]
fn hot_key_overwrites_are_linearizable() {
    const WRITERS: usize = 3;
    let server = TestServer::start(CONFIG);
    let start = Instant::now();
    let mut history = vec![create(&server, start, 99, "hot")];
    let next = |client: &mut Client| {
        let input = if client.id < WRITERS {
            Input::Put {
                value: client.fresh_value(),
            }
        } else {
            Input::Get
        };
        (0, input)
    };
    let workload = Workload {
        clients: 8,
        keys: &["hot"],
        duration: Duration::from_millis(3000),
        max_ops: 1200,
        next: &next,
    };
    history.extend(record::record(&server.base, start, &workload));
    eprintln!("hot key: {}", summary(&history));
    assert_linearizable("hot-key", &history);
}

/// PUT, compare-and-set on the last version the client saw, GET and DELETE on three
/// keys from six clients.
#[test]
fn mixed_cas_workload_is_linearizable() {
    let keys = ["a", "b", "c"];
    let server = TestServer::start(CONFIG);
    let start = Instant::now();
    let next = |client: &mut Client| {
        let key = client.rng.gen_range(0..keys.len());
        let input = match client.rng.gen_range(0..100) {
            0..30 => Input::Put {
                value: client.fresh_value(),
            },
            30..55 => Input::PutIfMatch {
                expected: client.seen[key].unwrap_or(1),
                value: client.fresh_value(),
            },
            55..90 => Input::Get,
            _ => Input::Delete,
        };
        (key, input)
    };
    let workload = Workload {
        clients: 6,
        keys: &keys,
        duration: Duration::from_millis(2000),
        max_ops: 600,
        next: &next,
    };
    let history = record::record(&server.base, start, &workload);
    eprintln!("mixed: {}", summary(&history));
    assert_linearizable("mixed-cas", &history);
}

/// A history recorded by `hot_key_overwrites_are_linearizable` on code with the
/// overwrite race, shrunk (`shrink::witness`): a GET answered 404 while the key,
/// created before it was sent and never deleted, was being replaced by three PUTs.
#[test]
fn recorded_overwrite_race_is_not_linearizable() {
    let ops = history::from_json(include_str!("../fixtures/overwrite_race_history.json"));
    assert!(ops.iter().all(|op| op.input != Input::Delete), "no deletes");
    let violation = checker::check(&ops).expect_err("the race is not linearizable");
    let miss = &violation.ops[violation.stuck];
    assert_eq!(
        (&miss.input, &miss.output),
        (&Input::Get, &Output::Missing),
        "{violation}"
    );
    let created_before = ops.iter().any(|op| {
        matches!(op.output, Output::Written { created: true, .. })
            && op.ret.is_some_and(|ret| ret < miss.call)
    });
    assert!(created_before, "the key existed before the GET");
    let replacing =
        (ops.iter()).filter(|op| op.overlaps(miss) && matches!(op.input, Input::Put { .. }));
    assert!(replacing.count() > 0, "a PUT was replacing it meanwhile");
    let rest: Vec<Op> = (ops.iter())
        .filter(|op| op.output != Output::Missing)
        .cloned()
        .collect();
    assert!(
        checker::check(&rest).is_ok(),
        "without the 404s the rest is linearizable"
    );
}

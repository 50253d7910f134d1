//! Transactions under kill -9: writers run transactions that put the same number
//! into every key of a group (spread over the partitions), then the process is
//! killed at a random moment and restarted. Each group must hold one number in
//! all its keys (a transaction is all there or not at all), at least the last one
//! acknowledged, and at most the last one sent.

use std::{
    sync::atomic::{AtomicBool, Ordering::SeqCst},
    thread,
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};

use super::{
    common::process::Server,
    http::{agent, call},
};

pub const GROUPS: usize = 8;
/// Keys per group: with 4 partitions, nearly every group spans several.
const GROUP_KEYS: usize = 6;
const TXN_WRITERS: usize = 2;

/// What the writers know of each group: the last number acknowledged and the
/// last sent (sent > acked only for the transaction in flight at the kill).
#[derive(Clone, Copy, Debug, Default)]
pub struct Group {
    acked: u64,
    sent: u64,
}

fn key(group: usize, i: usize) -> String {
    format!("g{group}-{i}")
}

/// Reads every group back and checks it; the numbers read become the groups'.
pub fn verify(base: &str, groups: &mut [Group]) -> Vec<String> {
    let agent = agent();
    let mut failures = Vec::new();
    for (g, group) in groups.iter_mut().enumerate() {
        let mut numbers = Vec::new();
        for i in 0..GROUP_KEYS {
            match call(&agent, "GET", &format!("{base}/v1/kv/{}", key(g, i)), None) {
                Ok(reply) if reply.status == 404 => numbers.push(0),
                Ok(reply) if reply.status == 200 => {
                    let value: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                    numbers.push(value["n"].as_u64().unwrap_or(u64::MAX));
                }
                other => failures.push(format!("group {g}: {other:?}")),
            }
        }
        let first = numbers.first().copied().unwrap_or(0);
        if numbers.iter().any(|&n| n != first) {
            failures.push(format!("group {g}: part of a transaction: {numbers:?}"));
        } else if first < group.acked || first > group.sent {
            failures.push(format!(
                "group {g}: holds {first}, acked {}, sent {}",
                group.acked, group.sent
            ));
        }
        *group = Group {
            acked: first,
            sent: first,
        };
    }
    failures
}

/// Runs the transaction writers until `killed`; folds what they saw into `groups`.
pub fn load(base: &str, groups: &mut [Group], killed: &AtomicBool, seed: u64) -> usize {
    let per_writer: Vec<Vec<(usize, Group)>> = thread::scope(|scope| {
        let runs: Vec<_> = (0..TXN_WRITERS)
            .map(|writer| {
                // Each writer owns every TXN_WRITERS-th group: its view is exact.
                let mine: Vec<(usize, Group)> = (writer..GROUPS)
                    .step_by(TXN_WRITERS)
                    .map(|g| (g, groups[g]))
                    .collect();
                scope.spawn(move || run(base, mine, killed, seed ^ writer as u64))
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().expect("writer"))
            .collect()
    });
    let mut acked = 0;
    for (g, group) in per_writer.into_iter().flatten() {
        acked += (group.acked - groups[g].acked) as usize;
        groups[g] = group;
    }
    acked
}

fn run(
    base: &str,
    mut mine: Vec<(usize, Group)>,
    killed: &AtomicBool,
    seed: u64,
) -> Vec<(usize, Group)> {
    let agent = agent();
    let mut rng = StdRng::seed_from_u64(seed);
    while !killed.load(SeqCst) {
        let pick = rng.gen_range(0..mine.len());
        let (g, group) = &mut mine[pick];
        let n = group.sent.max(group.acked) + 1;
        group.sent = n;
        let pad = "x".repeat(rng.gen_range(0..300));
        let puts: Vec<Value> = (0..GROUP_KEYS)
            .map(|i| json!({"op": "put", "key": key(*g, i), "value": {"n": n, "pad": pad}}))
            .collect();
        let body = json!({"success": puts}).to_string();
        match call(&agent, "POST", &format!("{base}/v1/txn"), Some(&body)) {
            Ok(reply) if reply.status == 200 => group.acked = n,
            Ok(reply) => panic!("a transaction answered {reply:?}"),
            Err(_) => return mine, // the kill
        }
    }
    mine
}

/// Kill/restart cycles with transaction writers; answers the failures.
pub fn cycles(config: &std::path::Path, cycles: u64, seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut groups = vec![Group::default(); GROUPS];
    for cycle in 0..=cycles {
        let mut server =
            Server::try_start(config).map_err(|failure| format!("cycle {cycle}: {failure}"))?;
        let failures = verify(&server.base, &mut groups);
        if !failures.is_empty() {
            return Err(format!(
                "cycle {cycle}:\n{}\n{}",
                failures.join("\n"),
                server.log_tail()
            ));
        }
        if cycle == cycles {
            return Ok(());
        }
        let killed = AtomicBool::new(false);
        let kill_after = Duration::from_millis(rng.gen_range(100..500));
        let base = server.base.clone();
        let acked = thread::scope(|scope| {
            let writers = scope.spawn(|| load(&base, &mut groups, &killed, seed ^ cycle));
            thread::sleep(kill_after);
            server.kill();
            killed.store(true, SeqCst);
            writers.join().expect("writers")
        });
        println!("transactions, cycle {cycle}: killed after {kill_after:?}, {acked} acknowledged");
    }
    Ok(())
}

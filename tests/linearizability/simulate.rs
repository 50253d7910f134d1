//! Large histories with known verdicts: a sequential run of random operations on a few
//! keys (one version counter for all, as in a partition) gives each operation its
//! answer at a linearization point; each operation then gets a random interval around
//! its point, so many overlap. Such a history is linearizable by construction. Making
//! one read return an older write's value, after a newer write had returned, makes it
//! not linearizable for sure (versions rise in linearization order, values are unique).

use std::collections::HashMap;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::{
    checker::check,
    history::{Input, Op, Output},
};

/// Linearization points are `SPACING` µs apart; intervals reach up to `REACH` µs
/// either side, so an operation overlaps up to about `2 * REACH / SPACING` others.
const SPACING: u64 = 10;
const REACH: u64 = 45;

/// The sequential store: each key's value and version, and the shared counter.
#[derive(Default)]
struct Sequential {
    keys: HashMap<String, (String, u64)>,
    version: u64,
}

impl Sequential {
    /// Applies `input` to `key` and returns the answer.
    fn apply(&mut self, key: &str, input: &Input) -> Output {
        let current = self.keys.get(key).cloned();
        match input {
            Input::Get => match current {
                Some((read, version)) => Output::Found { read, version },
                None => Output::Missing,
            },
            Input::Delete => Output::Deleted {
                existed: self.keys.remove(key).is_some(),
            },
            Input::Put { value } => self.write(key, value, current.is_none()),
            Input::PutIfMatch { expected, value } => match current {
                Some((_, version)) if version == *expected => self.write(key, value, false),
                other => Output::PreconditionFailed {
                    current: other.map(|(_, version)| version),
                },
            },
        }
    }

    fn write(&mut self, key: &str, value: &str, created: bool) -> Output {
        self.version += 1;
        let version = self.version;
        self.keys
            .insert(key.to_owned(), (value.to_owned(), version));
        Output::Written { version, created }
    }
}

/// `count` operations on `keys` keys; a share `lost` of them get no answer (and take
/// effect or not, at random).
pub fn simulate(seed: u64, count: usize, keys: usize, lost: f64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = Sequential::default();
    let mut last_seen: Vec<u64> = vec![0; keys];
    let mut ops: Vec<Op> = (0..count)
        .map(|index| {
            let slot = rng.gen_range(0..keys);
            let key = format!("key-{slot}");
            let input = random_input(&mut rng, index, last_seen[slot]);
            let point = REACH + SPACING * index as u64;
            let call = point - rng.gen_range(0..=REACH);
            let ret = point + rng.gen_range(0..=REACH);
            let unanswered = rng.gen_bool(lost);
            let output = if unanswered && rng.gen_bool(0.5) {
                Output::Unknown // never took effect
            } else {
                store.apply(&key, &input)
            };
            if let Output::Found { version, .. } | Output::Written { version, .. } = output {
                last_seen[slot] = version;
            }
            let (ret, output) = if unanswered {
                (None, Output::Unknown)
            } else {
                (Some(ret), output)
            };
            Op {
                client: index % 8,
                key,
                call,
                ret,
                input,
                output,
            }
        })
        .collect();
    ops.sort_by_key(|op| op.call);
    ops
}

fn random_input(rng: &mut StdRng, index: usize, last_seen: u64) -> Input {
    let value = format!("v{index}");
    match rng.gen_range(0..100) {
        0..30 => Input::Put { value },
        // Mostly the version last seen (it may have moved on since), sometimes older.
        30..55 => Input::PutIfMatch {
            expected: last_seen.saturating_sub(rng.gen_range(0..2)),
            value,
        },
        55..92 => Input::Get,
        _ => Input::Delete,
    }
}

/// Makes one read return an older write, after a newer one returned; true if done.
fn make_a_read_stale(ops: &mut [Op], rng: &mut StdRng) -> bool {
    let mut reads: Vec<usize> = (0..ops.len())
        .filter(|&at| matches!(ops[at].output, Output::Found { .. }))
        .collect();
    reads.shuffle(rng);
    for read in reads {
        let finished = |op: &&Op| op.key == ops[read].key && op.ret_or_never() < ops[read].call;
        let writes: Vec<(&str, u64)> = (ops.iter().filter(finished))
            .filter_map(|op| match (&op.input, &op.output) {
                (
                    Input::Put { value } | Input::PutIfMatch { value, .. },
                    Output::Written { version, .. },
                ) => Some((value.as_str(), *version)),
                _ => None,
            })
            .collect();
        let newest = writes.iter().map(|&(_, version)| version).max();
        if let Some(&(value, version)) = writes.iter().find(|&&(_, v)| Some(v) < newest) {
            ops[read].output = Output::Found {
                read: value.to_owned(),
                version,
            };
            return true;
        }
    }
    false
}

#[test]
fn simulated_histories_are_linearizable() {
    for (seed, count, keys, lost) in [(1, 6000, 3, 0.0), (2, 3000, 1, 0.0), (3, 1500, 2, 0.02)] {
        let ops = simulate(seed, count, keys, lost);
        if let Err(violation) = check(&ops) {
            panic!("seed {seed}: expected linearizable, got\n{violation}");
        }
    }
}

#[test]
fn simulated_histories_with_a_stale_read_are_not() {
    for seed in 10..16 {
        let mut ops = simulate(seed, 2000, 2, 0.0);
        let mut rng = StdRng::seed_from_u64(seed);
        assert!(
            make_a_read_stale(&mut ops, &mut rng),
            "seed {seed}: a read to spoil"
        );
        assert!(
            check(&ops).is_err(),
            "seed {seed}: a stale read went unnoticed"
        );
    }
}

#[test]
fn simulated_histories_with_a_read_of_nothing_written_are_not() {
    let mut ops = simulate(20, 2000, 2, 0.0);
    let read = ops
        .iter()
        .rposition(|op| matches!(op.output, Output::Found { .. }));
    ops[read.expect("a read")].output = Output::Found {
        read: "never".to_owned(),
        version: 1,
    };
    assert!(check(&ops).is_err());
}

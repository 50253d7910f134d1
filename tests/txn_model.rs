//! Transactions against a sequential model: random transactions (compares on
//! versions, existence and values; branches of gets, puts and deletes, with
//! preconditions) and plain writes, run one after another over HTTP on a server
//! with 8 partitions. Every answer (branch taken, each op's status and value)
//! must be the model's, and versions stay unique per key.

mod common;

use std::collections::HashMap;

use common::TestServer;
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::{Value, json};

const KEYS: usize = 4;

#[derive(Clone, Debug)]
enum OpGen {
    Get(usize),
    Put(usize, i64, Option<bool>), // Some(true): if_match current, Some(false): if_none_match *
    Delete(usize),
}

#[derive(Clone, Debug)]
enum CmpGen {
    Version(usize, bool), // true: the current version, false: a wrong one
    Exists(usize, bool),
    Value(usize, i64),
}

#[derive(Clone, Debug)]
enum Step {
    Txn(Vec<CmpGen>, Vec<OpGen>, Vec<OpGen>),
    Plain(usize, Option<i64>),
}

fn op() -> impl Strategy<Value = OpGen> {
    prop_oneof![
        (0..KEYS).prop_map(OpGen::Get),
        (0..KEYS, 0..3i64, prop::option::of(any::<bool>()))
            .prop_map(|(k, v, p)| OpGen::Put(k, v, p)),
        (0..KEYS).prop_map(OpGen::Delete),
    ]
}

fn cmp() -> impl Strategy<Value = CmpGen> {
    prop_oneof![
        (0..KEYS, any::<bool>()).prop_map(|(k, b)| CmpGen::Version(k, b)),
        (0..KEYS, any::<bool>()).prop_map(|(k, b)| CmpGen::Exists(k, b)),
        (0..KEYS, 0..3i64).prop_map(|(k, v)| CmpGen::Value(k, v)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::collection::vec(cmp(), 0..3), prop::collection::vec(op(), 0..4), prop::collection::vec(op(), 0..4))
            .prop_map(|(c, s, f)| Step::Txn(c, s, f)),
        1 => (0..KEYS, prop::option::of(0..3i64)).prop_map(|(k, v)| Step::Plain(k, v)),
    ]
}

/// The model: each key's value and version.
#[derive(Default)]
struct Model {
    live: HashMap<usize, (i64, u64)>,
    /// Every version each key has had, to check they never repeat.
    versions: HashMap<usize, Vec<u64>>,
}

fn key(k: usize) -> String {
    format!("m{k}")
}

impl Model {
    fn version_of(&self, k: usize) -> u64 {
        self.live.get(&k).map_or(0, |(_, v)| *v)
    }

    fn holds(&self, cmp: &CmpGen) -> bool {
        match cmp {
            CmpGen::Version(k, right) => *right && self.live.contains_key(k),
            CmpGen::Exists(k, wanted) => self.live.contains_key(k) == *wanted,
            CmpGen::Value(k, value) => self.live.get(k).is_some_and(|(v, _)| v == value),
        }
    }

    fn cmp_json(&self, cmp: &CmpGen) -> Value {
        match cmp {
            CmpGen::Version(k, right) => {
                let current = self.version_of(*k);
                let version = if *right { current } else { current + 1_000_000 };
                json!({"key": key(*k), "version": version})
            }
            CmpGen::Exists(k, b) => json!({"key": key(*k), "exists": b}),
            CmpGen::Value(k, v) => json!({"key": key(*k), "value": v}),
        }
    }

    fn op_json(&self, op: &OpGen) -> Value {
        match op {
            OpGen::Get(k) => json!({"op": "get", "key": key(*k)}),
            OpGen::Put(k, v, None) => json!({"op": "put", "key": key(*k), "value": v}),
            OpGen::Put(k, v, Some(true)) => {
                json!({"op": "put", "key": key(*k), "value": v, "if_match": format!("\"{}\"", self.version_of(*k))})
            }
            OpGen::Put(k, v, Some(false)) => {
                json!({"op": "put", "key": key(*k), "value": v, "if_none_match": "*"})
            }
            OpGen::Delete(k) => json!({"op": "delete", "key": key(*k)}),
        }
    }

    /// Applies `op` to the model given the server's result, checking it.
    fn apply(&mut self, op: &OpGen, if_match_version: u64, result: &Value) -> Result<(), String> {
        let status = result["status"].as_u64().unwrap();
        let expect = |wanted: u64| -> Result<(), String> {
            if status == wanted {
                Ok(())
            } else {
                Err(format!("{op:?}: status {status}, model {wanted}: {result}"))
            }
        };
        match op {
            OpGen::Get(k) => match self.live.get(k) {
                Some((value, version)) => {
                    expect(200)?;
                    if result["value"] != json!(value) || result["version"] != json!(version) {
                        return Err(format!("{op:?}: {result}, model {value} v{version}"));
                    }
                }
                None => expect(404)?,
            },
            OpGen::Put(k, value, precondition) => {
                let live = self.live.contains_key(k);
                let allowed = match precondition {
                    None => true,
                    Some(true) => live && self.version_of(*k) == if_match_version,
                    Some(false) => !live,
                };
                if !allowed {
                    return expect(412);
                }
                expect(if live { 200 } else { 201 })?;
                let version = result["version"].as_u64().unwrap();
                let history = self.versions.entry(*k).or_default();
                if history.contains(&version) {
                    return Err(format!("{op:?}: version {version} reused"));
                }
                history.push(version);
                self.live.insert(*k, (*value, version));
            }
            OpGen::Delete(k) => expect(if self.live.remove(k).is_some() {
                204
            } else {
                404
            })?,
        }
        Ok(())
    }
}

fn post(server: &TestServer, path: &str, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let reply = server.request(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(&bytes),
    );
    assert_eq!(reply.status, 200, "{body}: {}", reply.body);
    reply.json()
}

fn run(server: &TestServer, steps: &[Step]) -> Result<(), TestCaseError> {
    let deletes: Vec<Value> = (0..KEYS)
        .map(|k| json!({"op": "delete", "key": key(k)}))
        .collect();
    post(server, "/v1/batch", &json!({ "ops": deletes }));
    let mut model = Model::default();
    for step in steps {
        match step {
            Step::Txn(cmps, success, failure) => {
                let body = json!({
                    "compare": cmps.iter().map(|c| model.cmp_json(c)).collect::<Vec<_>>(),
                    "success": success.iter().map(|o| model.op_json(o)).collect::<Vec<_>>(),
                    "failure": failure.iter().map(|o| model.op_json(o)).collect::<Vec<_>>(),
                });
                let done = post(server, "/v1/txn", &body);
                let succeeded = cmps.iter().all(|c| model.holds(c));
                prop_assert_eq!(&done["succeeded"], &json!(succeeded), "{}", body);
                let branch = if succeeded { success } else { failure };
                let results = done["results"].as_array().unwrap();
                prop_assert_eq!(results.len(), branch.len());
                // if_match versions were taken from the model before the branch ran.
                let versions: Vec<u64> = branch
                    .iter()
                    .map(|o| match o {
                        OpGen::Put(k, _, _) => model.version_of(*k),
                        _ => 0,
                    })
                    .collect();
                let versions: Vec<u64> = versions
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let body_branch = if succeeded {
                            &body["success"]
                        } else {
                            &body["failure"]
                        };
                        body_branch[i]["if_match"]
                            .as_str()
                            .map_or(*v, |tag| tag.trim_matches('"').parse().unwrap())
                    })
                    .collect();
                for ((op, result), version) in branch.iter().zip(results).zip(versions) {
                    model
                        .apply(op, version, result)
                        .map_err(TestCaseError::fail)?;
                }
            }
            Step::Plain(k, value) => {
                let op = match value {
                    Some(v) => OpGen::Put(*k, *v, None),
                    None => OpGen::Delete(*k),
                };
                let done = post(server, "/v1/batch", &json!({ "ops": [model.op_json(&op)] }));
                model
                    .apply(&op, 0, &done["results"][0])
                    .map_err(TestCaseError::fail)?;
            }
        }
    }
    Ok(())
}

#[test]
fn transactions_match_a_sequential_model() {
    let server =
        TestServer::start("[store]\npartitions = 8\ncapacity = 10000\n[server]\nworkers = 2\n");
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(step(), 1..25), |steps| {
            run(&server, &steps)
        })
        .unwrap();
}

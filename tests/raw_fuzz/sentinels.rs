//! Sentinel keys: written before the fuzz cases through both APIs, read back after
//! every batch. A fuzz case may only change `fuzz-` keys, so a sentinel whose value
//! or ETag moved was written by bytes the server should never have run as a
//! request; a smuggled PUT's value names its case, and a smuggled DELETE aims at a
//! sentinel of its case's own. A changed sentinel is written back, so a later
//! change is reported too; two PUTs smuggled into one sentinel in the same batch
//! show as one.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{
    Violation,
    cases::{COMPAT_SENTINELS, Case, DELETE_SENTINEL, NATIVE_SENTINELS},
    common::TestServer,
};

pub struct Sentinels {
    /// Key, the value it must hold, and its ETag.
    expected: Vec<(String, Value, String)>,
}

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

impl Sentinels {
    /// Writes `sentinel-0..` with native PUTs and `sentinel-c0..` with PyRustKV
    /// inserts, and records their ETags.
    pub fn plant(server: &TestServer) -> Sentinels {
        let mut expected = Vec::new();
        for number in 0..NATIVE_SENTINELS {
            let key = format!("sentinel-{number}");
            let value = json!({"sentinel": key});
            let etag = put(server, &key, &value);
            expected.push((key, value, etag));
        }
        for number in 0..COMPAT_SENTINELS {
            let key = format!("sentinel-c{number}");
            let value = json!({"sentinel": key});
            let body = json!({"key": key, "value": value}).to_string();
            let reply = server.request("PUT", "/kv/insert", &JSON, Some(body.as_bytes()));
            assert_eq!(reply.status, 200, "insert {key}: {}", reply.body);
            let etag = read(server, &key).1.expect("just inserted");
            expected.push((key, value, etag));
        }
        Sentinels { expected }
    }

    /// Plants the sentinels the cases' smuggled DELETEs aim at (one per case).
    pub fn plant_for(&mut self, server: &TestServer, cases: &[(usize, Case)]) {
        for (_, case) in cases {
            for key in &case.targets {
                if key.starts_with(DELETE_SENTINEL)
                    && self.expected.iter().all(|(known, ..)| known != key)
                {
                    let value = json!({"sentinel": key});
                    let etag = put(server, key, &value);
                    self.expected.push((key.clone(), value, etag));
                }
            }
        }
    }

    /// Reads every sentinel back; answers a violation for each that changed (and
    /// writes it back), attributed to the case that did it.
    pub fn check(&mut self, server: &TestServer, cases: &BTreeMap<usize, Case>) -> Vec<Violation> {
        let mut found = Vec::new();
        for (key, value, etag) in &mut self.expected {
            let (now, now_etag) = read(server, key);
            if now.as_ref() == Some(value) && now_etag.as_deref() == Some(etag.as_str()) {
                continue;
            }
            let detail = format!(
                "{key} changed: was {value} with ETag {etag}, now {} with ETag {}",
                now.as_ref()
                    .map_or("absent (deleted)".to_owned(), Value::to_string),
                now_etag.as_deref().unwrap_or("none"),
            );
            found.push(attribute(key, now.as_ref(), detail, cases));
            *etag = put(server, key, value);
        }
        found
    }
}

/// The case a change came from: the one a smuggled PUT's value names, or the one
/// whose own sentinel was deleted.
fn attribute(
    key: &str,
    now: Option<&Value>,
    detail: String,
    cases: &BTreeMap<usize, Case>,
) -> Violation {
    let kind = "sentinel changed (a request the server must not run ran)".to_owned();
    let named = now.and_then(|value| value["smuggled_by_case"].as_u64());
    let owner = key
        .strip_prefix(DELETE_SENTINEL)
        .and_then(|case| case.parse().ok());
    match named.or(owner) {
        Some(case) => Violation {
            case: case as usize,
            kind,
            detail,
        },
        None => {
            let first = *cases.keys().next().expect("a case ran");
            let detail = format!("{detail}; no case aimed at it (a bug in the test?)");
            Violation {
                case: first,
                kind,
                detail,
            }
        }
    }
}

fn put(server: &TestServer, key: &str, value: &Value) -> String {
    let body = value.to_string();
    let reply = server.request(
        "PUT",
        &format!("/v1/kv/{key}"),
        &JSON,
        Some(body.as_bytes()),
    );
    assert!(
        matches!(reply.status, 200 | 201),
        "PUT {key}: {}",
        reply.body
    );
    reply
        .header("etag")
        .expect("PUT answers an ETag")
        .to_owned()
}

/// The key's value and ETag, or `(None, None)` when it is absent.
fn read(server: &TestServer, key: &str) -> (Option<Value>, Option<String>) {
    let reply = server.get(&format!("/v1/kv/{key}"));
    match reply.status {
        200 => (Some(reply.json()), reply.header("etag").map(str::to_owned)),
        404 => (None, None),
        status => panic!("GET {key}: {status} {}", reply.body),
    }
}

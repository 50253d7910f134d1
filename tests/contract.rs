//! The contract checker (`common::contract`) itself: it runs on every response the
//! other tests observe, so here it must accept what the document describes and
//! reject each way a response can break it.

mod common;

use common::{Reply, STATS_COUNTERS, contract::violation};

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.to_owned(),
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A `/v1/stats` body: every figure 0 but `keys` as given, and no partitions.
fn stats_body(keys: &str) -> String {
    let zeros = ["capacity", "memory", "max_memory"]
        .iter()
        .chain(&STATS_COUNTERS)
        .map(|name| format!(r#""{name}":0"#))
        .collect::<Vec<_>>()
        .join(",");
    format!(r#"{{{keys},{zeros},"partitions":[]}}"#)
}

#[test]
fn accepts_described_responses() {
    let good = [
        (
            "GET",
            "/kv/a%2Fb",
            reply(200, &[JSON], r#"{"key":"a/b","value":[1,{"x":null}]}"#),
        ),
        (
            "GET",
            "/kv/a",
            reply(404, &[JSON], r#"{"detail":"Key not found"}"#),
        ),
        (
            "GET",
            "/kv/delete/x",
            reply(200, &[JSON], r#"{"key":"delete/x","value":"s"}"#),
        ),
        (
            "DELETE",
            "/kv/delete/x",
            reply(200, &[JSON], r#"{"status":"success"}"#),
        ),
        (
            "PUT",
            "/kv/insert",
            reply(422, &[JSON], r#"{"detail":"bad ttl"}"#),
        ),
        (
            "PUT",
            "/v1/kv/a?ttl=5",
            reply(
                201,
                &[JSON, ("ETag", "\"3\"")],
                r#"{"key":"a","version":3}"#,
            ),
        ),
        (
            "GET",
            "/v1/kv/a",
            reply(200, &[JSON, ("X-Expires-In", "12")], "7"),
        ),
        ("HEAD", "/v1/kv/a", reply(304, &[("ETag", "\"3\"")], "")),
        ("DELETE", "/v1/kv/a", reply(204, &[], "")),
        (
            "GET",
            "/v1/stats",
            reply(200, &[JSON], &stats_body(r#""keys":1"#)),
        ),
        (
            "GET",
            "/v1/stats",
            reply(
                401,
                &[JSON, ("WWW-Authenticate", "Bearer")],
                r#"{"error":"unauthorized","detail":"d"}"#,
            ),
        ),
        (
            "GET",
            "/metrics",
            reply(200, &[("Content-Type", "text/plain; version=0.0.4")], "# x"),
        ),
        (
            "GET",
            "/nowhere",
            reply(404, &[JSON], r#"{"error":"not_found","detail":"d"}"#),
        ),
        (
            "POST",
            "/kv/insert",
            reply(
                405,
                &[JSON, ("Allow", "GET, HEAD, PUT, DELETE")],
                r#"{"detail":"method POST not allowed"}"#,
            ),
        ),
    ];
    for (method, path, reply) in good {
        assert_eq!(violation(method, path, &reply), Ok(()), "{method} {path}");
    }
}

#[test]
fn rejects_each_kind_of_breach() {
    let bad = [
        // a required property missing, and a property of the wrong type
        (
            "GET",
            "/kv/a",
            reply(200, &[JSON], r#"{"value":1}"#),
            "does not match",
        ),
        (
            "PUT",
            "/v1/kv/a",
            reply(201, &[JSON], r#"{"key":"a","version":"1"}"#),
            "does not match",
        ),
        // statistics missing their per-partition figures, or with a negative count
        (
            "GET",
            "/v1/stats",
            reply(
                200,
                &[JSON],
                &stats_body(r#""keys": 1"#).replace(r#","partitions":[]"#, ""),
            ),
            "does not match",
        ),
        (
            "GET",
            "/v1/stats",
            reply(200, &[JSON], &stats_body(r#""keys": -1"#)),
            "does not match",
        ),
        // the other dialect's error shape
        (
            "GET",
            "/v1/kv/a",
            reply(404, &[JSON], r#"{"detail":"Key not found"}"#),
            "does not match",
        ),
        // a status the route does not list
        ("GET", "/v1/kv/a", reply(418, &[JSON], "{}"), "not listed"),
        (
            "PUT",
            "/kv/insert",
            reply(400, &[JSON], r#"{"detail":"d"}"#),
            "not listed",
        ),
        // not JSON, the wrong media type, no media type
        ("GET", "/v1/kv/a", reply(200, &[JSON], "{oops"), "not JSON"),
        (
            "GET",
            "/kv/a",
            reply(
                200,
                &[("Content-Type", "text/plain")],
                r#"{"key":"a","value":1}"#,
            ),
            "media type",
        ),
        (
            "GET",
            "/health",
            reply(200, &[], r#"{"status":"ok"}"#),
            "no Content-Type",
        ),
        // a body where none is listed
        ("DELETE", "/v1/kv/a", reply(204, &[JSON], "{}"), "a body"),
        ("HEAD", "/v1/kv/a", reply(200, &[JSON], "1"), "a body"),
        // a documented header with a value outside its schema
        (
            "GET",
            "/v1/kv/a",
            reply(200, &[JSON, ("X-Expires-In", "soon")], "1"),
            "X-Expires-In",
        ),
        (
            "GET",
            "/v1/kv/a",
            reply(200, &[JSON, ("X-Expires-In", "-4")], "1"),
            "X-Expires-In",
        ),
        // undescribed routes and methods
        ("GET", "/nowhere", reply(200, &[JSON], "{}"), "404 was due"),
        (
            "POST",
            "/v1/kv/a",
            reply(404, &[JSON], r#"{"error":"not_found","detail":"d"}"#),
            "405 was due",
        ),
        (
            "PATCH",
            "/kv/a",
            reply(405, &[JSON], r#"{"error":"x","detail":"d"}"#),
            "does not match",
        ),
        (
            "PUT",
            "/kv/a",
            reply(405, &[JSON], r#"{"detail":"d"}"#),
            "without an Allow header",
        ),
        (
            "PUT",
            "/kv/a",
            reply(405, &[JSON, ("Allow", "GET, PUT")], r#"{"detail":"d"}"#),
            "the document lists",
        ),
    ];
    for (method, path, reply, expected) in bad {
        match violation(method, path, &reply) {
            Ok(()) => panic!("{method} {path} {reply:?} passed the contract"),
            Err(problem) => assert!(
                problem.contains(expected),
                "{method} {path}: {problem:?} does not say {expected:?}"
            ),
        }
    }
}

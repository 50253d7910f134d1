//! Black-box tests of the native API: `PUT/GET/HEAD/DELETE /v1/kv/{key}` with
//! versions, `ETag`, `X-Expires-In` and `If-Match` / `If-None-Match`, plus
//! `/health` and `/v1/stats`, and the PyRustKV routes seeing the same data.
//!
//! Every request goes through `call`, which fails the test on any 5xx.

mod common;

use std::time::Duration;

use common::{Reply, STATS_COUNTERS, TestServer, encode};
use serde_json::{Value, json};

/// Requests that must never answer 5xx.
trait Checked {
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply;

    /// `PUT /v1/kv/{encoded key}{query}` with `value` as the JSON body.
    fn put_native(&self, key: &str, query: &str, value: &Value, headers: &[(&str, &str)]) -> Reply {
        let path = format!("/v1/kv/{}{query}", encode(key));
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.call(
            "PUT",
            &path,
            &all,
            Some(&serde_json::to_vec(value).unwrap()),
        )
    }

    fn get_native(&self, key: &str, headers: &[(&str, &str)]) -> Reply {
        self.call("GET", &format!("/v1/kv/{}", encode(key)), headers, None)
    }

    fn head_native(&self, key: &str, headers: &[(&str, &str)]) -> Reply {
        self.call("HEAD", &format!("/v1/kv/{}", encode(key)), headers, None)
    }

    fn delete_native(&self, key: &str, headers: &[(&str, &str)]) -> Reply {
        self.call("DELETE", &format!("/v1/kv/{}", encode(key)), headers, None)
    }
}

impl Checked for TestServer {
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let reply = self.request(method, path, headers, body);
        assert!(
            reply.status < 500,
            "{method} {path}: server error {} {}",
            reply.status,
            reply.body
        );
        reply
    }
}

/// A successful native write: checks the status, the body `{"key","version"}` and
/// that `ETag` names the same version; answers the version.
fn written(reply: &Reply, status: u16, key: &str) -> u64 {
    assert_eq!(reply.status, status, "write {key}: {}", reply.body);
    assert_json(reply);
    let body = reply.json();
    assert_eq!(body["key"], key, "{body}");
    let version = body["version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no version: {body}"));
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only key and version: {body}"
    );
    assert_eq!(
        reply.header("ETag"),
        Some(format!("\"{version}\"").as_str())
    );
    version
}

fn assert_json(reply: &Reply) {
    let content_type = reply.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?}"
    );
}

/// A native error: the status, and `{"error": code, "detail": text}`.
fn native_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_json(reply);
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| !detail.is_empty()),
        "{body}"
    );
}

fn etag(reply: &Reply) -> &str {
    reply
        .header("ETag")
        .unwrap_or_else(|| panic!("no ETag: {reply:?}"))
}

#[test]
fn put_creates_then_replaces_with_increasing_versions() {
    let server = TestServer::start("");
    let first = written(&server.put_native("a", "", &json!({"n": 1}), &[]), 201, "a");
    let second = written(&server.put_native("a", "", &json!({"n": 2}), &[]), 200, "a");
    let third = written(&server.put_native("a", "", &json!([3]), &[]), 200, "a");
    assert!(first < second && second < third, "{first} {second} {third}");

    let reply = server.get_native("a", &[]);
    assert_eq!(reply.status, 200);
    assert_json(&reply);
    assert_eq!(reply.json(), json!([3]));
    assert_eq!(etag(&reply), format!("\"{third}\""));
    assert_eq!(
        reply.header("X-Expires-In"),
        None,
        "no TTL, no X-Expires-In"
    );

    let missing = server.get_native("never-written", &[]);
    native_error(&missing, 404, "key_not_found");
    assert_eq!(missing.header("ETag"), None);
}

#[test]
fn get_body_equals_the_json_sent() {
    let server = TestServer::start("");
    let values = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-12.5),
        json!(1.5e300),
        json!(u64::MAX),
        json!(""),
        json!("text with \"quotes\", \\ and ünïcödé ✓ \u{1F600}"),
        json!([]),
        json!([1, "two", null, {"three": [3]}]),
        json!({}),
        json!({"nested": {"deep": [1, 2, {"x": null}]}, "s": "v"}),
    ];
    for (index, value) in values.iter().enumerate() {
        let key = format!("value-{index}");
        written(&server.put_native(&key, "", value, &[]), 201, &key);
        let reply = server.get_native(&key, &[]);
        assert_eq!(reply.status, 200, "{key}");
        assert_eq!(&reply.json(), value, "{key}");
        assert_eq!(server.value(&key).as_ref(), Some(value), "{key} via /kv/");
    }

    // Whitespace around the value is not part of it; the JSON is kept as sent.
    let body = b"  \n {\"a\" : [1,  2]}\t\n";
    let reply = server.call("PUT", "/v1/kv/spaced", &[], Some(body));
    written(&reply, 201, "spaced");
    assert_eq!(
        server.get_native("spaced", &[]).json(),
        json!({"a": [1, 2]})
    );
}

#[test]
fn ttl_counts_down_and_expires_on_the_mock_clock() {
    let server = TestServer::start_mocked("");
    written(
        &server.put_native("t", "?ttl=10", &json!("short-lived"), &[]),
        201,
        "t",
    );
    written(
        &server.put_native("forever", "", &json!(1), &[]),
        201,
        "forever",
    );

    let expires_in = |key: &str| {
        let reply = server.get_native(key, &[]);
        assert_eq!(reply.status, 200, "{key}: {}", reply.body);
        reply.header("X-Expires-In").map(str::to_owned)
    };
    assert_eq!(expires_in("t").as_deref(), Some("10"));
    assert_eq!(expires_in("forever"), None);

    server.advance(Duration::from_millis(3500));
    assert_eq!(
        expires_in("t").as_deref(),
        Some("7"),
        "6.5 s left rounds up to 7"
    );
    let head = server.head_native("t", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("X-Expires-In"), Some("7"));

    server.advance(Duration::from_millis(6499));
    assert_eq!(
        expires_in("t").as_deref(),
        Some("1"),
        "1 ms left rounds up to 1"
    );

    // Exactly at the deadline the key is gone, on every route.
    server.advance(Duration::from_millis(1));
    native_error(&server.get_native("t", &[]), 404, "key_not_found");
    assert_eq!(server.head_native("t", &[]).status, 404);
    assert_eq!(server.value("t"), None);
    native_error(&server.delete_native("t", &[]), 404, "key_not_found");
    assert_eq!(expires_in("forever"), None);

    // A fractional TTL is rounded up for the header but honoured exactly.
    written(
        &server.put_native("half", "?ttl=0.5", &json!(1), &[]),
        201,
        "half",
    );
    assert_eq!(expires_in("half").as_deref(), Some("1"));
    server.advance(Duration::from_millis(499));
    assert_eq!(expires_in("half").as_deref(), Some("1"));
    server.advance(Duration::from_millis(1));
    assert_eq!(server.get_native("half", &[]).status, 404);

    // After expiry, a PUT creates the key again (201).
    written(
        &server.put_native("t", "?ttl=2", &json!("again"), &[]),
        201,
        "t",
    );
    assert_eq!(expires_in("t").as_deref(), Some("2"));

    // Replacing without ?ttl drops the TTL.
    written(&server.put_native("t", "", &json!("kept"), &[]), 200, "t");
    assert_eq!(expires_in("t"), None);
    server.advance(Duration::from_secs(60));
    assert_eq!(server.get_native("t", &[]).json(), json!("kept"));

    // Replacing with a new ?ttl restarts the countdown.
    written(
        &server.put_native("t", "?ttl=30", &json!("renewed"), &[]),
        200,
        "t",
    );
    server.advance(Duration::from_secs(20));
    assert_eq!(expires_in("t").as_deref(), Some("10"));
}

#[test]
fn if_none_match_star_on_put_creates_only() {
    let server = TestServer::start("");
    let star = [("If-None-Match", "*")];
    let version = written(
        &server.put_native("once", "", &json!("first"), &star),
        201,
        "once",
    );

    let reply = server.put_native("once", "", &json!("second"), &star);
    native_error(&reply, 412, "precondition_failed");
    let reply = server.get_native("once", &[]);
    assert_eq!(
        reply.json(),
        json!("first"),
        "a failed precondition changes nothing"
    );
    assert_eq!(etag(&reply), format!("\"{version}\""));
}

#[test]
fn if_match_on_put() {
    let server = TestServer::start("");
    let v1 = written(&server.put_native("m", "", &json!("v1"), &[]), 201, "m");
    let tag1 = format!("\"{v1}\"");

    let v2 = written(
        &server.put_native("m", "", &json!("v2"), &[("If-Match", &tag1)]),
        200,
        "m",
    );
    assert!(v2 > v1);

    // The old version no longer matches.
    let reply = server.put_native("m", "", &json!("v3"), &[("If-Match", &tag1)]);
    native_error(&reply, 412, "precondition_failed");
    let reply = server.get_native("m", &[]);
    assert_eq!(reply.json(), json!("v2"));
    assert_eq!(etag(&reply), format!("\"{v2}\""));

    // A list matches if any tag does; `*` matches any current version.
    let list = format!("\"999999\", \"{v2}\"");
    let v3 = written(
        &server.put_native("m", "", &json!("v3"), &[("If-Match", &list)]),
        200,
        "m",
    );
    let v4 = written(
        &server.put_native("m", "", &json!("v4"), &[("If-Match", "*")]),
        200,
        "m",
    );
    assert!(v2 < v3 && v3 < v4);

    // On an absent key nothing matches, not even `*`; the key stays absent.
    for tag in ["\"1\"", "*"] {
        let reply = server.put_native("absent", "", &json!(1), &[("If-Match", tag)]);
        native_error(&reply, 412, "precondition_failed");
        assert_eq!(server.get_native("absent", &[]).status, 404);
    }
}

#[test]
fn conditional_get_and_head() {
    let server = TestServer::start("");
    let version = written(
        &server.put_native("c", "", &json!({"big": "value"}), &[]),
        201,
        "c",
    );
    let tag = format!("\"{version}\"");

    for method in ["GET", "HEAD"] {
        let reply = server.call(method, "/v1/kv/c", &[("If-None-Match", &tag)], None);
        assert_eq!(reply.status, 304, "{method}");
        assert_eq!(etag(&reply), tag, "{method}");
        assert_eq!(reply.body, "", "{method}: 304 has no body");

        let reply = server.call(method, "/v1/kv/c", &[("If-None-Match", "*")], None);
        assert_eq!(reply.status, 304, "{method} *");
    }

    let other = format!("\"{}\"", version + 1000);
    let reply = server.get_native("c", &[("If-None-Match", &other)]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"big": "value"}));
    assert_eq!(etag(&reply), tag);

    // After a write the old tag is stale: full answer with the new tag.
    let newer = written(&server.put_native("c", "", &json!("new"), &[]), 200, "c");
    let reply = server.get_native("c", &[("If-None-Match", &tag)]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!("new"));
    assert_eq!(etag(&reply), format!("\"{newer}\""));
}

#[test]
fn head_is_get_without_a_body() {
    let server = TestServer::start("");
    let version = written(
        &server.put_native("h", "?ttl=100", &json!({"x": [1, 2, 3]}), &[]),
        201,
        "h",
    );

    let reply = server.head_native("h", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(etag(&reply), format!("\"{version}\""));
    assert_eq!(reply.body, "", "HEAD has no body");
    let seconds: u64 = reply
        .header("X-Expires-In")
        .expect("X-Expires-In")
        .parse()
        .unwrap();
    assert!((99..=100).contains(&seconds), "{seconds}");

    let reply = server.head_native("missing", &[]);
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, "");
    assert_eq!(reply.header("ETag"), None);

    let reply = server.call("HEAD", "/kv/h", &[], None);
    assert_eq!(reply.status, 200, "HEAD on the PyRustKV route too");
    assert_eq!(reply.body, "");
}

#[test]
fn delete_then_absent() {
    let server = TestServer::start("");
    written(&server.put_native("d", "", &json!("doomed"), &[]), 201, "d");

    let reply = server.delete_native("d", &[]);
    assert_eq!(reply.status, 204);
    assert_eq!(reply.body, "");
    native_error(&server.get_native("d", &[]), 404, "key_not_found");
    native_error(&server.delete_native("d", &[]), 404, "key_not_found");
    assert_eq!(server.value("d"), None);
}

#[test]
fn delete_with_if_match() {
    let server = TestServer::start("");
    let version = written(
        &server.put_native("d", "", &json!("guarded"), &[]),
        201,
        "d",
    );
    let wrong = format!("\"{}\"", version + 1);

    let reply = server.delete_native("d", &[("If-Match", &wrong)]);
    native_error(&reply, 412, "precondition_failed");
    let reply = server.get_native("d", &[]);
    assert_eq!(reply.status, 200, "the key is still there");
    assert_eq!(reply.json(), json!("guarded"));
    assert_eq!(etag(&reply), format!("\"{version}\""));

    let reply = server.delete_native("d", &[("If-Match", &format!("\"{version}\""))]);
    assert_eq!(reply.status, 204);
    assert_eq!(server.get_native("d", &[]).status, 404);

    // If-Match on an absent key fails rather than answering 404.
    let reply = server.delete_native("d", &[("If-Match", "*")]);
    native_error(&reply, 412, "precondition_failed");
}

#[test]
fn versions_never_repeat_across_delete_and_recreate() {
    let server = TestServer::start("[store]\ncapacity = 2\n");
    let mut seen = Vec::new();
    for round in 0..5 {
        let version = written(&server.put_native("v", "", &json!(round), &[]), 201, "v");
        seen.push(version);
        seen.push(written(
            &server.put_native("v", "", &json!(round), &[]),
            200,
            "v",
        ));
        // Other keys write in between; the capacity of 2 evicts some of them.
        written(
            &server.put_native(&format!("other-{round}"), "", &json!(0), &[]),
            201,
            &format!("other-{round}"),
        );
        if round % 2 == 0 {
            assert_eq!(server.delete_native("v", &[]).status, 204);
        } else {
            // Evict `v` instead of deleting it.
            for filler in 0..2 {
                let key = format!("filler-{round}-{filler}");
                written(&server.put_native(&key, "", &json!(0), &[]), 201, &key);
            }
            assert_eq!(server.get_native("v", &[]).status, 404, "v was evicted");
        }
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "versions of v: {seen:?}"
    );
}

#[test]
fn health() {
    let server = TestServer::start("");
    let reply = server.call("GET", "/health", &[], None);
    assert_eq!(reply.status, 200);
    assert_json(&reply);
    assert_eq!(reply.json(), json!({"status": "ok"}));
}

/// Checks that every counter and gauge in the totals is the sum over `partitions`.
fn assert_totals_are_sums(stats: &Value) {
    let partitions = stats["partitions"].as_array().expect("partitions array");
    assert!(!partitions.is_empty());
    let fields = ["keys", "capacity", "memory", "max_memory"]
        .into_iter()
        .chain(STATS_COUNTERS);
    for field in fields {
        let total = stats[field]
            .as_u64()
            .unwrap_or_else(|| panic!("total {field}: {stats}"));
        let sum: u64 = partitions
            .iter()
            .map(|partition| {
                partition[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("partition {field}: {partition}"))
            })
            .sum();
        assert_eq!(total, sum, "{field}: {stats}");
    }
}

#[test]
fn stats_after_a_known_sequence() {
    let server = TestServer::start("[store]\ncapacity = 3\n");
    let stats = server.stats();
    assert_eq!(stats["keys"], 0);
    assert_eq!(stats["capacity"], 3);
    for counter in STATS_COUNTERS {
        assert_eq!(stats[counter], 0, "{counter}: {stats}");
    }

    // 4 inserts into a capacity of 3: `k1`, the least recently used, is evicted.
    for key in ["k1", "k2", "k3", "k4"] {
        written(&server.put_native(key, "", &json!(key), &[]), 201, key);
    }
    written(
        &server.put_native("k2", "", &json!("updated"), &[]),
        200,
        "k2",
    );
    assert_eq!(server.get_native("k2", &[]).status, 200);
    assert_eq!(server.get_native("k3", &[]).status, 200);
    assert_eq!(server.get_native("k1", &[]).status, 404);
    assert_eq!(server.delete_native("k4", &[]).status, 204);

    let stats = server.stats();
    let expected = [
        ("keys", 2),
        ("capacity", 3),
        ("hits", 2),
        ("misses", 1),
        ("inserts", 4),
        ("updates", 1),
        ("deletes", 1),
        ("evictions_capacity", 1),
        ("evictions_memory", 0),
        ("expirations", 0),
        ("expired_reads", 0),
        ("read_drops", 0),
    ];
    for (field, value) in expected {
        assert_eq!(stats[field], value, "{field}: {stats}");
    }
    assert!(
        stats["memory"].as_u64().is_some_and(|memory| memory > 0),
        "{stats}"
    );
    assert!(stats["max_memory"].as_u64().is_some(), "{stats}");
    assert_eq!(
        stats["partitions"].as_array().map(Vec::len),
        Some(1),
        "a small store has one partition"
    );
    assert_totals_are_sums(&stats);
}

#[test]
fn stats_totals_are_the_sum_of_partitions() {
    let server = TestServer::start("[store]\ncapacity = 4096\npartitions = 4\n");
    for index in 0..40 {
        let key = format!("key-{index}");
        written(&server.put_native(&key, "", &json!(index), &[]), 201, &key);
    }
    for index in 0..10 {
        written(
            &server.put_native(&format!("key-{index}"), "", &json!("again"), &[]),
            200,
            &format!("key-{index}"),
        );
    }
    for index in 0..60 {
        server.get_native(&format!("key-{index}"), &[]);
    }
    for index in 30..40 {
        assert_eq!(
            server.delete_native(&format!("key-{index}"), &[]).status,
            204
        );
    }

    let stats = server.stats();
    let partitions = stats["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 4);
    assert!(
        partitions
            .iter()
            .all(|p| STATS_COUNTERS.iter().all(|c| p[c].is_u64())),
        "{stats}"
    );
    let expected = [
        ("keys", 30),
        ("capacity", 4096),
        ("inserts", 40),
        ("updates", 10),
        ("hits", 40),
        ("misses", 20),
        ("deletes", 10),
    ];
    for (field, value) in expected {
        assert_eq!(stats[field], value, "{field}: {stats}");
    }
    assert_totals_are_sums(&stats);
}

#[test]
fn awkward_keys_on_native_routes() {
    let server = TestServer::start("");
    let keys = [
        "a/b",
        "dir/sub/leaf",
        "with space",
        "ключ-✓-é-\u{1F600}",
        "100%",
        "%41",
        "q?x=1&y=2#frag",
        "a+b",
        "trailing/",
        "\"quoted\"",
    ];
    for (index, key) in keys.iter().enumerate() {
        let value = json!({"index": index, "key": key});
        written(&server.put_native(key, "", &value, &[]), 201, key);
        let reply = server.get_native(key, &[]);
        assert_eq!(reply.status, 200, "{key:?}");
        assert_eq!(reply.json(), value, "{key:?}");
        assert_eq!(server.value(key), Some(value), "{key:?} via /kv/");
    }
    // Percent-decoding happens once: `%41` and `A` are different keys.
    assert_eq!(server.get_native("A", &[]).status, 404);

    // A literal '/' and `%2F` name the same key.
    let reply = server.call("PUT", "/v1/kv/x/y", &[], Some(b"\"slash\""));
    written(&reply, 201, "x/y");
    let reply = server.call("GET", "/v1/kv/x%2Fy", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!("slash"));
    let reply = server.call("PUT", "/v1/kv/x%2fy", &[], Some(b"\"encoded\""));
    written(&reply, 200, "x/y");
    assert_eq!(
        server.call("GET", "/kv/x/y", &[], None).json(),
        json!({"key": "x/y", "value": "encoded"})
    );
    assert_eq!(server.call("DELETE", "/v1/kv/x%2Fy", &[], None).status, 204);
    assert_eq!(server.call("GET", "/v1/kv/x/y", &[], None).status, 404);

    // Unicode sent as raw percent-encoded UTF-8 and as a JSON escape agree.
    let reply = server.call("PUT", "/v1/kv/caf%C3%A9", &[], Some(b"1"));
    written(&reply, 201, "café");
    let reply = server.insert(json!({"key": "caf\u{e9}", "value": 2}));
    assert_eq!(reply.status, 200);
    assert_eq!(
        server.call("GET", "/v1/kv/caf%C3%A9", &[], None).json(),
        json!(2)
    );
}

#[test]
fn compat_and_native_routes_share_data() {
    let server = TestServer::start_mocked("");

    // Native write, PyRustKV read.
    let version = written(
        &server.put_native("shared", "", &json!({"from": "native"}), &[]),
        201,
        "shared",
    );
    let reply = server.call("GET", "/kv/shared", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"key": "shared", "value": {"from": "native"}})
    );

    // PyRustKV write replaces it with a new version the native side sees.
    server.put("shared", json!([1, 2, 3]), None);
    let reply = server.get_native("shared", &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!([1, 2, 3]));
    let newer: u64 = etag(&reply).trim_matches('"').parse().unwrap();
    assert!(newer > version, "{newer} > {version}");
    assert_eq!(reply.header("X-Expires-In"), None);

    // A PyRustKV TTL shows up natively and expires on both sides.
    server.put("ttl", json!("brief"), Some(5.0));
    let reply = server.get_native("ttl", &[]);
    assert_eq!(reply.json(), json!("brief"));
    assert_eq!(reply.header("X-Expires-In"), Some("5"));
    server.advance(Duration::from_millis(2500));
    assert_eq!(
        server.get_native("ttl", &[]).header("X-Expires-In"),
        Some("3")
    );
    server.advance(Duration::from_millis(2500));
    assert_eq!(server.get_native("ttl", &[]).status, 404);
    assert_eq!(server.value("ttl"), None);

    // Deletes on either side are seen by the other.
    let reply = server.call("DELETE", "/kv/delete/shared", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(server.get_native("shared", &[]).status, 404);

    written(
        &server.put_native("other", "", &json!(7), &[]),
        201,
        "other",
    );
    assert_eq!(server.value("other"), Some(json!(7)));
    assert_eq!(server.delete_native("other", &[]).status, 204);
    assert_eq!(server.value("other"), None);

    server.put("third", json!(3), None);
    let reply = server.call("DELETE", "/kv/third", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(server.get_native("third", &[]).status, 404);

    // A PyRustKV insert creates: the next native PUT replaces (200).
    server.put("fresh", json!("a"), None);
    written(
        &server.put_native("fresh", "", &json!("b"), &[]),
        200,
        "fresh",
    );
}

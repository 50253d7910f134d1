//! The PyRustKV-compatible routes, tested as a PyRustKV client would use them.
//!
//! `PUT /kv/insert`, `GET /kv/{key}`, `DELETE /kv/delete/{key}` and `DELETE /kv/{key}`:
//! PyRustKV's README examples (curl and Python) verbatim in effect, every JSON type
//! as a value (a stored `null` included, which PyRustKV lost), keys PyRustKV could
//! not read back (with `/`, spaces, `%`, unicode), the route overlap
//! (`GET /kv/delete/x` reads the key `delete/x`), the TTL rules on a mock clock, and
//! the request media types a client may send.

mod common;

use std::time::Duration;

use common::{Reply, TestServer, encode};
use serde_json::{Value, json};

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn success() -> Value {
    json!({"status": "success"})
}

fn not_found() -> Value {
    json!({"detail": "Key not found"})
}

fn assert_success(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), success());
}

fn assert_not_found(reply: &Reply) {
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.json(), not_found());
}

fn assert_json_content_type(reply: &Reply) {
    let content_type = reply.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "Content-Type {content_type:?}"
    );
}

#[test]
fn readme_curl_examples() {
    let server = TestServer::start("");
    // curl -X PUT http://localhost:8000/kv/insert -H "Content-Type: application/json" -d '...'
    let body = br#"{"key": "user:123", "value": {"name": "Alice", "age": 30}, "ttl": 3600}"#;
    let reply = server.request("PUT", "/kv/insert", &[JSON], Some(body));
    assert_success(&reply);
    assert_json_content_type(&reply);

    // curl -X GET http://localhost:8000/kv/user:123
    let reply = server.get("/kv/user:123");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_json_content_type(&reply);
    assert_eq!(
        reply.json(),
        json!({"key": "user:123", "value": {"name": "Alice", "age": 30}})
    );

    // curl -X DELETE http://localhost:8000/kv/delete/user:123
    let reply = server.delete("/kv/delete/user:123");
    assert_success(&reply);
    assert_not_found(&server.get("/kv/user:123"));

    // curl -X GET http://localhost:8000/kv/nonexistent
    let reply = server.get("/kv/nonexistent");
    assert_not_found(&reply);
    assert_json_content_type(&reply);
}

#[test]
fn readme_python_example() {
    let server = TestServer::start("");
    // requests.put(f"{BASE_URL}/kv/insert", json={...})
    let reply = server.insert(json!({
        "key": "cache:session",
        "value": {"user_id": 42, "token": "abc123"},
        "ttl": 1800
    }));
    assert_success(&reply);
    // requests.get(f"{BASE_URL}/kv/cache:session").json()
    let reply = server.get("/kv/cache:session");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"key": "cache:session", "value": {"user_id": 42, "token": "abc123"}})
    );
    // requests.delete(f"{BASE_URL}/kv/delete/cache:session")
    assert_success(&server.delete("/kv/delete/cache:session"));
    assert_not_found(&server.get("/kv/cache:session"));
}

#[test]
fn stored_null_reads_back_as_null() {
    let server = TestServer::start("");
    assert_success(&server.insert(json!({"key": "nothing", "value": null})));
    let reply = server.get("/kv/nothing");
    assert_eq!(
        reply.status, 200,
        "a stored null is not a miss: {}",
        reply.body
    );
    assert_eq!(reply.json(), json!({"key": "nothing", "value": null}));
    // Distinguishable from a missing key.
    assert_not_found(&server.get("/kv/never-written"));
}

#[test]
fn every_json_type_round_trips() {
    let server = TestServer::start("");
    let values = [
        (
            "object",
            json!({"name": "Alice", "nested": {"list": [1, {"deep": null}]}}),
        ),
        ("empty-object", json!({})),
        ("array", json!([1, "two", 3.5, false, null, [], {"k": "v"}])),
        ("empty-array", json!([])),
        (
            "string",
            json!("unicode é ü 日本語 😀, escapes \" \\ / \n \r \t \u{0001} \u{0000} end"),
        ),
        ("empty-string", json!("")),
        ("integer", json!(42)),
        ("negative", json!(-17)),
        ("float", json!(3.25)),
        ("large", json!(9_007_199_254_740_993_u64)),
        ("exponent", json!(1.5e300)),
        ("true", json!(true)),
        ("false", json!(false)),
        ("null", json!(null)),
    ];
    for (key, value) in &values {
        assert_success(&server.insert(json!({"key": key, "value": value})));
    }
    for (key, value) in &values {
        let reply = server.get(&format!("/kv/{key}"));
        assert_eq!(reply.status, 200, "{key}: {}", reply.body);
        assert_eq!(reply.json(), json!({"key": key, "value": value}), "{key}");
    }
    // Sent as raw text, a value is served as the same JSON (escapes and all).
    let raw = br#"{"key": "raw", "value": {"s": "\u00e9\n\"q\"", "n": [1, 2.5, -1]}}"#;
    assert_success(&server.request("PUT", "/kv/insert", &[JSON], Some(raw)));
    assert_eq!(
        server.value("raw"),
        Some(json!({"s": "é\n\"q\"", "n": [1, 2.5, -1]}))
    );
}

#[test]
fn delete_on_key_route_also_works() {
    let server = TestServer::start("");
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    assert_success(&server.delete("/kv/a"));
    assert_not_found(&server.get("/kv/a"));
    assert_eq!(server.value("b"), Some(json!(2)));
}

#[test]
fn delete_of_missing_key_is_success() {
    let server = TestServer::start("");
    assert_success(&server.delete("/kv/delete/missing"));
    assert_success(&server.delete("/kv/missing"));
    let stats = server.stats();
    assert_eq!(stats["keys"], 0, "{stats}");
    assert_eq!(stats["deletes"], 0, "{stats}");
}

#[test]
fn awkward_keys_round_trip() {
    let server = TestServer::start("");
    let keys = [
        "with space",
        "100%",
        "%41",
        "50%20off",
        "a/b/c",
        "/leading",
        "trailing/",
        "ключ",
        "日本語キー",
        "emoji😀",
        "q?x=1&y=2",
        "hash#frag",
        "plus+sign",
        "quote\"'",
        "back\\slash",
        "tab\tkey",
    ];
    for (index, key) in keys.iter().enumerate() {
        server.put(key, json!({"index": index}), None);
    }
    for (index, key) in keys.iter().enumerate() {
        // `value` percent-encodes every byte but unreserved ones, and checks the key.
        assert_eq!(server.value(key), Some(json!({"index": index})), "{key:?}");
    }
    // Decoded exactly once: `%41` and `A` are different keys.
    assert_eq!(server.value("A"), None);
    let reply = server.get("/kv/%2541");
    assert_eq!(reply.json(), json!({"key": "%41", "value": {"index": 2}}));
    // A literal space in the path is not valid HTTP; `%20` is the space.
    let reply = server.get("/kv/with%20space");
    assert_eq!(reply.json()["key"], "with space");
    // Unicode sent as UTF-8 percent-encoded.
    let reply = server.get("/kv/%D0%BA%D0%BB%D1%8E%D1%87");
    assert_eq!(reply.json()["key"], "ключ");

    for key in &keys {
        assert_success(&server.delete(&format!("/kv/delete/{}", encode(key))));
        assert_eq!(server.value(key), None, "{key:?} survived its delete");
    }
    assert_eq!(server.stats()["keys"], 0);
}

#[test]
fn key_with_slash_reachable_raw_and_encoded() {
    let server = TestServer::start("");
    server.put("a/b", json!("slashed"), None);
    for path in ["/kv/a/b", "/kv/a%2Fb", "/kv/a%2fb"] {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"key": "a/b", "value": "slashed"}),
            "GET {path}"
        );
    }
    // Neither half is a key of its own.
    assert_not_found(&server.get("/kv/a"));
    assert_not_found(&server.get("/kv/b"));
    assert_success(&server.delete("/kv/delete/a/b"));
    assert_not_found(&server.get("/kv/a/b"));
    assert_not_found(&server.get("/kv/a%2Fb"));

    // Deletable through the encoded form and `DELETE /kv/{key}` too.
    server.put("a/b", json!(2), None);
    assert_success(&server.delete("/kv/delete/a%2Fb"));
    assert_not_found(&server.get("/kv/a/b"));
    server.put("a/b", json!(3), None);
    assert_success(&server.delete("/kv/a/b"));
    assert_not_found(&server.get("/kv/a/b"));
}

/// PyRustKV (Starlette) read a `%` that starts no valid escape literally, and so do
/// the compatible routes: `/kv/%zz` names the key `%zz`. (Native routes answer 400.)
#[test]
fn invalid_percent_escapes_are_read_literally() {
    let server = TestServer::start("");
    for (key, path) in [
        ("%zz", "/kv/%zz"),
        ("%2", "/kv/%2"),
        ("100%", "/kv/100%"),
        ("%", "/kv/%"),
        ("a%g0b", "/kv/a%g0b"),
    ] {
        server.put(key, json!(key), None);
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"key": key, "value": key}),
            "GET {path}"
        );
        assert_success(&server.delete(path));
        assert_eq!(server.value(key), None, "DELETE {path}");
        server.put(key, json!(1), None);
        assert_success(&server.delete(&format!("/kv/delete{}", &path[3..])));
        assert_eq!(server.value(key), None, "DELETE /kv/delete{}", &path[3..]);
    }
}

#[test]
fn get_under_delete_prefix_reads_key() {
    let server = TestServer::start("");
    server.put("delete/x", json!("under delete/"), None);
    server.put("x", json!("plain x"), None);
    let reply = server.get("/kv/delete/x");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"key": "delete/x", "value": "under delete/"})
    );
    // The key `delete` alone does not exist.
    assert_not_found(&server.get("/kv/delete"));
    // DELETE /kv/delete/x names the key `x`; the key `delete/x` needs the prefix twice.
    assert_success(&server.delete("/kv/delete/x"));
    assert_not_found(&server.get("/kv/x"));
    assert_eq!(server.value("delete/x"), Some(json!("under delete/")));
    assert_success(&server.delete("/kv/delete/delete/x"));
    assert_not_found(&server.get("/kv/delete/x"));
}

#[test]
fn overwrite_without_ttl_makes_key_permanent() {
    let server = TestServer::start_mocked("");
    server.put("omitted", json!("old"), Some(1.0));
    server.put("null", json!("old"), Some(1.0));
    assert_success(&server.insert(json!({"key": "omitted", "value": "new"})));
    assert_success(&server.insert(json!({"key": "null", "value": "new", "ttl": null})));
    server.advance(Duration::from_secs(3600));
    assert_eq!(server.value("omitted"), Some(json!("new")));
    assert_eq!(server.value("null"), Some(json!("new")));
}

#[test]
fn get_does_not_extend_ttl() {
    let server = TestServer::start_mocked("");
    server.put("session", json!("token"), Some(10.0));
    server.advance(Duration::from_secs(6));
    assert_eq!(server.value("session"), Some(json!("token")));
    assert_eq!(server.value("session"), Some(json!("token")));
    server.advance(Duration::from_secs(5));
    assert_eq!(server.value("session"), None, "a GET extended the TTL");
}

#[test]
fn miss_does_not_create_key() {
    let server = TestServer::start("");
    for _ in 0..3 {
        assert_not_found(&server.get("/kv/ghost"));
    }
    let stats = server.stats();
    assert_eq!(stats["keys"], 0, "{stats}");
    assert_eq!(stats["inserts"], 0, "{stats}");
    assert_eq!(stats["misses"], 3, "{stats}");
    server.put("real", json!(1), None);
    assert_eq!(server.stats()["keys"], 1);
    assert_not_found(&server.get("/kv/ghost"));
}

#[test]
fn request_without_content_type_is_json() {
    let server = TestServer::start("");
    let body = br#"{"key": "bare", "value": {"ok": true}}"#;
    let reply = server.request("PUT", "/kv/insert", &[], Some(body));
    assert_success(&reply);
    assert_eq!(server.value("bare"), Some(json!({"ok": true})));
}

#[test]
fn json_content_type_with_parameters_accepted() {
    let server = TestServer::start("");
    let cases = [
        ("charset", "application/json; charset=utf-8"),
        ("upper", "Application/JSON"),
        ("spaced", "application/json ; charset=UTF-8"),
    ];
    for (key, content_type) in cases {
        let body = serde_json::to_vec(&json!({"key": key, "value": content_type})).unwrap();
        let reply = server.request(
            "PUT",
            "/kv/insert",
            &[("Content-Type", content_type)],
            Some(&body),
        );
        assert_success(&reply);
        assert_eq!(
            server.value(key),
            Some(json!(content_type)),
            "{content_type}"
        );
    }
}

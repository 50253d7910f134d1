//! Black-box tests of bad input on both dialects: every malformed body, TTL, key,
//! size, media type, route, method, path encoding and precondition header gets a
//! clear JSON error with the right status, never a 5xx, and changes nothing.
//!
//! PyRustKV routes (`/kv/...`) answer `{"detail"}` (422 for invalid input), native
//! routes `{"error", "detail"}` (400). Each test writes a key first and checks at
//! the end that it is untouched and that `/v1/stats` did not move at all.
//!
//! `early_rejection_says_connection_close` is the regression test for a connection
//! closed without `Connection: close` after an early rejection.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use common::{Reply, TestServer};
use serde_json::{Value, json};

/// The limits of the small config, and the config itself.
const KEY_LIMIT: usize = 16;
const VALUE_LIMIT: usize = 64;
const BODY_LIMIT: usize = 1024;
const SMALL: &str =
    "[store]\nmax_key_bytes = 16\nmax_value_bytes = \"64B\"\n[server]\nmax_body = \"1KiB\"\n";

const KEPT: &str = "kept";

/// Requests that must never answer 5xx.
///
/// A request with a body is sent with `Connection: close`, so that a rejection that
/// closes the connection (see `early_rejection_says_connection_close`) never races
/// the pooled client's next request.
trait Checked {
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply;
}

impl Checked for TestServer {
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut all = headers.to_vec();
        if body.is_some() {
            all.push(("Connection", "close"));
        }
        let reply = self.request(method, path, &all, body);
        assert!(
            reply.status < 500,
            "{method} {path}: server error {} {}",
            reply.status,
            reply.body
        );
        reply
    }
}

/// A server with `kept` written beforehand, and the stats right after.
struct Fixture {
    server: TestServer,
    version: u64,
    before: Value,
}

impl Fixture {
    fn new(toml: &str) -> Fixture {
        let server = TestServer::start(toml);
        let reply = server.call(
            "PUT",
            &format!("/v1/kv/{KEPT}"),
            &[],
            Some(br#"{"original":true}"#),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let version = reply.json()["version"].as_u64().unwrap();
        let before = server.stats();
        Fixture {
            server,
            version,
            before,
        }
    }

    /// After all the bad requests: stats exactly as before (no write, not even a
    /// read reached the store), and `kept` still has its value and version.
    fn assert_unchanged(&self) {
        assert_eq!(
            self.server.stats(),
            self.before,
            "bad input changed the store"
        );
        assert_eq!(self.server.value(KEPT), Some(json!({"original": true})));
        let reply = self
            .server
            .call("GET", &format!("/v1/kv/{KEPT}"), &[], None);
        assert_eq!(
            reply.header("ETag"),
            Some(format!("\"{}\"", self.version).as_str())
        );
    }
}

fn assert_json(what: &str, reply: &Reply) -> Value {
    let content_type = reply.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: Content-Type {content_type:?}"
    );
    reply.json()
}

/// A PyRustKV-dialect error: `status` and exactly `{"detail": non-empty string}`.
fn compat_error(what: &str, reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let body = assert_json(what, reply);
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {body}"));
    assert_eq!(object.len(), 1, "{what}: only detail: {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {body}"
    );
}

/// A native-dialect error: `status` and `{"error": code, "detail": string}`.
fn native_error(what: &str, reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    let body = assert_json(what, reply);
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{what}: {body}"
    );
}

fn json_type() -> [(&'static str, &'static str); 1] {
    [("Content-Type", "application/json")]
}

#[test]
fn compat_insert_rejects_every_bad_body() {
    let fixture = Fixture::new("[store]\nmax_ttl = \"1h\"\n");
    let server = &fixture.server;
    let cases: &[(&str, &[u8])] = &[
        ("empty body", b""),
        ("not JSON", b"hello"),
        ("truncated JSON", br#"{"key":"kept","value":"#),
        ("unterminated string", br#"{"key":"kept","value":"abc}"#),
        ("trailing garbage", br#"{"key":"kept","value":1} x"#),
        ("JSON array", br#"["kept", 1]"#),
        ("JSON string", br#""kept""#),
        ("JSON number", b"42"),
        ("JSON null", b"null"),
        ("JSON true", b"true"),
        ("missing key", br#"{"value":1}"#),
        ("missing value", br#"{"key":"kept"}"#),
        ("empty object", b"{}"),
        ("key is a number", br#"{"key":1,"value":1}"#),
        ("key is null", br#"{"key":null,"value":1}"#),
        ("key is an object", br#"{"key":{"a":1},"value":1}"#),
        ("key is an array", br#"{"key":["kept"],"value":1}"#),
        ("empty key", br#"{"key":"","value":1}"#),
        ("key is a lone surrogate", br#"{"key":"\ud800","value":1}"#),
        ("key is invalid UTF-8", b"{\"key\":\"\xff\",\"value\":1}"),
        (
            "duplicate key field",
            br#"{"key":"kept","key":"other","value":1}"#,
        ),
        ("ttl 0", br#"{"key":"kept","value":2,"ttl":0}"#),
        ("ttl negative", br#"{"key":"kept","value":2,"ttl":-5}"#),
        ("ttl string", br#"{"key":"kept","value":2,"ttl":"5"}"#),
        ("ttl true", br#"{"key":"kept","value":2,"ttl":true}"#),
        ("ttl object", br#"{"key":"kept","value":2,"ttl":{}}"#),
        (
            "ttl above max_ttl",
            br#"{"key":"kept","value":2,"ttl":3601}"#,
        ),
        ("ttl 1e400", br#"{"key":"kept","value":2,"ttl":1e400}"#),
        ("ttl -1e400", br#"{"key":"kept","value":2,"ttl":-1e400}"#),
        ("new key, ttl 0", br#"{"key":"fresh","value":2,"ttl":0}"#),
    ];
    for (what, body) in cases {
        let reply = server.call("PUT", "/kv/insert", &json_type(), Some(body));
        compat_error(what, &reply, 422);
    }
    fixture.assert_unchanged();
    assert_eq!(server.value("fresh"), None);

    // The boundaries themselves are fine.
    server.put("fresh", json!(null), Some(3600.0));
    server.put("fresh", json!(1), Some(1e-9));
}

#[test]
fn native_put_rejects_every_bad_body_and_ttl() {
    let fixture = Fixture::new("[store]\nmax_ttl = \"1h\"\n");
    let server = &fixture.server;
    let cases: &[(&str, &str, &[u8], &str)] = &[
        ("invalid JSON", "", b"{nope", "invalid_body"),
        ("truncated JSON", "", br#"{"a":"#, "invalid_body"),
        ("empty body", "", b"", "invalid_body"),
        ("whitespace body", "", b" \n\t ", "invalid_body"),
        ("two values", "", b"1 2", "invalid_body"),
        ("bare word", "", b"undefined", "invalid_body"),
        ("ttl 0", "?ttl=0", b"2", "invalid_ttl"),
        ("ttl -1", "?ttl=-1", b"2", "invalid_ttl"),
        ("ttl abc", "?ttl=abc", b"2", "invalid_ttl"),
        ("ttl nan", "?ttl=nan", b"2", "invalid_ttl"),
        ("ttl NaN", "?ttl=NaN", b"2", "invalid_ttl"),
        ("ttl inf", "?ttl=inf", b"2", "invalid_ttl"),
        ("ttl infinity", "?ttl=infinity", b"2", "invalid_ttl"),
        ("ttl 1e400", "?ttl=1e400", b"2", "invalid_ttl"),
        ("ttl empty", "?ttl=", b"2", "invalid_ttl"),
        ("ttl above max_ttl", "?ttl=3601", b"2", "invalid_ttl"),
        ("ttl 0x10", "?ttl=0x10", b"2", "invalid_ttl"),
    ];
    for (what, query, body, code) in cases {
        let path = format!("/v1/kv/{KEPT}{query}");
        let reply = server.call("PUT", &path, &json_type(), Some(body));
        native_error(what, &reply, 400, code);
        let reply = server.call(
            "PUT",
            &format!("/v1/kv/fresh{query}"),
            &json_type(),
            Some(body),
        );
        native_error(what, &reply, 400, code);
    }
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        let reply = server.call(
            method,
            "/v1/kv/",
            &[],
            if method == "PUT" { Some(b"1") } else { None },
        );
        if method == "HEAD" {
            assert_eq!(reply.status, 400, "HEAD empty key");
        } else {
            native_error(&format!("{method} empty key"), &reply, 400, "invalid_key");
        }
    }
    fixture.assert_unchanged();
    assert_eq!(server.value("fresh"), None);

    let reply = server.call("PUT", "/v1/kv/fresh?ttl=3600", &json_type(), Some(b"1"));
    assert_eq!(
        reply.status, 201,
        "ttl = max_ttl is allowed: {}",
        reply.body
    );
}

/// Regression test: bytes that are not UTF-8 inside a JSON string (invalid, overlong,
/// surrogate or out-of-range encodings) were stored by native PUTs and served back as
/// bodies no JSON parser accepts. JSON text is UTF-8 (RFC 8259, 8.1).
#[test]
fn native_put_rejects_invalid_utf8_inside_strings() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    let cases: &[(&str, &[u8])] = &[
        ("invalid bytes", b"\"\xff\xfe\""),
        ("lone continuation byte", b"\"a\x80\""),
        ("truncated sequence", b"\"\xc3\""),
        ("overlong NUL", b"\"\xc0\x80\""),
        ("overlong three-byte", b"\"\xe0\x80\x80\""),
        ("high surrogate bytes", b"\"\xed\xa0\x80\""),
        ("low surrogate bytes", b"\"\xed\xbf\xbf\""),
        ("above U+10FFFF", b"\"\xf4\x90\x80\x80\""),
        ("in an object key", b"{\"\xff\":1}"),
        ("nested in an array", b"[1,{\"a\":\"ok\xed\xa0\x80\"}]"),
    ];
    for (what, body) in cases {
        let reply = server.call("PUT", "/v1/kv/bad", &json_type(), Some(body));
        native_error(what, &reply, 400, "invalid_body");
        // The compatible route already refused these; it must go on doing so.
        let mut insert = br#"{"key":"bad","value":"#.to_vec();
        insert.extend_from_slice(body);
        insert.push(b'}');
        let reply = server.call("PUT", "/kv/insert", &json_type(), Some(&insert));
        compat_error(what, &reply, 422);
    }
    fixture.assert_unchanged();
    let reply = server.call("GET", "/v1/kv/bad", &[], None);
    native_error("GET after", &reply, 404, "key_not_found");

    // An escaped lone surrogate is valid JSON text (only its meaning is doubtful):
    // accepted, and served back byte for byte.
    let escaped = br#""\ud800""#;
    let reply = server.call("PUT", "/v1/kv/escaped", &json_type(), Some(escaped));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = server.call("GET", "/v1/kv/escaped", &[], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_bytes(), escaped);
}

#[test]
fn small_limits_config_is_valid() {
    let config = rustkv::config::Config::parse(SMALL).expect("parses");
    config
        .validate()
        .expect("the small limits are accepted as asked");
    assert_eq!(config.store.max_key_bytes, KEY_LIMIT);
    assert_eq!(config.store.max_value_bytes.as_u64(), VALUE_LIMIT as u64);
    assert_eq!(config.server.max_body.as_u64(), BODY_LIMIT as u64);
}

#[test]
fn key_limit_on_both_dialects() {
    let fixture = Fixture::new(SMALL);
    let server = &fixture.server;
    let long = "k".repeat(KEY_LIMIT + 1);
    // 9 two-byte characters: 9 characters but 18 bytes.
    let long_unicode = "é".repeat(9);
    for key in [&long, &long_unicode] {
        let body = serde_json::to_vec(&json!({"key": key, "value": 1})).unwrap();
        let reply = server.call("PUT", "/kv/insert", &json_type(), Some(&body));
        compat_error(&format!("insert key {key}"), &reply, 413);
        let encoded = common::encode(key);
        let reply = server.call(
            "PUT",
            &format!("/v1/kv/{encoded}"),
            &json_type(),
            Some(b"1"),
        );
        native_error(&format!("PUT key {key}"), &reply, 413, "key_too_large");

        // An over-long key in a read or delete path is rejected the same way.
        compat_error(
            "GET /kv/",
            &server.call("GET", &format!("/kv/{encoded}"), &[], None),
            413,
        );
        compat_error(
            "DELETE /kv/",
            &server.call("DELETE", &format!("/kv/{encoded}"), &[], None),
            413,
        );
        let reply = server.call("DELETE", &format!("/kv/delete/{encoded}"), &[], None);
        compat_error("DELETE /kv/delete/", &reply, 413);
        let reply = server.call("GET", &format!("/v1/kv/{encoded}"), &[], None);
        native_error("GET /v1/kv/", &reply, 413, "key_too_large");
        let reply = server.call("DELETE", &format!("/v1/kv/{encoded}"), &[], None);
        native_error("DELETE /v1/kv/", &reply, 413, "key_too_large");
        assert_eq!(
            server
                .call("HEAD", &format!("/v1/kv/{encoded}"), &[], None)
                .status,
            413
        );
    }
    fixture.assert_unchanged();

    // Exactly at the limit, in bytes: both dialects accept.
    let at_limit = "k".repeat(KEY_LIMIT);
    assert_eq!(
        server
            .call("GET", &format!("/v1/kv/{at_limit}"), &[], None)
            .status,
        404
    );
    server.put(&at_limit, json!(1), None);
    assert_eq!(server.value(&at_limit), Some(json!(1)));
    let unicode = "é".repeat(8);
    let reply = server.call(
        "PUT",
        &format!("/v1/kv/{}", common::encode(&unicode)),
        &[],
        Some(b"2"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(server.value(&unicode), Some(json!(2)));
}

#[test]
fn value_limit_on_both_dialects() {
    let fixture = Fixture::new(SMALL);
    let server = &fixture.server;
    // JSON strings whose text, quotes included, is exactly 64 and 65 bytes.
    let fits = format!("\"{}\"", "v".repeat(VALUE_LIMIT - 2));
    let over = format!("\"{}\"", "v".repeat(VALUE_LIMIT - 1));
    assert_eq!((fits.len(), over.len()), (64, 65));
    let over_array = format!("[{}1]", "1,".repeat(31));
    assert_eq!(over_array.len(), 65);

    for value in [&over, &over_array] {
        let body = format!(r#"{{"key":"{KEPT}","value":{value}}}"#);
        let reply = server.call("PUT", "/kv/insert", &json_type(), Some(body.as_bytes()));
        compat_error("insert 65-byte value", &reply, 413);
        let reply = server.call(
            "PUT",
            &format!("/v1/kv/{KEPT}"),
            &json_type(),
            Some(value.as_bytes()),
        );
        native_error("PUT 65-byte value", &reply, 413, "value_too_large");
        let reply = server.call("PUT", "/v1/kv/fresh", &json_type(), Some(value.as_bytes()));
        native_error("PUT 65-byte value", &reply, 413, "value_too_large");
    }
    fixture.assert_unchanged();

    let body = format!(r#"{{"key":"compat","value":{fits}}}"#);
    let reply = server.call("PUT", "/kv/insert", &json_type(), Some(body.as_bytes()));
    assert_eq!(reply.status, 200, "64-byte value: {}", reply.body);
    assert_eq!(
        server.value("compat"),
        Some(serde_json::from_str::<Value>(&fits).unwrap())
    );
    // Whitespace around a native value is not part of it.
    let padded = format!("  {fits}\n");
    let reply = server.call(
        "PUT",
        "/v1/kv/native",
        &json_type(),
        Some(padded.as_bytes()),
    );
    assert_eq!(reply.status, 201, "64-byte value: {}", reply.body);
}

/// A PyRustKV insert body of exactly `size` bytes: a small valid object padded
/// with whitespace, so only the body limit can reject it.
fn padded_insert(key: &str, size: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"key":"{key}","value":"small""#).into_bytes();
    body.resize(size - 1, b' ');
    body.push(b'}');
    body
}

/// Sends `body` chunked (no Content-Length), outside the harness.
fn chunked(server: &TestServer, path: &str, body: &[u8]) -> (u16, String) {
    let result = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
        .put(&format!("{}{path}", server.base))
        .set("Content-Type", "application/json")
        .send(body);
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("PUT {path} chunked: transport error {error}"),
    };
    let status = response.status();
    assert!(status < 500, "PUT {path} chunked: {status}");
    (status, response.into_string().unwrap())
}

#[test]
fn body_limit_on_both_dialects() {
    let fixture = Fixture::new(SMALL);
    let server = &fixture.server;
    let over = padded_insert(KEPT, BODY_LIMIT + 1);
    let reply = server.call("PUT", "/kv/insert", &json_type(), Some(&over));
    compat_error("insert body of max_body + 1", &reply, 413);
    let native_over = padded_insert(KEPT, BODY_LIMIT + 1);
    let reply = server.call(
        "PUT",
        &format!("/v1/kv/{KEPT}"),
        &json_type(),
        Some(&native_over),
    );
    assert_eq!(reply.status, 413, "{}", reply.body);

    // Without Content-Length (chunked), the limit holds while reading.
    let (status, body) = chunked(server, "/kv/insert", &over);
    assert_eq!(status, 413, "{body}");
    let (status, body) = chunked(server, &format!("/v1/kv/{KEPT}"), &over);
    assert_eq!(status, 413, "{body}");

    // A declared Content-Length over the limit is refused before any body is sent.
    for path in ["/kv/insert", "/v1/kv/kept"] {
        let request = format!(
            "PUT {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: 1000000000\r\n\r\n"
        );
        let (status, head) = raw(server, request.as_bytes());
        assert_eq!(status, 413, "{path}: {head}");
    }
    fixture.assert_unchanged();

    // Exactly max_body is accepted, with Content-Length or chunked.
    let exact = padded_insert("exact", BODY_LIMIT);
    let reply = server.call("PUT", "/kv/insert", &json_type(), Some(&exact));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (status, body) = chunked(server, "/kv/insert", &padded_insert("chunky", BODY_LIMIT));
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.value("exact"), Some(json!("small")));
    assert_eq!(server.value("chunky"), Some(json!("small")));
}

#[test]
fn media_types() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    let insert = br#"{"key":"kept","value":"changed"}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
        "application/jsonx",
        "multipart/form-data; boundary=x",
    ] {
        let headers = [("Content-Type", content_type)];
        let reply = server.call("PUT", "/kv/insert", &headers, Some(insert));
        compat_error(&format!("insert as {content_type}"), &reply, 415);
        let reply = server.call("PUT", "/v1/kv/kept", &headers, Some(b"\"changed\""));
        native_error(
            &format!("PUT as {content_type}"),
            &reply,
            415,
            "unsupported_media_type",
        );
    }
    fixture.assert_unchanged();

    // No Content-Type is read as JSON; so are parameters and +json types.
    let reply = server.call("PUT", "/kv/insert", &[], Some(br#"{"key":"a","value":1}"#));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = server.call("PUT", "/v1/kv/b", &[], Some(b"2"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        let headers = [("Content-Type", content_type)];
        let reply = server.call(
            "PUT",
            "/kv/insert",
            &headers,
            Some(br#"{"key":"c","value":3}"#),
        );
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.body);
        let reply = server.call("PUT", "/v1/kv/d", &headers, Some(b"4"));
        assert!(
            matches!(reply.status, 200 | 201),
            "{content_type}: {}",
            reply.body
        );
    }
    assert_eq!(server.value("a"), Some(json!(1)));
    assert_eq!(server.value("b"), Some(json!(2)));
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    for (method, path) in [
        ("GET", "/nope"),
        ("GET", "/v1/nothing"),
        ("GET", "/v1"),
        ("GET", "/v1/kvx"),
        ("GET", "/"),
        ("POST", "/nope"),
        ("GET", "/kv"),
        ("GET", "/health/extra"),
        ("GET", "/v2/kv/kept"),
    ] {
        let reply = server.call(method, path, &[], None);
        native_error(&format!("{method} {path}"), &reply, 404, "not_found");
    }
    for (method, path) in [
        ("PATCH", "/v1/kv/kept"),
        ("POST", "/v1/kv/kept"),
        ("OPTIONS", "/v1/kv/kept"),
        ("POST", "/health"),
        ("PUT", "/health"),
        ("DELETE", "/health"),
        ("PUT", "/v1/stats"),
        ("POST", "/v1/stats"),
        ("DELETE", "/v1/stats"),
        ("PUT", "/v1/kv"),
        ("DELETE", "/v1/kv"),
        ("GET", "/v1/batch"),
        ("PUT", "/v1/txn"),
    ] {
        let body: Option<&[u8]> = (method != "OPTIONS").then_some(b"1");
        let reply = server.call(method, path, &json_type(), body);
        native_error(
            &format!("{method} {path}"),
            &reply,
            405,
            "method_not_allowed",
        );
    }
    for (method, path) in [
        ("POST", "/kv/insert"),
        ("PATCH", "/kv/insert"),
        ("POST", "/kv/kept"),
        ("PUT", "/kv/kept"),
        ("PUT", "/kv/delete/kept"),
    ] {
        let body = br#"{"key":"kept","value":"changed"}"#;
        let reply = server.call(method, path, &json_type(), Some(body));
        compat_error(&format!("{method} {path}"), &reply, 405);
    }
    let reply = server.call("GET", "/kv/", &[], None);
    compat_error("GET /kv/ (empty key)", &reply, 422);
    fixture.assert_unchanged();
    // A missing key on a real route is a PyRustKV 404, not a route 404.
    let reply = server.call("GET", "/kv/missing", &[], None);
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"detail": "Key not found"}));
}

#[test]
fn invalid_utf8_in_paths() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    for path in ["/kv/%FF", "/kv/%C3", "/kv/a%C3%28", "/kv/%ED%A0%80"] {
        compat_error(
            &format!("GET {path}"),
            &server.call("GET", path, &[], None),
            422,
        );
        compat_error(
            &format!("DELETE {path}"),
            &server.call("DELETE", path, &[], None),
            422,
        );
    }
    compat_error(
        "DELETE /kv/delete/%FF",
        &server.call("DELETE", "/kv/delete/%FF", &[], None),
        422,
    );
    for path in ["/v1/kv/%C3", "/v1/kv/%FF", "/v1/kv/ok%80"] {
        native_error(
            &format!("GET {path}"),
            &server.call("GET", path, &[], None),
            400,
            "invalid_key",
        );
        let reply = server.call("PUT", path, &json_type(), Some(b"1"));
        native_error(&format!("PUT {path}"), &reply, 400, "invalid_key");
        native_error(
            &format!("DELETE {path}"),
            &server.call("DELETE", path, &[], None),
            400,
            "invalid_key",
        );
        assert_eq!(
            server.call("HEAD", path, &[], None).status,
            400,
            "HEAD {path}"
        );
    }
    fixture.assert_unchanged();
}

/// Regression test: a `%` not followed by two hex digits was taken literally on the
/// native routes (`/v1/kv/%zz` named the key `%zz`); it is a malformed URI there.
#[test]
fn invalid_percent_escapes_in_native_keys() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    for path in [
        "/v1/kv/%",
        "/v1/kv/%zz",
        "/v1/kv/%2",
        "/v1/kv/a%",
        "/v1/kv/a%2",
        "/v1/kv/%g0",
        "/v1/kv/%0g",
        "/v1/kv/ok%41%4",
        "/v1/kv/%%41",
    ] {
        let code = "invalid_percent_escape";
        let reply = server.call("GET", path, &[], None);
        native_error(&format!("GET {path}"), &reply, 400, code);
        let reply = server.call("PUT", path, &json_type(), Some(b"1"));
        native_error(&format!("PUT {path}"), &reply, 400, code);
        let reply = server.call("DELETE", path, &[], None);
        native_error(&format!("DELETE {path}"), &reply, 400, code);
        let reply = server.call("HEAD", path, &[], None);
        assert_eq!(reply.status, 400, "HEAD {path}");
    }
    fixture.assert_unchanged();
    // Valid escapes, in either case, still decode exactly once.
    let reply = server.call("PUT", "/v1/kv/%2541%c3%A9", &json_type(), Some(b"1"));
    assert_eq!(reply.json()["key"], "%41é", "{}", reply.body);
}

#[test]
fn malformed_precondition_headers() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    let kept = format!("/v1/kv/{KEPT}");
    let current = format!("\"{}\"", fixture.version);
    for tag in ["3", "W/3", "\"3", "3\"", "\"3\", 4", "'3'"] {
        let reply = server.call("PUT", &kept, &[("If-Match", tag)], Some(b"\"changed\""));
        native_error(
            &format!("PUT If-Match {tag}"),
            &reply,
            400,
            "invalid_header",
        );
        let reply = server.call(
            "PUT",
            &kept,
            &[("If-None-Match", tag)],
            Some(b"\"changed\""),
        );
        native_error(
            &format!("PUT If-None-Match {tag}"),
            &reply,
            400,
            "invalid_header",
        );
        let reply = server.call("DELETE", &kept, &[("If-Match", tag)], None);
        native_error(
            &format!("DELETE If-Match {tag}"),
            &reply,
            400,
            "invalid_header",
        );
        let reply = server.call("GET", &kept, &[("If-None-Match", tag)], None);
        native_error(
            &format!("GET If-None-Match {tag}"),
            &reply,
            400,
            "invalid_header",
        );
    }
    // A malformed tag fails the request even next to the right one.
    let mixed = format!("{current}, 3");
    let reply = server.call("PUT", &kept, &[("If-Match", &mixed)], Some(b"\"changed\""));
    native_error("PUT If-Match mixed", &reply, 400, "invalid_header");
    let reply = server.call("DELETE", &kept, &[("If-Match", &mixed)], None);
    native_error("DELETE If-Match mixed", &reply, 400, "invalid_header");
    // Non-ASCII bytes: inside the quotes they are obs-text, which RFC 9110 allows in
    // an entity tag (one that is none of our versions, so the precondition fails);
    // outside them they are malformed.
    for (tag, expected) in [("\"\u{e9}\"", 412), ("\u{e9}", 400)] {
        let request = format!(
            "PUT {kept} HTTP/1.1\r\nHost: test\r\nIf-Match: {tag}\r\nContent-Length: 1\r\n\r\n1"
        );
        let (status, head) = raw(server, request.as_bytes());
        assert_eq!(status, expected, "If-Match: {tag}: {head}");
    }
    fixture.assert_unchanged();
}

/// Sends raw bytes on a fresh connection and answers the status and the response
/// head; fails on a 5xx or if no complete response head arrives within 5 s.
fn raw(server: &TestServer, request: &[u8]) -> (u16, String) {
    let address = server.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !seen.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => seen.extend_from_slice(&buffer[..read]),
            Err(error) => panic!(
                "no reply ({error}); got {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    assert!(status < 500, "server error: {head}");
    (status, head)
}

#[test]
fn raw_requests_never_fail_the_server() {
    let fixture = Fixture::new(SMALL);
    let server = &fixture.server;
    let requests: &[&[u8]] = &[
        b"GET /kv/\xff\xfe HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /v1/kv/\xc3 HTTP/1.1\r\nHost: test\r\n\r\n",
        b"PUT /v1/kv/\xff HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n1",
        b"PUT /v1/kv/kept HTTP/1.1\r\nHost: test\r\nContent-Type: \xff\xfe\r\nContent-Length: 1\r\n\r\n1",
        b"PUT /v1/kv/kept HTTP/1.1\r\nHost: test\r\nContent-Length: abc\r\n\r\n1",
        b"PUT /kv/insert HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
        b"PUT /kv/insert HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PUT /v1/kv/kept?ttl=%FF%FE HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n1",
        b"GET /v1/kv/kept HTTP/1.1\r\nHost: test\r\nIf-None-Match: \xff\r\n\r\n",
    ];
    for request in requests {
        let (status, head) = raw(server, request);
        assert!(
            (400..500).contains(&status),
            "{:?}: {head}",
            String::from_utf8_lossy(request)
        );
    }
    // A TTL that only decodes lossily is still a bad TTL, not a 5xx.
    let reply = server.call("PUT", "/v1/kv/kept?ttl=%FF", &json_type(), Some(b"1"));
    native_error("ttl %FF", &reply, 400, "invalid_ttl");
    fixture.assert_unchanged();
}

#[test]
fn deeply_nested_json_is_answered_not_crashed() {
    let fixture = Fixture::new("");
    let server = &fixture.server;
    let depth = 100_000;
    let open = "[".repeat(depth);
    let closed = format!("{open}{}", "]".repeat(depth));

    // Unclosed: invalid on both dialects, however deep.
    let reply = server.call("PUT", "/v1/kv/deep", &json_type(), Some(open.as_bytes()));
    native_error("native unclosed nesting", &reply, 400, "invalid_body");
    let body = format!(r#"{{"key":"deep","value":{open}}}"#);
    let reply = server.call("PUT", "/kv/insert", &json_type(), Some(body.as_bytes()));
    compat_error("compat unclosed nesting", &reply, 422);
    fixture.assert_unchanged();

    // Closed: valid JSON; either stored as sent or refused, never a crash.
    let reply = server.call("PUT", "/v1/kv/deep", &json_type(), Some(closed.as_bytes()));
    if reply.status < 300 {
        let stored = server.call("GET", "/v1/kv/deep", &[], None);
        assert_eq!(stored.body, closed, "stored as sent");
    } else {
        native_error("native deep nesting", &reply, 400, "invalid_body");
    }
    let body = format!(r#"{{"key":"deeper","value":{closed}}}"#);
    let reply = server.call("PUT", "/kv/insert", &json_type(), Some(body.as_bytes()));
    if reply.status < 300 {
        let stored = server.call("GET", "/v1/kv/deeper", &[], None);
        assert_eq!(stored.body, closed, "stored as sent");
    } else {
        compat_error("compat deep nesting", &reply, 422);
    }
}

/// Reads one response (head and `Content-Length` body) from `stream`.
fn read_response(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) => panic!("connection closed mid-response: {text:?}"),
            Ok(read) => seen.extend_from_slice(&buffer[..read]),
            Err(error) => panic!("no response ({error}): {text:?}"),
        }
    }
}

/// Regression test for a bug found by this suite: a request rejected before its
/// body was read (bad `?ttl`, bad `If-Match`, wrong method, 415, 413) got its 4xx
/// and then the server closed the connection without `Connection: close`, so a
/// keep-alive client's next request on it failed. Now handlers read the body
/// before validating the rest, and errors that leave a body unread say
/// `Connection: close`. Either way the client must not be surprised.
#[test]
fn early_rejection_says_connection_close() {
    let server = TestServer::start("");
    let address = server.base.strip_prefix("http://").unwrap();
    // Each with its one-byte body ("2"), sent with the head as small requests are.
    let heads = [
        "PUT /v1/kv/k?ttl=nan HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n2",
        "PUT /v1/kv/k HTTP/1.1\r\nHost: test\r\nIf-Match: 3\r\nContent-Length: 1\r\n\r\n2",
        "PUT /v1/kv/k HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n2",
        "POST /health HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n2",
        "PUT /kv/k HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\n\r\n2",
        // Over max_body, head only: only `Connection: close` can make this one right.
        "PUT /kv/insert HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999\r\n\r\n",
    ];
    let mut failures = Vec::new();
    for head in heads {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let first = read_response(&mut stream);
        let status: u16 = first[9..12].parse().unwrap();
        assert!((400..500).contains(&status), "{head:?}: {first}");
        let says_close = first
            .lines()
            .any(|line| line.eq_ignore_ascii_case("connection: close"));
        if says_close {
            continue;
        }
        // No `Connection: close`: the connection must still serve the next request.
        let next = "GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
        let _ = stream.write_all(next.as_bytes());
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest);
        if !rest.starts_with("HTTP/1.1 200") {
            failures.push(format!(
                "{head:?} answered {status} without Connection: close, then the \
                 connection closed (next request got {rest:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

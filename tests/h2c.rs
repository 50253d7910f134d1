//! HTTP/2 in clear text on the plain port (h2c with prior knowledge, as `oha
//! --http2` and h2load speak it), beside HTTP/1.1 on the same port: both route
//! families, auth, limits and metrics as over HTTP/1.1 (every reply checked
//! against the OpenAPI contract), and connections that open with junk, or with
//! nothing, are closed.

#[path = "tls/client.rs"]
#[allow(dead_code)]
mod client;
mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use client::Client;
use common::TestServer;
use serde_json::json;

#[test]
fn both_route_families_round_trip_over_h2c_and_http1_on_one_port() {
    let server = TestServer::start("");
    let h2c = Client::h2c(server.addr);
    let json = [("Content-Type", "application/json")];
    let put = h2c.request("PUT", "/v1/kv/native", &json, Some(br#"{"n":1}"#));
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(h2c.get("/v1/kv/native").json(), json!({"n": 1}));
    assert_eq!(
        server.get("/v1/kv/native").json(),
        json!({"n": 1}),
        "HTTP/1.1"
    );
    assert_eq!(
        h2c.request("DELETE", "/v1/kv/native", &[], None).status,
        204
    );
    assert_eq!(server.get("/v1/kv/native").status, 404);

    let body = serde_json::to_vec(&json!({"key": "compat", "value": [1, 2]})).unwrap();
    let insert = h2c.request("PUT", "/kv/insert", &json, Some(&body));
    assert_eq!(insert.json(), json!({"status": "success"}));
    assert_eq!(server.value("compat"), Some(json!([1, 2])), "HTTP/1.1");
    let get = h2c.get("/kv/compat");
    assert_eq!(get.json(), json!({"key": "compat", "value": [1, 2]}));
    assert_eq!(
        h2c.request("DELETE", "/kv/delete/compat", &[], None).status,
        200
    );
    assert_eq!(h2c.get("/kv/compat").status, 404);
}

#[test]
fn auth_limits_and_metrics_hold_over_h2c() {
    let toml = "[auth]\ntoken = \"s3cret\"\n[store]\nmax_value_bytes = \"64B\"\n";
    let server = TestServer::start(toml);
    let h2c = Client::h2c(server.addr);
    assert_eq!(h2c.get("/v1/kv/k").status, 401);
    let token = ("Authorization", "Bearer s3cret");
    assert_eq!(h2c.request("GET", "/v1/kv/k", &[token], None).status, 404);
    let big = serde_json::to_vec(&"x".repeat(100)).unwrap();
    let headers = [token, ("Content-Type", "application/json")];
    let reply = h2c.request("PUT", "/v1/kv/big", &headers, Some(&big));
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.json()["error"], "value_too_large");
    let metrics = h2c.request("GET", "/metrics", &[token], None);
    let line = metrics
        .body
        .lines()
        .find(|line| {
            line.starts_with("rustkv_http_requests_total{class=\"4xx\",route=\"native_get\"}")
        })
        .unwrap_or_else(|| panic!("no native_get 4xx count in:\n{}", metrics.body));
    assert!(line.ends_with(" 2"), "the 401 and the 404: {line}");
}

/// Reads until the server closes; fails the test if it takes longer than `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return all,
            Ok(count) => all.extend_from_slice(&chunk[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(error) => panic!("not closed after {:?}: {error}", started.elapsed()),
        }
    }
}

#[test]
fn a_broken_preface_is_closed_and_a_request_line_starting_pri_is_refused() {
    // The HTTP/1 connection below stays open for keep_alive after its 405: a
    // short one, so that waiting for the close never races the 5 s limit.
    let server = TestServer::start("[server]\nkeep_alive = \"300ms\"\n");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        .unwrap();
    closed_within(&mut stream, Duration::from_secs(5));
    // Not the preface: HTTP/1, where PRI is no method this server knows.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"PRI /v1/kv/k HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(closed_within(&mut stream, Duration::from_secs(5))).unwrap();
    assert!(reply.starts_with("HTTP/1.1 4"), "{reply}");
    assert_eq!(server.get("/health").status, 200, "the server is fine");
}

#[test]
fn a_connection_that_never_speaks_is_closed_after_its_deadline() {
    // Before its first byte a connection waits the longer of the two.
    let config = "[server]\nkeep_alive = \"300ms\"\nclient_request_timeout = \"300ms\"\n";
    let server = TestServer::start(config);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let started = Instant::now();
    let reply = closed_within(&mut stream, Duration::from_secs(5));
    assert!(reply.is_empty(), "{reply:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

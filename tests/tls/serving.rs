//! Over HTTPS, HTTP/1.1 and HTTP/2 alike: both route families, auth, the limits,
//! metrics and `/docs` behave as on plain HTTP (every reply also passes the
//! OpenAPI contract check), and the HTTP/1 framing rules still hold under TLS.

use std::io::Write;

use serde_json::{Value, json};

use crate::{
    Fixture,
    client::{self, Protocol, read_to_close},
};

#[test]
fn both_route_families_round_trip_over_both_protocols() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    for protocol in Protocol::BOTH {
        let client = fixture.client(server.addr, protocol);
        let json = [("Content-Type", "application/json")];
        let key = format!("native-{protocol:?}");
        let put = client.request("PUT", &format!("/v1/kv/{key}"), &json, Some(br#"{"n":1}"#));
        assert_eq!(put.status, 201, "{}", put.body);
        let get = client.get(&format!("/v1/kv/{key}"));
        assert_eq!((get.status, get.json()), (200, json!({"n": 1})));
        let delete = client.request("DELETE", &format!("/v1/kv/{key}"), &[], None);
        assert_eq!(delete.status, 204);
        assert_eq!(client.get(&format!("/v1/kv/{key}")).status, 404);

        let key = format!("compat-{protocol:?}");
        let body = serde_json::to_vec(&json!({"key": key, "value": [1, 2]})).unwrap();
        let insert = client.request("PUT", "/kv/insert", &json, Some(&body));
        assert_eq!(
            (insert.status, insert.json()),
            (200, json!({"status": "success"}))
        );
        let get = client.get(&format!("/kv/{key}"));
        assert_eq!(get.json(), json!({"key": key, "value": [1, 2]}));
        let delete = client.request("DELETE", &format!("/kv/delete/{key}"), &[], None);
        assert_eq!(delete.status, 200, "{}", delete.body);
        assert_eq!(client.get(&format!("/kv/{key}")).status, 404);
    }
}

#[test]
fn bearer_token_is_required_over_both_protocols() {
    let fixture = Fixture::new();
    let server = fixture.start("[auth]\ntoken = \"s3cret\"\n", None);
    for protocol in Protocol::BOTH {
        let client = fixture.client(server.addr, protocol);
        let refused = client.get("/v1/kv/k");
        assert_eq!(refused.status, 401, "{protocol:?}: {}", refused.body);
        let wrong = client.request("GET", "/v1/kv/k", &[("Authorization", "Bearer nope")], None);
        assert_eq!(wrong.status, 401);
        let allowed = client.request(
            "GET",
            "/v1/kv/k",
            &[("Authorization", "Bearer s3cret")],
            None,
        );
        assert_eq!(
            allowed.status, 404,
            "{protocol:?}: past auth, the key is absent"
        );
        assert_eq!(client.get("/health").status, 200, "/health needs no token");
    }
}

#[test]
fn limits_answer_in_json_over_both_protocols() {
    let fixture = Fixture::new();
    let toml = "[server]\nmax_headers = 8\n[store]\nmax_value_bytes = \"64B\"\n";
    let server = fixture.start(toml, None);
    for protocol in Protocol::BOTH {
        let client = fixture.client(server.addr, protocol);
        let big = serde_json::to_vec(&"x".repeat(100)).unwrap();
        let json = [("Content-Type", "application/json")];
        let reply = client.request("PUT", "/v1/kv/big", &json, Some(&big));
        assert_eq!(reply.status, 413, "{protocol:?}: {}", reply.body);
        assert_eq!(reply.json()["error"], "value_too_large");
        let names: Vec<String> = (0..10).map(|index| format!("x-h{index}")).collect();
        let headers: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "v")).collect();
        let reply = client.request("GET", "/v1/kv/k", &headers, None);
        assert_eq!(reply.status, 431, "{protocol:?}: {}", reply.body);
        assert_eq!(reply.json()["error"], "headers_too_large");
    }
}

#[test]
fn metrics_count_requests_over_both_protocols() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    for protocol in Protocol::BOTH {
        let client = fixture.client(server.addr, protocol);
        for _ in 0..3 {
            assert_eq!(client.get("/v1/kv/absent").status, 404);
        }
    }
    let metrics = fixture.client(server.addr, Protocol::Http2).get("/metrics");
    assert_eq!(metrics.status, 200);
    let line = metrics
        .body
        .lines()
        .find(|line| {
            line.starts_with("rustkv_http_requests_total{class=\"4xx\",route=\"native_get\"}")
        })
        .unwrap_or_else(|| panic!("no native_get 4xx count in:\n{}", metrics.body));
    assert!(
        line.ends_with(" 6"),
        "3 over HTTP/1.1 and 3 over HTTP/2: {line}"
    );
}

#[test]
fn docs_are_served_over_https() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    for protocol in Protocol::BOTH {
        let client = fixture.client(server.addr, protocol);
        let page = client.get("/docs/");
        assert_eq!(page.status, 200, "{protocol:?}");
        assert!(
            page.body.contains("swagger"),
            "{}",
            &page.body[..200.min(page.body.len())]
        );
        let spec: Value = serde_json::from_str(&client.get("/openapi.json").body).unwrap();
        assert!(spec["paths"]["/v1/kv/{key}"].is_object());
    }
}

/// The framing tracker sits above TLS: an ambiguous body is refused with its
/// JSON 400 as on plain HTTP, and nothing smuggled after it runs.
#[test]
fn http1_framing_rules_hold_under_tls() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    let config = client::config(&fixture.ca.pem, None, Protocol::Http1);
    let mut stream = client::handshake(server.addr, config).unwrap();
    // Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1): the body's end is ambiguous.
    let smuggled = "PUT /v1/kv/smuggled HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                    Content-Length: 1\r\n\r\n1";
    let smuggling = format!(
        "PUT /v1/kv/front HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
    );
    stream.write_all(smuggling.as_bytes()).unwrap();
    let reply = String::from_utf8(read_to_close(&mut stream).unwrap()).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
    assert!(reply.contains("ambiguous_framing"), "{reply}");
    let client = fixture.client(server.addr, Protocol::Http1);
    assert_eq!(client.get("/v1/kv/smuggled").status, 404);
    assert_eq!(client.get("/v1/kv/front").status, 404);
}

/// The head and body deadlines hold under TLS, and their 408 reaches the client
/// through it: a stalled head's when the stream ends, a stalled body's as the
/// connection is dropped (`Transport::try_write`, rustls's records pushed out
/// without waiting).
#[test]
fn stalled_heads_and_bodies_get_408_over_tls() {
    let fixture = Fixture::new();
    let toml = "[server]\nclient_request_timeout = \"300ms\"\nclient_body_timeout = \"300ms\"\n";
    let server = fixture.start(toml, None);
    let stalled_body = "PUT /v1/kv/slow HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                        Content-Length: 10\r\n\r\n12";
    for (partial, says) in [
        (
            "GET /health HTTP/1.1\r\nHost:",
            "request head not received within 300ms",
        ),
        (stalled_body, "request body stalled"),
    ] {
        let config = client::config(&fixture.ca.pem, None, Protocol::Http1);
        let mut stream = client::handshake(server.addr, config).unwrap();
        stream.write_all(partial.as_bytes()).unwrap();
        let reply = String::from_utf8(read_to_close(&mut stream).unwrap()).unwrap();
        assert!(reply.starts_with("HTTP/1.1 408"), "{partial:?}: {reply:?}");
        assert!(reply.contains(says), "{reply}");
    }
    let client = fixture.client(server.addr, Protocol::Http1);
    assert_eq!(
        client.get("/v1/kv/slow").status,
        404,
        "nothing truncated was stored"
    );
}

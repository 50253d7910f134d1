//! Operating RustKV: `/metrics` after a known sequence of operations (exact counter
//! values, and every line in the Prometheus text format), bearer-token access control,
//! and the limits on slow clients.

mod common;

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::TestServer;
use serde_json::json;

/// Parses the Prometheus text exposition format strictly enough to fail on a
/// malformed line; answers `series -> value` (series = name plus its label block).
/// Also checks the families: every series follows its `# TYPE` line, and all the
/// series of one name carry the same label names.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut series = HashMap::new();
    let mut typed: Vec<String> = Vec::new();
    let mut label_sets: HashMap<String, Vec<String>> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap();
            assert!(
                ["HELP", "TYPE"].contains(&kind),
                "line {number}: bad comment {line:?}"
            );
            if kind == "TYPE" {
                let parts: Vec<&str> = comment.split(' ').collect();
                assert_eq!(parts.len(), 3, "line {number}: {line:?}");
                let types = ["counter", "gauge", "histogram", "summary", "untyped"];
                assert!(types.contains(&parts[2]), "line {number}: {line:?}");
                typed.push(parts[1].to_owned());
            }
            continue;
        }
        let (name_and_labels, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("line {number}: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("line {number}: bad value in {line:?}"));
        let name_end = name_and_labels.find('{').unwrap_or(name_and_labels.len());
        let name = &name_and_labels[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "line {number}: bad metric name in {line:?}"
        );
        let family = typed
            .last()
            .unwrap_or_else(|| panic!("line {number}: no # TYPE before {line:?}"));
        let suffix = name.strip_prefix(family.as_str());
        assert!(
            matches!(suffix, Some("" | "_bucket" | "_sum" | "_count")),
            "line {number}: {name} outside its family {family}"
        );
        let labels = &name_and_labels[name_end..];
        let mut names = Vec::new();
        if !labels.is_empty() {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "line {number}: {line:?}"
            );
            for pair in labels[1..labels.len() - 1]
                .split(',')
                .filter(|pair| !pair.is_empty())
            {
                let (label, quoted) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("line {number}: {line:?}"));
                assert!(
                    label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "line {number}: {line:?}"
                );
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "line {number}: {line:?}"
                );
                names.push(label.to_owned());
            }
        }
        names.sort();
        let first = label_sets.entry(name.to_owned()).or_insert(names.clone());
        assert_eq!(*first, names, "line {number}: {name} label names differ");
        assert!(
            series.insert(name_and_labels.to_owned(), value).is_none(),
            "duplicate series {name_and_labels}"
        );
    }
    series
}

#[test]
fn metrics_count_a_known_sequence_exactly() {
    let server = TestServer::start("[store]\ncapacity = 2\n");
    server.put("a", json!(1), None);
    server.put("b", json!(2), None);
    assert_eq!(server.value("a"), Some(json!(1))); // hit
    assert_eq!(server.value("x"), None); // miss, 404
    server.put("c", json!(3), None); // evicts b
    server.put("a", json!(4), Some(60.0)); // update
    assert_eq!(server.delete("/kv/delete/a").status, 200);
    assert_eq!(
        server.request("PUT", "/v1/kv/n", &[], Some(b"true")).status,
        201
    );

    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let series = parse_exposition(&reply.body);
    let value = |name: &str| {
        series
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no {name} in\n{}", reply.body))
    };
    let expected = [
        (r#"rustkv_store_hits_total{partition="0"}"#, 1.0),
        (r#"rustkv_store_misses_total{partition="0"}"#, 1.0),
        (r#"rustkv_store_inserts_total{partition="0"}"#, 4.0),
        (r#"rustkv_store_updates_total{partition="0"}"#, 1.0),
        (r#"rustkv_store_deletes_total{partition="0"}"#, 1.0),
        (
            r#"rustkv_store_evictions_total{cause="capacity",partition="0"}"#,
            1.0,
        ),
        (
            r#"rustkv_store_evictions_total{cause="memory",partition="0"}"#,
            0.0,
        ),
        (
            r#"rustkv_store_expirations_total{kind="active",partition="0"}"#,
            0.0,
        ),
        (r#"rustkv_store_keys{partition="0"}"#, 2.0),
        (r#"rustkv_store_capacity{partition="0"}"#, 2.0),
        (
            r#"rustkv_http_requests_total{class="2xx",route="compat_insert"}"#,
            4.0,
        ),
        (
            r#"rustkv_http_requests_total{class="2xx",route="compat_get"}"#,
            1.0,
        ),
        (
            r#"rustkv_http_requests_total{class="4xx",route="compat_get"}"#,
            1.0,
        ),
        (
            r#"rustkv_http_requests_total{class="2xx",route="compat_delete"}"#,
            1.0,
        ),
        (
            r#"rustkv_http_requests_total{class="2xx",route="native_put"}"#,
            1.0,
        ),
        (
            r#"rustkv_http_request_duration_seconds_count{route="compat_insert"}"#,
            4.0,
        ),
        (r#"rustkv_store_actor_round_trip_seconds_count"#, 6.0),
    ];
    for (name, expected) in expected {
        assert_eq!(value(name), expected, "{name}");
    }
    assert!(value(r#"rustkv_store_memory_bytes{partition="0"}"#) > 0.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_open_fds") > 0.0);
}

/// Regression test: a 405 on `PUT /kv/x` was counted under the `compat_get` route
/// (and any other wrong method on a key route under its GET label).
#[test]
fn wrong_methods_count_under_other() {
    let server = TestServer::start("");
    for (method, path) in [
        ("PUT", "/kv/x"),
        ("POST", "/kv/insert"),
        ("PATCH", "/kv/delete/x"),
        ("POST", "/v1/kv/x"),
    ] {
        let reply = server.request(method, path, &[], Some(b"1"));
        assert_eq!(reply.status, 405, "{method} {path}");
    }
    let reply = server.get("/metrics");
    let series = parse_exposition(&reply.body);
    let requests = |route: &str, class: &str| {
        let name = format!(r#"rustkv_http_requests_total{{class="{class}",route="{route}"}}"#);
        series.get(&name).copied().unwrap_or_default()
    };
    assert_eq!(requests("other", "4xx"), 4.0, "{}", reply.body);
    for route in [
        "compat_insert",
        "compat_get",
        "compat_delete",
        "native_get",
        "native_put",
        "native_delete",
    ] {
        assert_eq!(requests(route, "4xx"), 0.0, "{route}");
    }
}

#[test]
fn exposition_parser_rejects_malformed_lines() {
    // Each line after a well-formed `# TYPE`, so it is the line that is refused.
    for bad in [
        "metric",
        "1metric 1",
        "metric{a=b} 1",
        "metric one",
        "# NOTE x",
        "metric{a=\"1\" 2",
        "other 1",
        "metric_total 1",
        "metric{a=\"1\"} 1\nmetric{b=\"1\"} 1",
        "metric{a=\"1\"} 1\nmetric 1",
    ] {
        let text = format!("# TYPE metric counter\n{bad}");
        let result = std::panic::catch_unwind(|| parse_exposition(&text));
        assert!(result.is_err(), "accepted {bad:?}");
    }
    assert!(std::panic::catch_unwind(|| parse_exposition("metric 1")).is_err());
    let good = "# TYPE metric histogram\nmetric_bucket{le=\"1\"} 1\nmetric_sum 1\nmetric_count 1";
    assert_eq!(parse_exposition(good).len(), 3);
}

#[test]
fn token_guards_every_route_but_health() {
    let server = TestServer::start("[auth]\ntoken = \"s3cret-token\"\n");
    assert_eq!(server.get("/health").status, 200);
    for (method, path) in [
        ("GET", "/kv/a"),
        ("GET", "/v1/kv/a"),
        ("GET", "/v1/stats"),
        ("GET", "/metrics"),
        ("PUT", "/kv/insert"),
        ("POST", "/v1/batch"),
        ("POST", "/v1/txn"),
        ("GET", "/v1/kv"),
    ] {
        let reply = server.request(method, path, &[], Some(b"{}"));
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="rustkv""#)
        );
        let expected = if path.starts_with("/kv/") {
            json!({"detail": "missing or wrong bearer token"})
        } else {
            json!({"error": "unauthorized", "detail": "missing or wrong bearer token"})
        };
        assert_eq!(
            reply.json(),
            expected,
            "{method} {path}: the family's error shape"
        );
        let wrong = server.request(
            method,
            path,
            &[("Authorization", "Bearer s3cret-tokeN")],
            None,
        );
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
    }
    let bearer = [("Authorization", "Bearer s3cret-token")];
    let body = br#"{"key":"a","value":1}"#;
    let reply = server.request(
        "PUT",
        "/kv/insert",
        &[bearer[0], ("Content-Type", "application/json")],
        Some(body),
    );
    assert_eq!(reply.status, 200);
    let reply = server.request("GET", "/kv/a", &bearer, None);
    assert_eq!(
        (reply.status, reply.json()["value"].clone()),
        (200, json!(1))
    );
    assert_eq!(server.request("GET", "/metrics", &bearer, None).status, 200);
    // The scheme name is case-insensitive (RFC 9110, 11.1); the token is not.
    for scheme in ["bearer", "BEARER"] {
        let good = format!("{scheme} s3cret-token");
        let reply = server.request("GET", "/kv/a", &[("Authorization", &good)], None);
        assert_eq!(reply.status, 200, "{good}");
        let wrong = format!("{scheme} S3CRET-TOKEN");
        let reply = server.request("GET", "/kv/a", &[("Authorization", &wrong)], None);
        assert_eq!(reply.status, 401, "{wrong}");
    }
}

/// Regression test: the harness's servers took their token from `RUSTKV_TOKEN`, so
/// a developer with it set saw 401s everywhere. Setting a variable in a running,
/// multithreaded test binary is unsound, so this runs another test of this binary
/// in a child process whose environment has it.
#[test]
fn the_harness_ignores_rustkv_token() {
    let this_binary = std::env::current_exe().unwrap();
    let output = std::process::Command::new(this_binary)
        .args(["--exact", "metrics_count_a_known_sequence_exactly"])
        .env(rustkv::config::TOKEN_ENV, "from-the-environment")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "with RUSTKV_TOKEN set:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_slow_client_is_cut_off_and_holds_nothing() {
    let server = TestServer::start("[server]\nclient_request_timeout = \"1s\"\n");
    let address = server.base.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: slow\r\n")
        .unwrap(); // never finishes the head
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let waited = started.elapsed();
    assert!(
        reply.starts_with("HTTP/1.1 408"),
        "slow client got {reply:?}"
    );
    assert!(
        waited >= Duration::from_millis(400),
        "cut off too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "cut off after {waited:?}");
    assert_eq!(
        server.get("/health").status,
        200,
        "the server still serves others"
    );
}

#[test]
fn oversized_heads_are_refused_with_431() {
    let server = TestServer::start("");
    let address = server.base.strip_prefix("http://").unwrap();
    let many: String = (0..100).map(|index| format!("X-H{index}: v\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(200_000));
    for extra in [many, big] {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let head = format!("GET /health HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
        let _ = stream.write_all(head.as_bytes());
        let mut reply = [0u8; 64];
        let read = stream.read(&mut reply).unwrap_or(0);
        let reply = String::from_utf8_lossy(&reply[..read]);
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    }
    assert_eq!(server.get("/health").status, 200);
}

/// The OpenAPI document describes exactly the routes the server answers, and the
/// docs page and its assets are served locally.
#[test]
fn openapi_lists_every_route_and_docs_are_served_locally() {
    let server = TestServer::start("");
    let reply = server.get("/openapi.json");
    assert_eq!(reply.status, 200);
    let document = reply.json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let mut described: Vec<String> = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            described.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    described.sort();
    let mut served = [
        "PUT /kv/insert",
        "GET /kv/{key}",
        "HEAD /kv/{key}",
        "DELETE /kv/delete/{key}",
        "DELETE /kv/{key}",
        "GET /v1/kv/{key}",
        "HEAD /v1/kv/{key}",
        "PUT /v1/kv/{key}",
        "DELETE /v1/kv/{key}",
        "GET /health",
        "HEAD /health",
        "GET /v1/stats",
        "GET /metrics",
        "POST /v1/batch",
        "POST /v1/txn",
        "GET /v1/kv",
        "HEAD /v1/kv",
        "GET /health/primary",
        "GET /v1/replication",
        "POST /v1/replication/promote",
        "POST /v1/replication/follow",
        // Without its query: a 400 (with one it would stream until disconnected).
        "GET /v1/replication/sync",
    ]
    .map(String::from);
    served.sort();
    assert_eq!(described, served);
    // Each described route is really answered (not the 404 of an unknown route).
    for route in &served {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{key}", "k");
        let body = match method {
            "PUT" => Some(br#"{"key":"k","value":1}"#.as_slice()),
            "POST" => Some(br#"{"ops":[]}"#.as_slice()),
            _ => None,
        };
        let reply = server.request(method, &path, &[("Content-Type", "application/json")], body);
        assert!(reply.status < 500, "{route}: {}", reply.status);
        if reply.status == 404 {
            assert_eq!(
                reply.header("content-type"),
                Some("application/json"),
                "{route}"
            );
            assert!(
                !reply.body.contains("no route"),
                "{route} is not served: {}",
                reply.body
            );
        }
    }
    let page = server.get("/docs/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("swagger-ui"), "{}", page.body);
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "the page loads nothing remote"
    );
    let bundle = server.get("/docs/swagger-ui-bundle.js");
    assert_eq!(bundle.status, 200);
    assert!(bundle.body.len() > 100_000);
    let redirect = server.request("GET", "/docs", &[], None);
    assert_eq!(redirect.status, 200, "ureq follows the redirect to /docs/");
    assert!(redirect.body.contains("swagger-ui"));
}

/// The served document states the configured TTL ceiling on both TTL inputs.
#[test]
fn openapi_carries_the_configured_ttl_ceiling() {
    let server = TestServer::start("[store]\nmax_ttl = \"1h\"\n");
    let document = server.get("/openapi.json").json();
    let body_ttl = &document["components"]["schemas"]["InsertRequest"]["properties"]["ttl"];
    assert_eq!(body_ttl["maximum"], json!(3600));
    assert_eq!(body_ttl["exclusiveMinimum"], json!(0));
    let parameters = document["paths"]["/v1/kv/{key}"]["put"]["parameters"]
        .as_array()
        .unwrap();
    let query_ttl = parameters.iter().find(|p| p["name"] == "ttl").unwrap();
    assert_eq!(query_ttl["schema"]["maximum"], json!(3600));
    // And the server holds to it: one second more is refused.
    let reply = server.request(
        "PUT",
        "/v1/kv/k?ttl=3601",
        &[("Content-Type", "application/json")],
        Some(b"1"),
    );
    assert_eq!(reply.status, 400);
}

/// `server.max_headers` and `server.max_header_bytes` refuse a request with 431 in
/// its family's JSON shape, before any handler; the limits are configurable and the
/// server goes on serving.
#[test]
fn header_limits_answer_431_in_json() {
    let server = TestServer::start("[server]\nmax_headers = 8\nmax_header_bytes = \"2KiB\"\n");
    let many: Vec<(String, String)> = (0..10)
        .map(|index| (format!("X-H{index}"), "v".to_owned()))
        .collect();
    let big = vec![("X-Big".to_owned(), "a".repeat(3000))];
    for (headers, says) in [(many, "header fields, at most 8"), (big, "at most 2048")] {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let native = server.request("GET", "/v1/kv/k", &headers, None);
        assert_eq!(native.status, 431, "{}", native.body);
        assert_eq!(native.json()["error"], "headers_too_large");
        let detail = native.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(says), "{detail}");
        let compat = server.request("GET", "/kv/k", &headers, None);
        assert_eq!(compat.status, 431);
        assert_eq!(
            compat.json().as_object().unwrap().len(),
            1,
            "{}",
            compat.body
        );
        assert!(compat.json()["detail"].as_str().unwrap().contains(says));
        assert_eq!(server.request("GET", "/health", &headers, None).status, 431);
    }
    // Within the limits, the same routes answer as usual.
    let fine = [("X-A", "1"), ("X-B", "2")];
    assert_eq!(server.request("GET", "/health", &fine, None).status, 200);
    assert_eq!(server.request("GET", "/kv/k", &fine, None).status, 404);
}

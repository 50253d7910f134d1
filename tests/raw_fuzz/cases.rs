//! The fuzz cases: request bytes generated or mutated from a seeded RNG. This file
//! holds the well-formed building blocks and the cases made of them (valid,
//! mutated, pipelined, after `Connection: close`, slow); `malformed.rs` the ones
//! that break the grammar or the framing.
//!
//! The rule that makes "no other key changes" checkable: every request the server
//! may legitimately run addresses a `fuzz-` key, and only bytes it must never run
//! as a request (chunk data or a body smuggled past the framing, requests after
//! `Connection: close` or a non-persistent HTTP/1.0 request) write a sentinel key.
//! So a changed sentinel is a framing bug, and its new value names the case.
//! Mutations are applied only to requests built from `fuzz-` keys, since deleting
//! a framing header from a smuggling case could turn its payload into a legitimate
//! pipelined request.

use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::malformed;

/// Sentinel keys written with the native API (`sentinel-0` ..) and with the
/// PyRustKV one (`sentinel-c0` ..).
pub const NATIVE_SENTINELS: usize = 10;
pub const COMPAT_SENTINELS: usize = 5;
/// The prefix of the sentinel a case's smuggled DELETE aims at, followed by the
/// case number: a deleted key tells nothing else about who deleted it.
pub const DELETE_SENTINEL: &str = "sentinel-d";

/// One case: `segments` written in order on one fresh connection, `pause` apart.
pub struct Case {
    /// Which generator made it, and the variant, for the report.
    pub kind: String,
    pub segments: Vec<Vec<u8>>,
    pub pause: Duration,
    /// Sentinels this case's smuggled bytes would write if the server ran them
    /// (planted before it runs when they are its own).
    pub targets: Vec<String>,
}

impl Case {
    pub fn one(kind: impl Into<String>, bytes: Vec<u8>) -> Case {
        Case {
            kind: kind.into(),
            segments: vec![bytes],
            pause: Duration::ZERO,
            targets: Vec::new(),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.segments.concat()
    }
}

/// Case `index` of the run seeded with `seed`; it depends on nothing else, so one
/// case can be replayed alone (`RUSTKV_FUZZ_CASE`).
pub fn generate(seed: u64, index: usize) -> Case {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match rng.gen_range(0..100) {
        0..5 => Case::one("valid", valid(&mut rng, "HTTP/1.1")),
        5..30 => mutated(&mut rng),
        30..40 => pipelined(&mut rng),
        40..48 => close_then_more(&mut rng, index),
        48..63 => malformed::head_chaos(&mut rng),
        63..73 => malformed::content_length_chaos(&mut rng),
        73..85 => malformed::chunked_chaos(&mut rng),
        85..95 => malformed::smuggling(&mut rng, index),
        _ => slow(&mut rng),
    }
}

pub fn fuzz_key(rng: &mut StdRng) -> String {
    format!("fuzz-{}", rng.gen_range(0..20))
}

pub fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &[&'a T]) -> &'a T {
    items.choose(rng).expect("non-empty")
}

/// A request with `Host` and, with a body, `Content-Length` (or chunked framing).
pub fn request(
    method: &str,
    target: &str,
    version: &str,
    headers: &[String],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut bytes = format!("{method} {target} {version}\r\nHost: test\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(body);
    } else {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes
}

fn json_value(rng: &mut StdRng) -> &'static str {
    pick(
        rng,
        &["1", "\"s\"", "{\"a\":[1,2,null]}", "null", "[]", "-0.5e3"],
    )
}

/// A well-formed request on `fuzz-` keys (or a key-less route), persistent unless
/// the RNG adds `Connection: close`.
pub fn valid(rng: &mut StdRng, version: &str) -> Vec<u8> {
    let key = fuzz_key(rng);
    let mut headers = Vec::new();
    if version == "HTTP/1.0" {
        headers.push("Connection: keep-alive".to_owned());
    } else if rng.gen_ratio(1, 10) {
        headers.push("Connection: close".to_owned());
    }
    let json = "Content-Type: application/json".to_owned();
    let value = json_value(rng);
    let (method, target, body) = match rng.gen_range(0..10) {
        0 => ("GET", format!("/v1/kv/{key}"), None),
        1 => (
            "PUT",
            format!("/v1/kv/{key}?ttl=30"),
            Some(value.to_owned()),
        ),
        2 => {
            headers.push(json);
            ("PUT", format!("/v1/kv/{key}"), Some(value.to_owned()))
        }
        3 => ("DELETE", format!("/v1/kv/{key}"), None),
        4 => ("GET", format!("/kv/{key}"), None),
        5 => {
            headers.push(json);
            let body = format!(r#"{{"key":"{key}","value":{value},"ttl":30}}"#);
            ("PUT", "/kv/insert".to_owned(), Some(body))
        }
        6 => ("DELETE", format!("/kv/delete/{key}"), None),
        7 => ("GET", "/health".to_owned(), None),
        8 => ("GET", "/v1/stats".to_owned(), None),
        _ => {
            headers.push(pick(rng, &["If-None-Match: *", "If-Match: \"3\""]).to_owned());
            ("PUT", format!("/v1/kv/{key}"), Some(value.to_owned()))
        }
    };
    match body {
        Some(body) if version == "HTTP/1.1" && rng.gen_ratio(1, 4) => {
            chunked_request(rng, method, &target, &headers, body.as_bytes())
        }
        body => request(
            method,
            &target,
            version,
            &headers,
            body.as_deref().map(str::as_bytes),
        ),
    }
}

/// A well-formed HTTP/1.1 chunked request: random chunk sizes, sometimes an
/// extension or a trailer.
fn chunked_request(
    rng: &mut StdRng,
    method: &str,
    target: &str,
    headers: &[String],
    body: &[u8],
) -> Vec<u8> {
    let mut bytes = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n").into_bytes();
    for header in headers {
        bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    let mut rest = body;
    while !rest.is_empty() {
        let size = rng.gen_range(1..=rest.len());
        let extension = if rng.gen_ratio(1, 5) { ";ext=1" } else { "" };
        bytes.extend_from_slice(format!("{size:x}{extension}\r\n").as_bytes());
        bytes.extend_from_slice(&rest[..size]);
        bytes.extend_from_slice(b"\r\n");
        rest = &rest[size..];
    }
    let trailer = if rng.gen_ratio(1, 5) {
        "X-Trailer: 1\r\n"
    } else {
        ""
    };
    bytes.extend_from_slice(format!("0\r\n{trailer}\r\n").as_bytes());
    bytes
}

/// A write the server must never run: it would change a sentinel. A PUT's value
/// names the case; a DELETE aims at a sentinel of the case's own
/// (`DELETE_SENTINEL`), planted before the case runs.
pub fn smuggled(rng: &mut StdRng, case: usize) -> (Vec<u8>, String) {
    let native = format!("sentinel-{}", rng.gen_range(0..NATIVE_SENTINELS));
    let compat = format!("sentinel-c{}", rng.gen_range(0..COMPAT_SENTINELS));
    let own = format!("{DELETE_SENTINEL}{case}");
    let json = ["Content-Type: application/json".to_owned()];
    let value = format!(r#"{{"smuggled_by_case":{case}}}"#);
    match rng.gen_range(0..4) {
        0 => {
            let path = format!("/v1/kv/{native}");
            let bytes = request("PUT", &path, "HTTP/1.1", &json, Some(value.as_bytes()));
            (bytes, native)
        }
        1 => {
            let body = format!(r#"{{"key":"{compat}","value":{value}}}"#);
            let bytes = request(
                "PUT",
                "/kv/insert",
                "HTTP/1.1",
                &json,
                Some(body.as_bytes()),
            );
            (bytes, compat)
        }
        2 => {
            let path = format!("/v1/kv/{own}");
            (request("DELETE", &path, "HTTP/1.1", &[], None), own)
        }
        _ => {
            let path = format!("/kv/delete/{own}");
            (request("DELETE", &path, "HTTP/1.1", &[], None), own)
        }
    }
}

/// A valid request (or two pipelined) with one to four random edits.
fn mutated(rng: &mut StdRng) -> Case {
    let mut bytes = valid(rng, "HTTP/1.1");
    if rng.gen_ratio(1, 3) {
        bytes.extend(valid(rng, "HTTP/1.1"));
    }
    let mut edits = Vec::new();
    for _ in 0..rng.gen_range(1..=4) {
        edits.push(edit(rng, &mut bytes));
    }
    Case::one(format!("mutated/{}", edits.join("+")), bytes)
}

const INTERESTING: &[u8] = b"\0\r\n \t:;,\"%\x7f\x80\xff\x0b";
const SNIPPETS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 7\r\n",
    b"Connection: close\r\n",
    b"Expect: 100-continue\r\n",
    b"\xc3\xa9",
];

fn edit(rng: &mut StdRng, bytes: &mut Vec<u8>) -> &'static str {
    if bytes.is_empty() {
        bytes.push(b'x');
        return "grow";
    }
    let at = rng.gen_range(0..bytes.len());
    match rng.gen_range(0..7) {
        0 => {
            bytes[at] ^= 1 << rng.gen_range(0..8);
            "flip"
        }
        1 => {
            bytes[at] = *INTERESTING.choose(rng).unwrap();
            "set"
        }
        2 => {
            bytes.insert(at, *INTERESTING.choose(rng).unwrap());
            "insert"
        }
        3 => {
            let snippet = SNIPPETS.choose(rng).unwrap();
            bytes.splice(at..at, snippet.iter().copied());
            "snippet"
        }
        4 => {
            let end = (at + rng.gen_range(1..8)).min(bytes.len());
            bytes.drain(at..end);
            "delete"
        }
        5 => {
            let end = (at + rng.gen_range(1..32)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
            "duplicate"
        }
        _ => {
            bytes.truncate(at);
            "truncate"
        }
    }
}

/// Two to five valid requests in one write, or split across two writes.
fn pipelined(rng: &mut StdRng) -> Case {
    let count = rng.gen_range(2..=5);
    let version = if rng.gen_ratio(1, 4) {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let bytes: Vec<u8> = (0..count).flat_map(|_| valid(rng, version)).collect();
    let mut case = Case::one(format!("pipelined/{count}x{version}"), bytes);
    if rng.gen_ratio(1, 3) {
        let bytes = case.segments.pop().unwrap();
        let at = rng.gen_range(1..bytes.len());
        case.segments = vec![bytes[..at].to_vec(), bytes[at..].to_vec()];
        case.pause = Duration::from_millis(50);
        case.kind.push_str("/split");
    }
    case
}

/// Requests after one that ends the connection: they must not run.
fn close_then_more(rng: &mut StdRng, index: usize) -> Case {
    let mut bytes: Vec<u8> = (0..rng.gen_range(0..=2))
        .flat_map(|_| {
            let mut request = valid(rng, "HTTP/1.1");
            // Only the request chosen below may end the connection.
            if let Some(at) = find(&request, b"Connection: close\r\n") {
                request.drain(at..at + 19);
            }
            request
        })
        .collect();
    let key = fuzz_key(rng);
    let (variant, closing) = match rng.gen_range(0..6) {
        0 => (
            "close",
            request(
                "GET",
                "/health",
                "HTTP/1.1",
                &["Connection: close".into()],
                None,
            ),
        ),
        1 => (
            "Close",
            request(
                "GET",
                &format!("/v1/kv/{key}"),
                "HTTP/1.1",
                &["connection: Close".into()],
                None,
            ),
        ),
        2 => (
            "list",
            request(
                "GET",
                "/v1/stats",
                "HTTP/1.1",
                &["Connection: x-fuzz, close".into()],
                None,
            ),
        ),
        3 => (
            "http/1.0",
            request("GET", &format!("/kv/{key}"), "HTTP/1.0", &[], None),
        ),
        4 => (
            "http/1.0-close",
            request(
                "DELETE",
                &format!("/v1/kv/{key}"),
                "HTTP/1.0",
                &["Connection: close".into()],
                None,
            ),
        ),
        _ => {
            let headers = [
                "Connection: close".into(),
                "Content-Type: application/json".into(),
            ];
            (
                "put-close",
                request(
                    "PUT",
                    &format!("/v1/kv/{key}"),
                    "HTTP/1.1",
                    &headers,
                    Some(b"7"),
                ),
            )
        }
    };
    bytes.extend(closing);
    let mut case = Case::one(format!("close-then-more/{variant}"), Vec::new());
    for _ in 0..rng.gen_range(1..=2) {
        let (payload, target) = smuggled(rng, index);
        bytes.extend(payload);
        case.targets.push(target);
    }
    case.segments = vec![bytes];
    case
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Heads that arrive slowly or never complete: the server must answer what is
/// complete and close the rest within its timeouts.
fn slow(rng: &mut StdRng) -> Case {
    let first = valid(rng, "HTTP/1.1");
    let second = valid(rng, "HTTP/1.1");
    let head_end = find(&second, b"\r\n\r\n").unwrap_or(second.len());
    let partial = second[..rng.gen_range(1..head_end)].to_vec();
    match rng.gen_range(0..4) {
        0 => Case::one("slow/partial-second-head", [first, partial].concat()),
        1 => Case::one("slow/partial-first-head", partial),
        2 => Case {
            kind: "slow/second-head-after-pause".into(),
            segments: vec![first, partial],
            pause: Duration::from_millis(300),
            targets: Vec::new(),
        },
        _ => {
            let cut = rng.gen_range(1..first.len());
            Case {
                kind: "slow/split-valid-request".into(),
                segments: vec![first[..cut].to_vec(), first[cut..].to_vec()],
                pause: Duration::from_millis(300),
                targets: Vec::new(),
            }
        }
    }
}

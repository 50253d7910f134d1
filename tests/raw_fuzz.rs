//! A raw-HTTP fuzz test: generated and mutated request bytes on plain TCP
//! connections to a real server on 127.0.0.1 (2 workers, 1 s request-head, body
//! and keep-alive timeouts), from a seeded RNG. The cases are in `raw_fuzz/cases.rs`: odd
//! request lines and header fields (NUL, non-ASCII, obs-fold, huge and many),
//! `Content-Length` and chunked framing gone wrong, Transfer-Encoding with
//! Content-Length, pipelining, requests after `Connection: close`, truncated and
//! slow heads, and random edits of valid requests.
//!
//! For every case, whatever the server answers must be:
//! - a sequence of well-formed HTTP/1.x responses (`raw_fuzz/responses.rs`), or a
//!   close, and nothing after a response that says `Connection: close`;
//! - never a 5xx; every 4xx with a JSON body (an empty one is a violation too);
//! - closed within `HANG_LIMIT` of the last byte sent (the server's timeouts are
//!   1 s, the rest is slack for a loaded machine);
//! - and no key but `fuzz-*` changes: sentinel keys written first are read back
//!   after every batch (value and ETag). Only bytes the server must never run as a
//!   request write sentinels, with a value naming the case (see `cases.rs`).
//!
//! Every violation is collected, then reported together: case, seed, generator,
//! the bytes sent and received (escaped, truncated). To replay:
//! `RUSTKV_FUZZ_SEED=<seed>` (default a fixed seed, so CI runs are repeatable),
//! `RUSTKV_FUZZ_CASES=<count>` (default 400, about 10-20 s), and
//! `RUSTKV_FUZZ_CASE=<index>` to run one case of that seed alone.

#[path = "raw_fuzz/cases.rs"]
mod cases;
mod common;
#[path = "raw_fuzz/malformed.rs"]
mod malformed;
#[path = "raw_fuzz/responses.rs"]
mod responses;
#[path = "raw_fuzz/sentinels.rs"]
mod sentinels;

use std::{
    collections::BTreeMap,
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use cases::Case;
use common::TestServer;
use sentinels::Sentinels;

const CONFIG: &str = "[server]\nworkers = 2\nclient_request_timeout = \"1s\"\n\
                      client_body_timeout = \"1s\"\nkeep_alive = \"1s\"\nmax_body = \"64KiB\"\n\
                      [store]\nmax_value_bytes = \"32KiB\"\n";
/// How long after the last byte sent a connection may stay open: the server's
/// 1 s timeouts plus slack for a shared, loaded machine.
const HANG_LIMIT: Duration = Duration::from_secs(4);
const DEFAULT_SEED: u64 = 0x2026_1128;
const DEFAULT_CASES: usize = 400;
/// Cases run side by side (most wait out the 1 s keep-alive), and between two
/// sentinel checks.
const PARALLEL: usize = 48;
const BATCH: usize = 100;
/// How much of the bytes sent and received a report shows.
const SHOWN_BYTES: usize = 600;
/// Violations of each kind the failure message shows in full (the report file
/// under target/tmp has all).
const EXAMPLES: usize = 3;

/// A broken invariant, with the case it was seen in.
struct Violation {
    case: usize,
    kind: String,
    detail: String,
}

/// What one connection saw.
struct Outcome {
    received: Vec<u8>,
    closed: bool,
}

#[test]
fn raw_requests_keep_framing_errors_and_other_keys_intact() {
    let seed = env_number("RUSTKV_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let count = env_number("RUSTKV_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let indices: Vec<usize> = match env_number("RUSTKV_FUZZ_CASE") {
        Some(only) => vec![only as usize],
        None => (0..count).collect(),
    };
    println!(
        "raw_fuzz: seed {seed} ({} cases; RUSTKV_FUZZ_SEED to change)",
        indices.len()
    );
    let started = Instant::now();
    let server = TestServer::start(CONFIG);
    let address: SocketAddr = server
        .base
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let mut sentinels = Sentinels::plant(&server);
    let mut violations = Vec::new();
    let mut cases = BTreeMap::new();
    for batch in indices.chunks(BATCH) {
        let generated: Vec<(usize, Case)> = batch
            .iter()
            .map(|&index| (index, cases::generate(seed, index)))
            .collect();
        sentinels.plant_for(&server, &generated);
        let (found, answers) = run_batch(address, &generated);
        violations.extend(found);
        cases.extend(generated);
        // What the connection got shows whether the smuggled request was answered.
        violations.extend(
            sentinels
                .check(&server, &cases)
                .into_iter()
                .map(|mut violation| {
                    let got = answers
                        .get(&violation.case)
                        .map_or_else(String::new, |bytes| shown(bytes));
                    violation.detail.push_str(&format!("\n      got: {got}"));
                    violation
                }),
        );
    }
    println!(
        "raw_fuzz: {} cases in {:.1?}",
        indices.len(),
        started.elapsed()
    );
    if !violations.is_empty() {
        let full = concat!(env!("CARGO_TARGET_TMPDIR"), "/raw_fuzz-report.txt");
        std::fs::write(full, report(seed, &cases, &violations, usize::MAX)).unwrap();
        let brief = report(seed, &cases, &violations, EXAMPLES);
        panic!("{brief}\nEvery violation in full: {full}");
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

/// Runs the cases `PARALLEL` at a time; answers the violations seen on the wire
/// and what each case's connection received.
fn run_batch(
    address: SocketAddr,
    cases: &[(usize, Case)],
) -> (Vec<Violation>, BTreeMap<usize, Vec<u8>>) {
    let next = AtomicUsize::new(0);
    let results = Mutex::new((Vec::new(), BTreeMap::new()));
    thread::scope(|scope| {
        for _ in 0..PARALLEL.min(cases.len()) {
            scope.spawn(|| {
                while let Some((index, case)) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let outcome = send(address, case);
                    let found = check(*index, &outcome);
                    let mut results = results.lock().unwrap();
                    results.0.extend(found);
                    results.1.insert(*index, outcome.received);
                }
            });
        }
    });
    results.into_inner().unwrap()
}

/// Writes the case on a fresh connection and reads until the server closes it or
/// `HANG_LIMIT` passes after the last write.
fn send(address: SocketAddr, case: &Case) -> Outcome {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for (number, segment) in case.segments.iter().enumerate() {
        if number > 0 {
            thread::sleep(case.pause);
        }
        // A server that answers early and closes may refuse the rest: fine.
        if stream.write_all(segment).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + HANG_LIMIT;
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => {
                return Outcome {
                    received,
                    closed: true,
                };
            }
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Outcome {
                        received,
                        closed: false,
                    };
                }
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            // A reset is a close (the server dropped unread bytes).
            Err(_) => {
                return Outcome {
                    received,
                    closed: true,
                };
            }
        }
    }
}

/// The invariants on what one connection received.
fn check(case: usize, outcome: &Outcome) -> Vec<Violation> {
    let (responses, malformed) = responses::parse(&outcome.received);
    let mut found = Vec::new();
    if !outcome.closed {
        let detail = format!(
            "connection still open {HANG_LIMIT:?} after the last byte sent \
             ({} complete responses before)",
            responses.len()
        );
        found.push(("hang".to_owned(), detail));
    } else if let Some((at, why)) = malformed {
        found.push((
            "malformed response".to_owned(),
            format!("{why} at byte {at}"),
        ));
    }
    found.extend(statuses(&responses));
    // The first response that says close but is not the last: one report a case.
    let closing = responses.iter().position(responses::Response::closes);
    if let Some(number) = closing.filter(|&number| number + 1 < responses.len()) {
        let detail = format!(
            "response {number} ({}) said close, {} more followed",
            responses[number].status,
            responses.len() - number - 1
        );
        found.push(("response after Connection: close".to_owned(), detail));
    }
    let got = shown(&outcome.received);
    found
        .into_iter()
        .map(|(kind, detail)| Violation {
            case,
            kind,
            detail: format!("{detail}\n      got: {got}"),
        })
        .collect()
}

/// No 5xx, and a JSON body on every 4xx: (kind, detail) for each response that
/// breaks either.
fn statuses(responses: &[responses::Response]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (number, response) in responses.iter().enumerate() {
        let status = response.status;
        if status >= 500 {
            found.push(("5xx".to_owned(), format!("response {number}: {status}")));
        } else if status >= 400 && !json_body(response) {
            let kind = match response.body.is_empty() {
                true => format!("{status} with an empty body"),
                false => format!("{status} without a JSON body"),
            };
            let content_type = response.header("content-type").map(<[u8]>::escape_ascii);
            let detail = format!(
                "response {number}: {status}, Content-Type {:?}",
                content_type.map(|value| value.to_string())
            );
            found.push((kind, detail));
        }
    }
    found
}

fn json_body(response: &responses::Response) -> bool {
    let typed = response
        .header("content-type")
        .is_some_and(|value| value.starts_with(b"application/json"));
    typed && serde_json::from_slice::<serde_json::Value>(&response.body).is_ok()
}

/// Bytes escaped, cut to `SHOWN_BYTES`, with the full length.
pub fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(SHOWN_BYTES)];
    let more = if bytes.len() > SHOWN_BYTES { "..." } else { "" };
    format!("\"{}\"{more} ({} bytes)", cut.escape_ascii(), bytes.len())
}

/// Every violation, grouped by kind: counts and case lists, then `examples` of
/// each kind in full.
fn report(
    seed: u64,
    cases: &BTreeMap<usize, Case>,
    violations: &[Violation],
    examples: usize,
) -> String {
    let mut by_kind: BTreeMap<&str, Vec<&Violation>> = BTreeMap::new();
    for violation in violations {
        by_kind.entry(&violation.kind).or_default().push(violation);
    }
    let mut text = format!(
        "{} violations in {} cases, seed {seed} (replay one with RUSTKV_FUZZ_SEED={seed} \
         RUSTKV_FUZZ_CASE=<case>)\n",
        violations.len(),
        cases.len()
    );
    for (kind, list) in &by_kind {
        let mut generators: BTreeMap<&str, usize> = BTreeMap::new();
        for violation in list {
            let generator = cases[&violation.case].kind.as_str();
            *generators.entry(generator).or_default() += 1;
        }
        let numbers: Vec<String> = list.iter().map(|v| v.case.to_string()).collect();
        text.push_str(&format!(
            "\n== {kind}: {} (cases {})\n",
            list.len(),
            numbers.join(" ")
        ));
        text.push_str(&format!("   by generator: {generators:?}\n"));
        for violation in list.iter().take(examples) {
            let case = &cases[&violation.case];
            text.push_str(&format!(
                "   case {} [{}]: {}\n      sent: {}\n",
                violation.case,
                case.kind,
                violation.detail,
                shown(&case.bytes())
            ));
        }
    }
    text
}

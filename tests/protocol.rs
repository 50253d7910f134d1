//! Regression tests for issue 12, "Protocol hardening": what a hostile client found
//! at the HTTP/1 layer, over raw TCP. Slow second heads and stalled bodies held
//! connections forever; TE+CL on HTTP/1.0 smuggled a second request; requests
//! pipelined after `Connection: close` ran; parse errors got an empty 400; chunk
//! trailers were refused; SIGTERM kept serving keep-alive connections.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::TestServer;
use serde_json::Value;

/// A raw connection to `server`, reads bounded by `timeout`.
fn connect(server: &TestServer, timeout: Duration) -> TcpStream {
    let address = server.base.strip_prefix("http://").unwrap();
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
}

/// Everything until the server closes (or the read timeout), and how long it took.
fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    (
        String::from_utf8_lossy(&bytes).into_owned(),
        started.elapsed(),
    )
}

/// The JSON body of the last response in `text`.
fn last_json(text: &str) -> Value {
    let body = text.rsplit("\r\n\r\n").next().unwrap();
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {text:?}"))
}

fn put(key: &str, extra: &str) -> String {
    format!(
        "PUT /v1/kv/{key} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}Content-Length: 1\r\n\r\n1"
    )
}

#[test]
fn a_slow_second_head_is_cut_within_the_deadline() {
    let server =
        TestServer::start("[server]\nclient_request_timeout = \"1s\"\nkeep_alive = \"30s\"\n");
    let mut stream = connect(&server, Duration::from_secs(5));
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0; 512];
    let read = stream.read(&mut first).unwrap();
    assert!(first[..read].starts_with(b"HTTP/1.1 200"));
    // Idle past the head timeout first: the connection's timer then stands at the
    // 30 s keep-alive deadline, and the head's earlier one must still be kept.
    thread::sleep(Duration::from_millis(1500));
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: sl")
        .unwrap();
    let (reply, waited) = read_until_closed(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 408"), "got {reply:?}");
    assert_eq!(last_json(&reply)["error"], "request_timeout");
    assert!(
        waited > Duration::from_millis(800),
        "cut too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "cut after {waited:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_keep_alive() {
    let server = TestServer::start("[server]\nkeep_alive = \"1s\"\n");
    let mut stream = connect(&server, Duration::from_secs(5));
    // Two answered requests, then silence: the idle time counts from the last. GETs,
    // because their answer is ready as soon as they are read: nothing reads the
    // connection again after it, so the deadline must already be armed by then.
    for _ in 0..2 {
        stream
            .write_all(b"GET /v1/kv/idle HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reply = [0; 512];
        let read = stream.read(&mut reply).unwrap();
        assert!(reply[..read].starts_with(b"HTTP/1.1 404"));
        thread::sleep(Duration::from_millis(600));
    }
    let (rest, waited) = read_until_closed(&mut stream);
    assert_eq!(rest, "", "nothing more is sent on an idle connection");
    assert!(waited < Duration::from_secs(3), "held idle for {waited:?}");
}

#[test]
fn a_stalled_body_is_cut_but_a_slow_moving_one_is_not() {
    let server = TestServer::start("[server]\nclient_body_timeout = \"1s\"\n");
    let head = "PUT /v1/kv/slow HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n";
    // Moving: a byte every 600 ms, each within the deadline.
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(head.as_bytes()).unwrap();
    for byte in b"12345" {
        thread::sleep(Duration::from_millis(600));
        stream.write_all(&[*byte]).unwrap();
    }
    let mut reply = [0; 512];
    let read = stream.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..read]).into_owned();
    assert!(
        reply.starts_with("HTTP/1.1 20"),
        "slow body refused: {reply}"
    );
    // Stalled: two bytes, then silence.
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(format!("{head}12").as_bytes()).unwrap();
    let (reply, waited) = read_until_closed(&mut stream);
    assert!(waited < Duration::from_secs(3), "held for {waited:?}");
    assert!(reply.starts_with("HTTP/1.1 408"), "got {reply:?}");
    assert_eq!(last_json(&reply)["error"], "request_timeout");
    // Nothing truncated was stored: the first PUT's value is still there.
    assert_eq!(server.get("/v1/kv/slow").body, "12345");
}

#[test]
fn te_and_cl_on_http_1_0_is_refused_and_nothing_is_smuggled() {
    let server = TestServer::start("");
    let smuggled = "PUT /v1/kv/smuggled HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1";
    let chunk = format!("0\r\n\r\n{smuggled}");
    let request = format!(
        "PUT /v1/kv/front HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: {}\r\n\r\n{chunk}",
        "0\r\n\r\n".len()
    );
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(request.as_bytes()).unwrap();
    let (reply, _) = read_until_closed(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 400"), "got {reply:?}");
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
    assert_eq!(last_json(&reply)["error"], "ambiguous_framing");
    assert_eq!(server.get("/v1/kv/smuggled").status, 404);
    assert_eq!(server.get("/v1/kv/front").status, 404);
}

#[test]
fn te_and_cl_on_http_1_1_is_answered_then_closed() {
    let server = TestServer::start("");
    let request = format!(
        "PUT /v1/kv/a HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1\r\n1\r\n0\r\n\r\n{}",
        put("b", "")
    );
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(request.as_bytes()).unwrap();
    let (reply, _) = read_until_closed(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 201"), "got {reply:?}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
    assert_eq!(server.get("/v1/kv/b").status, 404);
}

#[test]
fn nothing_pipelined_after_a_close_runs() {
    let server = TestServer::start("");
    let cases = [
        // The client's Connection: close.
        format!("{}{}", put("a", "Connection: close\r\n"), put("b", "")),
        // HTTP/1.0 without keep-alive.
        format!(
            "PUT /v1/kv/a HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n1{}",
            put("b", "")
        ),
        // The server's own close: 415 leaves the body unread.
        format!(
            "PUT /v1/kv/a HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n1{}",
            put("b", "")
        ),
    ];
    for pipeline in cases {
        let mut stream = connect(&server, Duration::from_secs(5));
        stream.write_all(pipeline.as_bytes()).unwrap();
        let (reply, _) = read_until_closed(&mut stream);
        assert_eq!(reply.matches("HTTP/1.").count(), 1, "{pipeline:?}: {reply}");
        assert_eq!(server.get("/v1/kv/b").status, 404, "{pipeline:?} ran b");
        server.delete("/v1/kv/a");
    }
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let server = TestServer::start("");
    let pipeline: String = (0..20).map(|index| put(&format!("k{index}"), "")).collect();
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(pipeline.as_bytes()).unwrap();
    stream
        .write_all(b"GET /v1/kv/k19 HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (reply, _) = read_until_closed(&mut stream);
    assert_eq!(reply.matches("HTTP/1.1 201").count(), 20, "{reply}");
    assert!(reply.contains("HTTP/1.1 200"), "{reply}");
}

#[test]
fn chunk_trailers_are_accepted() {
    let server = TestServer::start("");
    let request = "PUT /v1/kv/t HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n12\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let mut stream = connect(&server, Duration::from_secs(5));
    stream.write_all(request.as_bytes()).unwrap();
    let (reply, _) = read_until_closed(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 201"), "got {reply:?}");
    assert_eq!(server.get("/v1/kv/t").body, "12");
}

#[test]
fn parse_errors_get_a_json_400() {
    let server = TestServer::start("");
    let cases: [&[u8]; 4] = [
        b"GET /v1/kv/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Name: 1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nX\x01: 1\r\n\r\n",
    ];
    for request in cases {
        let mut stream = connect(&server, Duration::from_secs(5));
        stream.write_all(request).unwrap();
        let (reply, _) = read_until_closed(&mut stream);
        assert!(reply.ends_with('}'), "{request:?}: {reply:?}");
        assert!(reply.contains("HTTP/1.1 400"), "{request:?}: {reply:?}");
        assert_eq!(last_json(&reply)["error"], "malformed_request", "{reply}");
    }
}

/// The real binary on a free port, with its stderr log lines collected.
struct Binary {
    child: std::process::Child,
    port: u16,
    log: std::sync::mpsc::Receiver<String>,
}

impl Binary {
    fn start(toml: &str) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = std::env::temp_dir().join(format!(
            "rustkv-protocol-{}-{port}.toml",
            std::process::id()
        ));
        std::fs::write(&path, toml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rustkv"))
            .arg("--config")
            .arg(&path)
            .args(["--port", &port.to_string()])
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never listened"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Binary { child, port, log }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    fn sigterm(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// The exit code, waiting at most `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < limit, "still running after {limit:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on `stream`, its whole response read (bodies here are small).
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = [0; 4096];
    let read = stream.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..read]).into_owned()
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn sigterm_drains_then_closes_keep_alive_connections_and_exits() {
    let mut binary = Binary::start(
        "[server]\nshutdown_drain = \"1s\"\nshutdown_timeout = \"5s\"\nkeep_alive = \"30s\"\n",
    );
    let mut idle = binary.connect();
    assert!(exchange(&mut idle, HEALTH).starts_with("HTTP/1.1 200"));
    let mut busy = binary.connect();
    assert!(exchange(&mut busy, HEALTH).starts_with("HTTP/1.1 200"));
    binary.sigterm();
    thread::sleep(Duration::from_millis(300));
    // Draining: health says so, requests are still served on open connections.
    let draining = exchange(&mut busy, HEALTH);
    assert!(draining.starts_with("HTTP/1.1 503"), "{draining}");
    assert_eq!(last_json(&draining)["status"], "draining");
    let served = exchange(&mut busy, &put("d", ""));
    assert!(served.starts_with("HTTP/1.1 201"), "{served}");
    // After the drain: idle keep-alive connections are closed, no request is read.
    let (rest, waited) = read_until_closed(&mut idle);
    assert_eq!(rest, "", "an idle connection got {rest:?}");
    assert!(
        waited < Duration::from_secs(2),
        "idle connection held {waited:?}"
    );
    let started = Instant::now();
    assert_eq!(binary.exit_within(Duration::from_secs(3)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2));
    let log: Vec<String> = binary.log.try_iter().collect();
    assert!(
        log.iter().any(|line| line.contains("rustkv stopped")),
        "{log:#?}"
    );
}

#[test]
fn sigterm_answers_the_request_in_flight_with_connection_close() {
    let mut binary =
        Binary::start("[server]\nshutdown_timeout = \"500ms\"\nclient_body_timeout = \"5s\"\n");
    let mut stream = binary.connect();
    // A body under way when the signal comes: it is still read and answered.
    stream
        .write_all(b"PUT /v1/kv/f HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n1")
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    binary.sigterm();
    thread::sleep(Duration::from_millis(100));
    stream.write_all(format!("2{HEALTH}").as_bytes()).unwrap();
    let (reply, _) = read_until_closed(&mut stream);
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "{reply}");
    assert_eq!(binary.exit_within(Duration::from_secs(3)), Some(0));
}

#[test]
fn shutdown_timeout_counts_milliseconds() {
    let mut binary =
        Binary::start("[server]\nshutdown_timeout = \"500ms\"\nclient_body_timeout = \"30s\"\n");
    let mut stream = binary.connect();
    // A request that never finishes its body holds the shutdown until the timeout.
    stream
        .write_all(b"PUT /v1/kv/f HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n1")
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    binary.sigterm();
    assert_eq!(binary.exit_within(Duration::from_secs(5)), Some(0));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
}

/// Regression: the server's sockets kept Nagle's algorithm on, so the answers to
/// pipelined requests after the first waited for the client's delayed ACK (at least
/// 40 ms on Linux) in every batch. Counts batches of 16 pipelined PUTs that take
/// that long: with Nagle nearly all do, without it none should (each takes a few
/// milliseconds even in a debug build), so a loaded machine has room.
#[test]
fn pipelined_answers_do_not_wait_for_delayed_acks() {
    let server = TestServer::start("");
    let mut stream = connect(&server, Duration::from_secs(10));
    stream.set_nodelay(true).unwrap();
    let batch: String = (0..16).map(|index| put(&format!("p{index}"), "")).collect();
    let mut stalled = 0;
    for _ in 0..6 {
        let started = Instant::now();
        stream.write_all(batch.as_bytes()).unwrap();
        let mut seen = String::new();
        let mut chunk = [0u8; 8192];
        while seen.matches("HTTP/1.1 20").count() < 16 {
            let read = stream.read(&mut chunk).unwrap();
            assert!(read > 0, "closed after {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
        stalled += usize::from(started.elapsed() >= Duration::from_millis(40));
    }
    assert!(stalled < 3, "{stalled} of 6 batches waited 40 ms or more");
}

/// Regression: once a worker had answered HTTP/1.0 requests, later HTTP/1.1
/// keep-alive connections on it were closed after their first answer, without
/// `Connection: close` (a pooled response head kept the old request's version,
/// which reads as "close"). One worker, so every connection meets the same pool.
#[test]
fn http_1_0_answers_do_not_close_later_keep_alive_connections() {
    let server = TestServer::start("[server]\nworkers = 1\n");
    for _ in 0..3 {
        let mut old = connect(&server, Duration::from_secs(10));
        old.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
        let (reply, _) = read_until_closed(&mut old);
        assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    }
    let mut stream = connect(&server, Duration::from_secs(10));
    for round in 0..3 {
        let reply = exchange(&mut stream, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "request {round}: {reply:?}"
        );
    }
}

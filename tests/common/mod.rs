//! The black-box test harness: a real RustKV server on 127.0.0.1, port 0, in its
//! own thread and actix System, and a small blocking HTTP client for it.
//!
//! `TestServer::start` takes TOML that overrides the defaults; `start_mocked` runs
//! the store on `quanta::Clock::mock()` so TTL tests move time instead of sleeping.
//! Every response the client sees is checked against the OpenAPI document
//! (`contract`), so each test is also a contract test.

#![allow(dead_code)] // each test binary uses its own subset

pub mod contract;
pub mod process;

use std::{
    sync::{Arc, mpsc},
    thread,
    time::{Duration, SystemTime},
};

use actix_web::dev::ServerHandle;
use rustkv::{config::Config, persist::SyncHook, server::Environment};
use serde_json::Value;

/// The counters every `/v1/stats` object (totals and each partition) carries.
pub const STATS_COUNTERS: [&str; 11] = [
    "hits",
    "misses",
    "inserts",
    "updates",
    "deletes",
    "evictions_capacity",
    "evictions_memory",
    "expirations",
    "expired_reads",
    "read_drops",
    "group_messages",
];

pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    handle: ServerHandle,
    thread: Option<thread::JoinHandle<()>>,
    mock: Option<Arc<quanta::Mock>>,
    agent: ureq::Agent,
}

/// One response, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

impl TestServer {
    /// A server with the default config, changed by `toml` (tick 10 ms unless set).
    pub fn start(toml: &str) -> TestServer {
        Self::launch(toml, quanta::Clock::new(), None, |_| {})
    }

    /// As `start`, with test-only routes registered ahead of the product's.
    pub fn start_with_routes(toml: &str, extra: rustkv::server::ExtraRoutes) -> TestServer {
        Self::launch(toml, quanta::Clock::new(), None, extra)
    }

    /// As `start`, with the store on a mock clock moved by `advance`.
    pub fn start_mocked(toml: &str) -> TestServer {
        let (clock, mock) = quanta::Clock::mock();
        Self::launch(toml, clock, Some(mock), |_| {})
    }

    /// As `start_mocked`, with the wall clock reading `wall_start` at start-up and
    /// log syncs going through `sync` if given (persistence tests).
    pub fn start_at(toml: &str, wall_start: SystemTime, sync: Option<SyncHook>) -> TestServer {
        Self::try_start_at(toml, wall_start, sync).expect("server starts")
    }

    /// `start_at`, answering the start-up error instead of panicking.
    pub fn try_start_at(
        toml: &str,
        wall_start: SystemTime,
        sync: Option<SyncHook>,
    ) -> Result<TestServer, String> {
        let (clock, mock) = quanta::Clock::mock();
        let env = Environment {
            wall_start,
            sync,
            ..Environment::new(clock)
        };
        Self::launch_in(toml, env, Some(mock))
    }

    fn launch(
        toml: &str,
        clock: quanta::Clock,
        mock: Option<Arc<quanta::Mock>>,
        extra: rustkv::server::ExtraRoutes,
    ) -> TestServer {
        let env = Environment {
            extra,
            ..Environment::new(clock)
        };
        Self::launch_in(toml, env, mock).expect("server starts")
    }

    fn launch_in(
        toml: &str,
        env: Environment,
        mock: Option<Arc<quanta::Mock>>,
    ) -> Result<TestServer, String> {
        let mut config = Config::parse(toml).expect("test config parses");
        config.server.port = 0;
        // Two workers unless a test asks for one: with one, requests never run
        // beside the actors and races between readers and writers cannot show.
        config.server.workers = match config.server.workers {
            0 => 2,
            workers => workers.min(2),
        };
        if !toml.contains("tick") {
            config.store.tick = Duration::from_millis(10);
        }
        config.validate().expect("test config is valid");
        let scheme = if config.tls.enabled() {
            "https"
        } else {
            "http"
        };
        let (sender, receiver) = mpsc::channel();
        let thread = thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let running = match rustkv::server::start_in(&config, env) {
                    Ok(running) => running,
                    Err(error) => {
                        let _ = sender.send(Err(error.to_string()));
                        return;
                    }
                };
                sender
                    .send(Ok((running.addrs[0], running.server.handle())))
                    .unwrap();
                running.server.await.unwrap();
                running.store.stop();
            });
        });
        let started = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("server came up or failed");
        let (addr, handle) = match started {
            Ok(started) => started,
            Err(error) => {
                let _ = thread.join();
                return Err(error);
            }
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .max_idle_connections_per_host(64)
            .build();
        Ok(TestServer {
            base: format!("{scheme}://{addr}"),
            addr,
            handle,
            thread: Some(thread),
            mock,
            agent,
        })
    }

    /// Moves the mock clock forward (panics on a real-clock server).
    pub fn advance(&self, duration: Duration) {
        self.mock
            .as_ref()
            .expect("server runs on a mock clock")
            .increment(duration);
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut request = self.agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request.send_bytes(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: transport error {error}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .map(|name| {
                let value = response.header(&name).unwrap_or_default().to_owned();
                (name, value)
            })
            .collect();
        let body = response.into_string().expect("readable body");
        let reply = Reply {
            status,
            headers,
            body,
        };
        contract::check(method, path, &reply);
        reply
    }

    /// Sends a request and answers only its status, without the contract check:
    /// for load loops, where checking every reply would slow the load too much to
    /// reproduce a race. Panics on a transport error.
    pub fn status(&self, method: &str, path: &str, body: Option<&[u8]>) -> u16 {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Content-Type", "application/json");
        let result = match body {
            Some(body) => request.send_bytes(body),
            None => request.call(),
        };
        match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => {
                let status = response.status();
                // Read to the end so the connection goes back to the pool.
                let _ = response.into_string();
                status
            }
            Err(error) => panic!("{method} {path}: transport error {error}"),
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, &[], None)
    }

    /// `PUT /kv/insert` with a JSON body.
    pub fn insert(&self, body: Value) -> Reply {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.request(
            "PUT",
            "/kv/insert",
            &[("Content-Type", "application/json")],
            Some(&bytes),
        )
    }

    /// PyRustKV-style put: `{"key", "value", "ttl"}`; asserts success.
    pub fn put(&self, key: &str, value: Value, ttl: Option<f64>) {
        let reply = self.insert(serde_json::json!({"key": key, "value": value, "ttl": ttl}));
        assert_eq!(reply.status, 200, "insert {key}: {}", reply.body);
        assert_eq!(reply.json(), serde_json::json!({"status": "success"}));
    }

    /// PyRustKV-style read: the value, or `None` on 404.
    pub fn value(&self, key: &str) -> Option<Value> {
        let reply = self.get(&format!("/kv/{}", encode(key)));
        match reply.status {
            200 => {
                let body = reply.json();
                assert_eq!(body["key"], key);
                Some(body["value"].clone())
            }
            404 => {
                assert_eq!(reply.json(), serde_json::json!({"detail": "Key not found"}));
                None
            }
            status => panic!("GET {key}: unexpected {status} {}", reply.body),
        }
    }

    pub fn stats(&self) -> Value {
        let reply = self.get("/v1/stats");
        assert_eq!(reply.status, 200);
        reply.json()
    }

    /// Polls `/v1/stats` until `check` holds, for at most `limit`.
    pub fn wait_for_stats(&self, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let stats = self.stats();
            if check(&stats) {
                return stats;
            }
            assert!(start.elapsed() < limit, "stats never matched: {stats}");
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stopping needs an executor; a throwaway one is enough for this future.
        futures_executor(handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn futures_executor(future: impl std::future::Future<Output = ()>) {
    actix_web::rt::System::new().block_on(future);
}

/// Percent-encodes everything but unreserved characters, so any key round-trips.
pub fn encode(key: &str) -> String {
    key.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

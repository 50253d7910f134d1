//! The `rustkv` binary as a user runs it: config file, overrides, bad config,
//! and graceful shutdown on SIGINT and SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_rustkv");

fn write_config(text: &str) -> tempfile_path::Path {
    tempfile_path::Path::new(text)
}

/// A config file in the system's temporary directory, removed on drop.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);

    impl Path {
        pub fn new(text: &str) -> Self {
            let name = format!(
                "rustkv-test-{}-{:?}.toml",
                std::process::id(),
                std::thread::current().id()
            );
            let path = std::env::temp_dir().join(name.replace(['(', ')'], ""));
            std::fs::write(&path, text).unwrap();
            Path(path)
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// The binary, started on port 0 with `config` and `args`: it picks its own port and
/// names it in its "listening on" log line. (A port picked beforehand can be taken by
/// another test's server before this one binds it, and its requests then reach the
/// wrong server.) Its log is collected as it comes.
struct Running {
    child: Child,
    port: u16,
    log: mpsc::Receiver<String>,
}

impl Running {
    fn start(config: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(BINARY)
            .arg("--config")
            .arg(config)
            .args(["--port", "0"])
            .args(args)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, log) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let mut running = Running {
            child,
            port: 0,
            log,
        };
        running.port = running.listening_port();
        running
    }

    /// Reads the log up to the "listening on [addr, ...]" line; the first address's port.
    fn listening_port(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .expect("the server logs where it listens");
            if let Some(addrs) = line.split("listening on [").nth(1) {
                let first = addrs.split([',', ']']).next().unwrap();
                return first.rsplit(':').next().unwrap().parse().unwrap();
            }
        }
    }

    /// The log lines not read yet, up to the process's exit.
    fn rest_of_log(self) -> Vec<String> {
        self.log.iter().collect()
    }
}

#[test]
fn invalid_config_stops_startup_naming_the_key() {
    let config = write_config("[store]\ncapacity = 0\n");
    let output = Command::new(BINARY)
        .arg("--config")
        .arg(&config.0)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store.capacity"), "{stderr}");

    let output = Command::new(BINARY)
        .args(["--config", "/nonexistent/rustkv.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/rustkv.toml"));

    let config = write_config("[server]\nprot = 1\n");
    let output = Command::new(BINARY)
        .arg("--config")
        .arg(&config.0)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("prot"));
}

fn serve_then_signal(signal: &str) {
    serve_then_signal_with(signal, "");
}

/// Starts the binary with `extra` config, writes a key, signals it, checks it
/// exits 0 with its stop logged; answers the log.
fn serve_then_signal_with(signal: &str, extra: &str) -> Vec<String> {
    let config = write_config(&format!(
        "[store]\ncapacity = 5\n[log]\nlevel = \"info\"\n{extra}"
    ));
    let mut running = Running::start(&config.0, &["--capacity", "7"], &[]);
    let port = running.port;
    let body = r#"{"key":"k","value":[1,2]}"#;
    let put = format!(
        "PUT /kv/insert HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert!(http(port, &put).starts_with("HTTP/1.1 200"));
    let stats = http(
        port,
        "GET /v1/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(
        stats.contains("\"capacity\":7"),
        "--capacity overrides the file: {stats}"
    );
    Command::new("kill")
        .args([&format!("-{signal}"), &running.child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIG{signal}");
    let log = running.rest_of_log();
    assert!(
        log.iter()
            .any(|line| line.contains(&format!("SIG{signal} received"))),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|line| line.contains("rustkv stopped")),
        "{log:#?}"
    );
    log
}

/// With persistence on, a graceful stop syncs the logs before exit 0, and the next
/// start finds what was written.
#[test]
fn sigterm_with_persistence_syncs_and_the_next_start_finds_the_data() {
    let dir = std::env::temp_dir().join(format!("rustkv-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let extra = format!(
        "[persistence]\nmode = \"aof\"\nfsync = \"no\"\ndir = \"{}\"\n",
        dir.display()
    );
    let log = serve_then_signal_with("TERM", &extra);
    assert!(
        log.iter().any(|line| line.contains("(logs synced)")),
        "{log:#?}"
    );
    let config = write_config(&extra);
    let mut running = Running::start(&config.0, &[], &[]);
    let found = http(
        running.port,
        "GET /kv/k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    running.child.kill().unwrap();
    let _ = running.child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(found.starts_with("HTTP/1.1 200"), "{found}");
    assert!(found.contains("[1,2]"), "{found}");
}

#[test]
fn sigterm_stops_gracefully_with_exit_0() {
    serve_then_signal("TERM");
}

#[test]
fn sigint_stops_gracefully_with_exit_0() {
    serve_then_signal("INT");
}

/// The binary still takes its token from `RUSTKV_TOKEN` (read by `Config::load`),
/// over the config file's; set in the child's environment only.
#[test]
fn rustkv_token_from_the_environment_guards_routes() {
    let config = write_config("[auth]\ntoken = \"from-the-file\"\n");
    let env = [("RUSTKV_TOKEN", "from-the-environment")];
    let mut running = Running::start(&config.0, &[], &env);
    let port = running.port;
    let stats = |authorization: &str| {
        http(
            port,
            &format!(
                "GET /v1/stats HTTP/1.1\r\nHost: t\r\n{authorization}Connection: close\r\n\r\n"
            ),
        )
    };
    let without = stats("");
    let file_token = stats("Authorization: Bearer from-the-file\r\n");
    let env_token = stats("Authorization: Bearer from-the-environment\r\n");
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(file_token.starts_with("HTTP/1.1 401"), "{file_token}");
    assert!(env_token.starts_with("HTTP/1.1 200"), "{env_token}");
}

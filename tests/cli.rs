//! The `rustkv` binary as a user runs it: config file, overrides, bad config,
//! and graceful shutdown on SIGINT and SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_rustkv");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

fn wait_until_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
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
    let port = free_port();
    let config = write_config(&format!(
        "[store]\ncapacity = 5\n[log]\nlevel = \"info\"\n{extra}"
    ));
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(&config.0)
        .args(["--port", &port.to_string(), "--capacity", "7"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_listening(port);
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
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit status after SIG{signal}");
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
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
    let port = free_port();
    let config = write_config(&extra);
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(&config.0)
        .args(["--port", &port.to_string()])
        .env_remove("RUST_LOG")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(port);
    let found = http(
        port,
        "GET /kv/k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    child.kill().unwrap();
    let _ = child.wait();
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
    let port = free_port();
    let config = write_config("[auth]\ntoken = \"from-the-file\"\n");
    let mut child = Command::new(BINARY)
        .arg("--config")
        .arg(&config.0)
        .args(["--port", &port.to_string()])
        .env("RUSTKV_TOKEN", "from-the-environment")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(port);
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
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(file_token.starts_with("HTTP/1.1 401"), "{file_token}");
    assert!(env_token.starts_with("HTTP/1.1 200"), "{env_token}");
}

//! The real `rustkv` binary as a child process, for tests that need what the
//! in-process `TestServer` cannot give: a `kill -9`, a restart on the same data
//! directory, the binary's own start-up.
//!
//! `Server::start` runs the binary with `--port 0` and learns the port from its
//! "rustkv listening on [...]" log line, so no port is guessed or raced for. Its
//! stderr is drained on a thread (a full pipe would stall the server) and the last
//! lines are kept for failure messages. Dropping a `Server` kills the process, so a
//! failing test leaves none behind.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, ChildStderr, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Duration,
};

pub const BINARY: &str = env!("CARGO_BIN_EXE_rustkv");

/// How long the binary may take to listen (recovery included) before the test fails.
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// Log lines kept for failure messages.
const LOG_LINES_KEPT: usize = 200;

/// What the binary logs once it listens, followed by `[addr, ...]`.
const LISTENING: &str = "rustkv listening on [";

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `rustkv` binary.
pub struct Server {
    child: ChildGuard,
    pub addr: SocketAddr,
    /// `http://addr`, for building URLs.
    pub base: String,
    /// The last lines of its stderr.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts the binary with `--config config --port 0` and waits (at most
    /// `START_DEADLINE`) until it listens. Panics with its log if it does not.
    pub fn start(config: &Path) -> Server {
        Self::try_start(config).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// As `start`, answering why it did not listen (with its log) instead of panicking.
    pub fn try_start(config: &Path) -> Result<Server, String> {
        let child = Command::new(BINARY)
            .arg("--config")
            .arg(config)
            .args(["--port", "0"])
            // The listening line is logged at info; RUST_LOG would win over the file.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {BINARY}: {error}"));
        let mut child = ChildGuard(child);
        let stderr = child.0.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (sender, receiver) = mpsc::channel();
        let kept = Arc::clone(&log);
        thread::spawn(move || drain(stderr, &kept, sender));
        let addr = match receiver.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(error) => {
                let exit = child.0.try_wait().ok().flatten();
                return Err(format!(
                    "rustkv did not listen within {START_DEADLINE:?} ({error}; exit status \
                     {exit:?}); its log:\n{}",
                    tail(&log)
                ));
            }
        };
        Ok(Server {
            child,
            addr,
            base: format!("http://{addr}"),
            log,
        })
    }

    /// Kills the process with SIGKILL (`kill -9`: no shutdown code runs) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.0.kill().expect("SIGKILL is delivered");
        self.child.0.wait().expect("the child is reaped")
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Sends a signal by name (`"HUP"`, `"TERM"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Waits at most `limit` for the process to exit on its own.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self
                .child
                .0
                .try_wait()
                .expect("the child can be waited for")
            {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits at most `limit` for a log line containing `text`.
    pub fn wait_for_log(&self, text: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if tail(&self.log).contains(text) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The last lines the process wrote to stderr.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

fn tail(log: &Mutex<VecDeque<String>>) -> String {
    let lines = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    lines
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads stderr to its end, keeping the last lines and sending the first listening
/// address found. Ends (dropping `sender`) when the process closes stderr.
fn drain(stderr: ChildStderr, log: &Mutex<VecDeque<String>>, sender: mpsc::Sender<SocketAddr>) {
    let mut sender = Some(sender);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(addr) = listening_addr(&line)
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(addr);
        }
        let mut lines = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == LOG_LINES_KEPT {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// The first address of a "rustkv listening on [127.0.0.1:8000, ...]" line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let list = &rest[..rest.find(']')?];
    list.split(", ").next()?.parse().ok()
}

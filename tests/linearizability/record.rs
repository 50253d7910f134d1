//! Recording a history against a running server: client threads run a workload on
//! the native API for a bounded time and number of operations, each request timed on
//! `Instant` (µs since the run started; calls rounded down, returns up, so intervals
//! only widen). A request that times out or fails in transport is recorded with no
//! answer; any status the API does not document for the request fails the test.

use std::{
    thread,
    time::{Duration, Instant},
};

use rand::{SeedableRng, rngs::StdRng};

use crate::{
    common::encode,
    history::{Input, Op, Output},
};

/// How long a client waits for an answer before it records none.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A workload: which request each client makes next.
pub struct Workload<'w> {
    pub clients: usize,
    pub keys: &'w [&'w str],
    pub duration: Duration,
    /// The most operations one client makes.
    pub max_ops: usize,
    /// The next request of a client (`client`, and what it knows) on a key.
    pub next: &'w (dyn Fn(&mut Client) -> (usize, Input) + Sync),
}

/// One client's view: its number, its random source and the last version it saw of
/// each key (the `If-Match` it will send).
pub struct Client {
    pub id: usize,
    pub rng: StdRng,
    pub seen: Vec<Option<u64>>,
    issued: usize,
}

impl Client {
    /// A value no other write in the run uses, so every read names its write.
    pub fn fresh_value(&mut self) -> String {
        self.issued += 1;
        format!("c{}-{}", self.id, self.issued)
    }
}

/// Runs `workload` against `base` (`http://host:port`); every client's operations.
pub fn record(base: &str, start: Instant, workload: &Workload) -> Vec<Op> {
    let agent = ureq::AgentBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_idle_connections_per_host(64)
        .build();
    let mut history: Vec<Op> = thread::scope(|scope| {
        let clients: Vec<_> = (0..workload.clients)
            .map(|id| {
                let agent = agent.clone();
                scope.spawn(move || run_client(&agent, base, start, workload, id))
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|client| client.join().expect("client thread"))
            .collect()
    });
    history.sort_by_key(|op| op.call);
    history
}

fn run_client(
    agent: &ureq::Agent,
    base: &str,
    start: Instant,
    workload: &Workload,
    id: usize,
) -> Vec<Op> {
    let mut client = Client {
        id,
        rng: StdRng::seed_from_u64(0x11ea_0000 + id as u64),
        seen: vec![None; workload.keys.len()],
        issued: 0,
    };
    let mut ops = Vec::with_capacity(workload.max_ops);
    while ops.len() < workload.max_ops && start.elapsed() < workload.duration {
        let (key, input) = (workload.next)(&mut client);
        let op = perform(agent, base, start, id, workload.keys[key], input);
        client.seen[key] = match op.output {
            Output::Found { version, .. } | Output::Written { version, .. } => Some(version),
            Output::PreconditionFailed { current } => current,
            Output::Missing | Output::Deleted { .. } => None,
            Output::Unknown => client.seen[key],
        };
        ops.push(op);
    }
    ops
}

/// Sends one request and records it.
pub fn perform(
    agent: &ureq::Agent,
    base: &str,
    start: Instant,
    client: usize,
    key: &str,
    input: Input,
) -> Op {
    let url = format!("{base}/v1/kv/{}", encode(key));
    let call = start.elapsed().as_micros() as u64;
    let result = send(agent, &url, &input);
    let ret = start.elapsed().as_nanos().div_ceil(1000) as u64;
    let (ret, output) = match result {
        Some(response) => (Some(ret), answer(&input, response)),
        None => (None, Output::Unknown),
    };
    Op {
        client,
        key: key.to_owned(),
        call,
        ret,
        input,
        output,
    }
}

/// The response, whatever its status; `None` on a timeout or transport error.
fn send(agent: &ureq::Agent, url: &str, input: &Input) -> Option<ureq::Response> {
    let put = |value: &str| {
        let body = serde_json::to_string(value).expect("serializes");
        (agent.put(url).set("Content-Type", "application/json"), body)
    };
    let result = match input {
        Input::Get => agent.get(url).call(),
        Input::Delete => agent.delete(url).call(),
        Input::Put { value } => {
            let (request, body) = put(value);
            request.send_string(&body)
        }
        Input::PutIfMatch { expected, value } => {
            let (request, body) = put(value);
            request
                .set("If-Match", &format!("\"{expected}\""))
                .send_string(&body)
        }
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Some(response),
        Err(ureq::Error::Transport(_)) => None,
    }
}

/// What the server's response says, in the history's terms.
fn answer(input: &Input, response: ureq::Response) -> Output {
    let status = response.status();
    let version = etag(&response);
    let body = response.into_string().expect("readable body");
    match (input, status) {
        (Input::Get, 200) => Output::Found {
            read: serde_json::from_str(&body).expect("a value this run wrote"),
            version: version.expect("GET 200 has an ETag"),
        },
        (Input::Get, 404) => Output::Missing,
        (Input::Put { .. } | Input::PutIfMatch { .. }, 200 | 201) => Output::Written {
            version: version.expect("PUT 200/201 has an ETag"),
            created: status == 201,
        },
        (Input::PutIfMatch { .. }, 412) => Output::PreconditionFailed {
            current: current_version(&body),
        },
        (Input::Delete, 204 | 404) => Output::Deleted {
            existed: status == 204,
        },
        _ => panic!("{input:?}: unexpected {status} {body}"),
    }
}

fn etag(response: &ureq::Response) -> Option<u64> {
    let tag = response.header("ETag")?;
    tag.trim_matches('"').parse().ok()
}

/// The current version a 412 names in its detail: "... current version is 12", or
/// "... is none (absent)". The body is the only place the server reports it.
fn current_version(body: &str) -> Option<u64> {
    let detail: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
    let detail = detail["detail"].as_str().expect("a detail");
    let last = detail.rsplit(' ').next().unwrap_or_default();
    if detail.ends_with("none (absent)") {
        None
    } else {
        Some(
            last.parse()
                .unwrap_or_else(|_| panic!("412 detail: {detail}")),
        )
    }
}

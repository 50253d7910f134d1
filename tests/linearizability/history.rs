//! A history: the operations clients ran on the native API, each with what it asked,
//! what it was told, and when it was invoked and answered (µs since the run started).
//!
//! An operation without an answer (timeout, transport error) has `ret: None`: it may
//! have taken effect at any time after `call`, or never. Histories are saved as JSON,
//! one operation a line, so a recorded one can become a test fixture.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Input {
    /// `GET /v1/kv/{key}`.
    Get,
    /// `PUT /v1/kv/{key}`, unconditional.
    Put { value: String },
    /// `PUT /v1/kv/{key}` with `If-Match: "expected"`: compare-and-set.
    PutIfMatch { expected: u64, value: String },
    /// `DELETE /v1/kv/{key}`, unconditional.
    Delete,
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "is", rename_all = "snake_case")]
pub enum Output {
    /// GET 200: the value and its `ETag`.
    Found { read: String, version: u64 },
    /// GET 404.
    Missing,
    /// PUT 201 (`created`) or 200, with the new version.
    Written { version: u64, created: bool },
    /// PUT 412, with the version the server said the key had (`None`: absent).
    PreconditionFailed { current: Option<u64> },
    /// DELETE 204 (`existed`) or 404.
    Deleted { existed: bool },
    /// No answer: the operation may or may not have happened.
    Unknown,
}

/// One operation of one client on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub key: String,
    /// When the request was sent, µs (rounded down).
    pub call: u64,
    /// When the answer arrived, µs (rounded up); `None` if it never did.
    pub ret: Option<u64>,
    pub input: Input,
    pub output: Output,
}

impl Op {
    /// The return time, with "never" as +infinity.
    pub fn ret_or_never(&self) -> u64 {
        self.ret.unwrap_or(u64::MAX)
    }

    /// True if the two intervals overlap (equal endpoints count as overlapping).
    pub fn overlaps(&self, other: &Op) -> bool {
        self.call <= other.ret_or_never() && other.call <= self.ret_or_never()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self
            .ret
            .map_or_else(|| "never".to_owned(), |ret| ret.to_string());
        write!(
            f,
            "[{:>8} µs, {:>8}] client {} ",
            self.call, ret, self.client
        )?;
        match &self.input {
            Input::Get => write!(f, "GET"),
            Input::Put { value } => write!(f, "PUT {value:?}"),
            Input::PutIfMatch { expected, value } => {
                write!(f, "PUT {value:?} If-Match v{expected}")
            }
            Input::Delete => write!(f, "DELETE"),
        }?;
        match &self.output {
            Output::Found { read, version } => write!(f, " -> {read:?} v{version}"),
            Output::Missing => write!(f, " -> 404"),
            Output::Written { version, created } => {
                write!(f, " -> {} v{version}", if *created { 201 } else { 200 })
            }
            Output::PreconditionFailed { current: Some(v) } => write!(f, " -> 412, current v{v}"),
            Output::PreconditionFailed { current: None } => write!(f, " -> 412, absent"),
            Output::Deleted { existed } => write!(f, " -> {}", if *existed { 204 } else { 404 }),
            Output::Unknown => write!(f, " -> no answer"),
        }
    }
}

/// The history as a JSON array, one operation a line.
pub fn to_json(ops: &[Op]) -> String {
    let lines: Vec<String> = ops
        .iter()
        .map(|op| serde_json::to_string(op).expect("serializes"))
        .collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

pub fn from_json(text: &str) -> Vec<Op> {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not a history: {error}"))
}

#[test]
fn histories_round_trip_through_json() {
    let op = |call, ret, input, output| Op {
        client: 1,
        key: "k".to_owned(),
        call,
        ret,
        input,
        output,
    };
    let ops = vec![
        op(
            0,
            Some(5),
            Input::Put { value: "a".into() },
            Output::Written {
                version: 1,
                created: true,
            },
        ),
        op(
            6,
            None,
            Input::PutIfMatch {
                expected: 1,
                value: "b".into(),
            },
            Output::Unknown,
        ),
        op(
            7,
            Some(9),
            Input::Get,
            Output::Found {
                read: "a".into(),
                version: 1,
            },
        ),
        op(8, Some(9), Input::Delete, Output::Deleted { existed: true }),
        op(10, Some(11), Input::Get, Output::Missing),
    ];
    let text = to_json(&ops);
    assert_eq!(
        text.lines().count(),
        ops.len() + 2,
        "one operation a line: {text}"
    );
    assert_eq!(from_json(&text), ops);
}

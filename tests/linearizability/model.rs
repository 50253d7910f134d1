//! The sequential specification of one key: a register holding `Option<(value,
//! version)>`, and `step`, which says what states an operation may leave it in.
//!
//! Versions come from the server's per-partition counter, so a key's versions jump
//! (other keys share the counter) but strictly increase in the order its writes take
//! effect, across deletes too. The model therefore does not predict a write's version:
//! it takes the one the server returned and checks that it is above every version the
//! key had before (`floor`). A GET must return exactly the register's value and version.
//!
//! A write without an answer leaves a version nobody was told ([`Version::Unknown`]);
//! the first answer that reveals it (a GET's `ETag`, a 412's current version, an
//! `If-Match` that succeeded) binds it. That is why `step` may return two states: a
//! compare-and-set without an answer, against an unknown version, may or may not match.

use crate::history::{Input, Op, Output};

/// A version, as far as the clients know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Known(u64),
    /// Written by an operation that got no answer: some number above `floor`.
    Unknown,
}

/// The state of one key. Values borrow from the history, so states are cheap to copy
/// and hash in the search's memo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Register<'h> {
    pub current: Option<(&'h str, Version)>,
    /// The highest version the key is known to have had; every later write is above it.
    pub floor: u64,
}

impl<'h> Register<'h> {
    /// The states `op` may leave the register in; empty if its answer is impossible here.
    pub fn step(self, op: &'h Op) -> Vec<Register<'h>> {
        match op.output {
            Output::Unknown => self.step_unanswered(&op.input),
            _ => self
                .step_answered(&op.input, &op.output)
                .into_iter()
                .collect(),
        }
    }

    fn step_answered(self, input: &'h Input, output: &Output) -> Option<Register<'h>> {
        match (input, output) {
            (Input::Get, Output::Missing) => self.current.is_none().then_some(self),
            (Input::Get, Output::Found { read, version }) => self
                .observe(*version)
                .filter(|_| self.current.is_some_and(|(value, _)| value == read)),
            (Input::Put { value }, Output::Written { version, created }) => {
                let fits = *created == self.current.is_none();
                fits.then_some(self)?.write(value, *version)
            }
            (Input::PutIfMatch { expected, value }, Output::Written { version, created }) => {
                let matched = self.observe(*expected).filter(|_| !*created)?;
                matched.write(value, *version)
            }
            (Input::PutIfMatch { expected, .. }, Output::PreconditionFailed { current }) => {
                self.refuse(*expected, *current)
            }
            (Input::Delete, Output::Deleted { existed }) => {
                let fits = *existed == self.current.is_some();
                fits.then_some(Register {
                    current: None,
                    ..self
                })
            }
            _ => None, // an answer of the wrong kind for the request
        }
    }

    /// The register after a write that the server answered with `version`.
    fn write(self, value: &'h str, version: u64) -> Option<Register<'h>> {
        (version > self.floor).then_some(Register {
            current: Some((value, Version::Known(version))),
            floor: version,
        })
    }

    /// The register if its current version is `version` (binding an unknown one).
    fn observe(self, version: u64) -> Option<Register<'h>> {
        match self.current? {
            (_, Version::Known(known)) => (known == version).then_some(self),
            (value, Version::Unknown) => (version > self.floor).then_some(Register {
                current: Some((value, Version::Known(version))),
                floor: version,
            }),
        }
    }

    /// The register if an `If-Match: expected` may fail with a 412 naming `current`.
    fn refuse(self, expected: u64, current: Option<u64>) -> Option<Register<'h>> {
        match current {
            None => self.current.is_none().then_some(self),
            Some(current) if current != expected => self.observe(current),
            Some(_) => None, // the server refused the version it reports as current
        }
    }

    /// An operation without an answer: any effect its request could have had.
    fn step_unanswered(self, input: &'h Input) -> Vec<Register<'h>> {
        let unknown = |value: &'h str| Register {
            current: Some((value, Version::Unknown)),
            floor: self.floor,
        };
        match input {
            Input::Get => vec![self],
            Input::Put { value } => vec![unknown(value)],
            Input::Delete => vec![Register {
                current: None,
                ..self
            }],
            Input::PutIfMatch { expected, value } => match self.current {
                None => vec![self],
                Some((_, Version::Known(known))) if known == *expected => vec![unknown(value)],
                Some((_, Version::Known(_))) => vec![self],
                // Unknown: it matched (and `expected` was that version) or it did not.
                Some((_, Version::Unknown)) => {
                    let mut states = vec![self];
                    if *expected > self.floor {
                        states.push(unknown(value));
                    }
                    states
                }
            },
        }
    }
}

//! The ops of batches and transactions in JSON: reading them (every limit of a
//! single-key request, checked for each op, with the op's place in the error)
//! and writing their results.
//!
//! An op is `{"op": "get"|"put"|"delete", "key": K, "value": V, "ttl": S,
//! "if_match": "\"N\"", "if_none_match": "*"}`; which fields an op takes depends
//! on its kind, and any other field is an error. A result is
//! `{"status": N, "value": V, "version": N}` or, for an op that did not happen,
//! `{"status": N, "error": code, "detail": text}` as the native routes answer.

use std::fmt::Write as _;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{
    Limits,
    error::{ApiError, Dialect},
    input,
};
use crate::store::{
    Delete, Entry, Precondition, Put,
    op::{Op, Outcome},
};

/// One op as sent. `value` is kept as raw JSON text (stored as sent, and `null`
/// is a value, not an absent field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpJson<'a> {
    op: String,
    key: String,
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    ttl: Option<f64>,
    if_match: Option<String>,
    if_none_match: Option<String>,
}

/// Reads `text` as the JSON object `T`, described as `what` in errors. serde
/// would also read a struct from an array of its fields in order, which no
/// client means: only an object is taken.
pub fn object<'a, T: Deserialize<'a>>(text: &'a str, what: &str) -> Result<T, ApiError> {
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::InvalidBody(format!(
            "{what} must be a JSON object"
        )));
    }
    serde_json::from_str(text)
        .map_err(|error| ApiError::InvalidBody(format!("not {what}: {error}")))
}

/// Reads a field that is there, `null` included, as `Some`.
pub fn present<'de, D: Deserializer<'de>>(from: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(from).map(Some)
}

/// Reads `raw` as a list of ops named `{name}[i]` in errors. The count is checked
/// by the caller against its own limit.
pub fn parse_ops(raw: &[&RawValue], name: &str, limits: &Limits) -> Result<Vec<Op>, ApiError> {
    let at = |index: usize, source: ApiError| ApiError::At {
        at: format!("{name}[{index}]"),
        source: Box::new(source),
    };
    raw.iter()
        .enumerate()
        .map(|(index, op)| parse_op(op, limits).map_err(|error| at(index, error)))
        .collect()
}

fn parse_op(raw: &RawValue, limits: &Limits) -> Result<Op, ApiError> {
    let op: OpJson<'_> = object(raw.get(), "an op")?;
    input::check_key(&op.key, limits)?;
    let takes_none = |field: &str, given: bool| match given {
        true => Err(ApiError::InvalidBody(format!(
            "a {} op takes no `{field}`",
            op.op
        ))),
        false => Ok(()),
    };
    let precondition = || -> Result<Precondition, ApiError> {
        let tags = |text: &Option<String>, strong_only: bool, field: &str| {
            text.as_deref()
                .map(|text| input::tag_list(text.as_bytes(), strong_only))
                .transpose()
                .map_err(|error| ApiError::InvalidHeader(format!("{field}: {error}")))
        };
        Ok(Precondition {
            if_match: tags(&op.if_match, true, "if_match")?,
            if_none_match: tags(&op.if_none_match, false, "if_none_match")?,
        })
    };
    match op.op.as_str() {
        "get" => {
            takes_none("value", op.value.is_some())?;
            takes_none("ttl", op.ttl.is_some())?;
            takes_none("if_match", op.if_match.is_some())?;
            takes_none("if_none_match", op.if_none_match.is_some())?;
            Ok(Op::Get { key: op.key.into() })
        }
        "put" => {
            let value = op
                .value
                .ok_or_else(|| ApiError::InvalidBody("a put op needs a `value`".into()))?;
            input::check_value(value.get().as_bytes(), limits)?;
            let ttl = op
                .ttl
                .map(|ttl| input::ttl_nanos(ttl, limits))
                .transpose()?;
            Ok(Op::Put(Put {
                entry: Entry::new(&op.key, value.get().as_bytes()),
                ttl,
                precondition: precondition()?,
            }))
        }
        "delete" => {
            takes_none("value", op.value.is_some())?;
            takes_none("ttl", op.ttl.is_some())?;
            let precondition = precondition()?;
            if precondition
                .if_none_match
                .as_ref()
                .is_some_and(|tags| *tags != crate::store::Tags::Any)
            {
                return Err(ApiError::InvalidHeader(
                    "if_none_match on a delete supports only *".into(),
                ));
            }
            Ok(Op::Delete(Delete {
                key: op.key.into(),
                precondition,
            }))
        }
        other => Err(ApiError::InvalidBody(format!(
            "unknown op {other:?}: expected \"get\", \"put\" or \"delete\""
        ))),
    }
}

/// Appends the JSON array of `outcomes` to `out`.
pub fn write_results(out: &mut String, outcomes: &[Outcome]) {
    out.push('[');
    for (index, outcome) in outcomes.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_result(out, outcome);
    }
    out.push(']');
}

fn write_result(out: &mut String, outcome: &Outcome) {
    let failed = |out: &mut String, error: ApiError| {
        let (status, code) = error.status(Dialect::Native);
        let detail = serde_json::to_string(&error.to_string()).expect("a string serializes");
        let _ = write!(
            out,
            r#"{{"status":{},"error":"{code}","detail":{detail}}}"#,
            status.as_u16()
        );
    };
    match outcome {
        Outcome::Found(entry) => {
            // Stored values are validated JSON text, written as they are.
            let value = std::str::from_utf8(entry.value()).expect("stored JSON is UTF-8");
            let _ = write!(
                out,
                r#"{{"status":200,"value":{value},"version":{}}}"#,
                entry.version()
            );
        }
        Outcome::Missing => failed(out, ApiError::KeyNotFound),
        Outcome::Written(written) => {
            let status = if written.created { 201 } else { 200 };
            let _ = write!(
                out,
                r#"{{"status":{status},"version":{}}}"#,
                written.version
            );
        }
        Outcome::Deleted(_) => out.push_str(r#"{"status":204}"#),
        Outcome::Failed(error) => failed(out, ApiError::from(error.clone())),
    }
}

//! The ops of batches and transactions in JSON: reading them (every limit of a
//! single-key request, checked for each op, with the op's place in the error)
//! and writing their results.
//!
//! An op is `{"op": "get"|"put"|"delete", "key": K, "value": V, "ttl": S,
//! "if_match": "\"N\"", "if_none_match": "*"}`; which fields an op takes depends
//! on its kind, and any other field is an error. A result is
//! `{"status": N, "value": V, "version": N}` or, for an op that did not happen,
//! `{"status": N, "error": code, "detail": text}` as the native routes answer.

use std::{borrow::Cow, fmt, marker::PhantomData};

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor, value::MapAccessDeserializer},
};
use serde_json::value::RawValue;

use super::{
    Limits,
    error::{ApiError, Dialect},
    input,
};
use crate::store::{
    Delete, Entry, Precondition, Put,
    op::{BatchOp, Op, Outcome},
};

/// One op as sent. `value` is kept as raw JSON text (stored as sent, and `null`
/// is a value, not an absent field); strings are borrowed from the body unless
/// they hold escapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpJson<'a> {
    op: Kind,
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<&'a RawValue>,
    ttl: Option<f64>,
    #[serde(borrow)]
    if_match: Option<Cow<'a, str>>,
    #[serde(borrow)]
    if_none_match: Option<Cow<'a, str>>,
}

/// An op's `op` field. An enum rather than the string: serde matches the name as
/// it reads it, where a string was borrowed (or copied, with escapes) and then
/// matched again (~130 instructions an op, callgrind, batch GET).
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Get,
    Put,
    Delete,
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Kind::Get => "get",
            Kind::Put => "put",
            Kind::Delete => "delete",
        })
    }
}

/// `T`, read only from a JSON object. serde's derive also reads a struct from an
/// array of its fields in order, which no client means.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(from: D) -> Result<Self, D::Error> {
        struct Fields<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        from.deserialize_map(Fields(PhantomData)).map(Object)
    }
}

/// Reads `text` as the JSON object `T`, described as `what` in errors.
pub fn object<'a, T: Deserialize<'a>>(text: &'a str, what: &str) -> Result<T, ApiError> {
    serde_json::from_str::<Object<T>>(text)
        .map(|Object(value)| value)
        .map_err(|error| ApiError::InvalidBody(format!("not {what}: {error}")))
}

/// Reads a field that is there, `null` included, as `Some`.
pub fn present<'de, D: Deserializer<'de>>(from: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(from).map(Some)
}

/// Checks ops read in one pass with the whole body; errors name `{name}[i]`.
/// Gets keep borrowing their keys from the body.
pub fn check_ops<'a>(
    ops: Vec<Object<OpJson<'a>>>,
    name: &str,
    limits: &Limits,
) -> Result<Vec<BatchOp<'a>>, ApiError> {
    ops.into_iter()
        .enumerate()
        .map(|(index, Object(op))| check_op(op, limits).map_err(|error| at(name, index, error)))
        .collect()
}

/// The error of the first op of `raw` that does not parse, named `{name}[i]`: a
/// one-pass parse of a whole body says what is wrong, not in which op.
pub fn locate(raw: &[&RawValue], name: &str) -> Option<ApiError> {
    raw.iter().enumerate().find_map(|(index, op)| {
        let error = object::<OpJson<'_>>(op.get(), "an op").err()?;
        Some(at(name, index, error))
    })
}

/// `source`, as the error of the `index`-th element of the list `name`.
pub fn at(name: &str, index: usize, source: ApiError) -> ApiError {
    ApiError::At {
        at: format!("{name}[{index}]"),
        source: Box::new(source),
    }
}

/// Reads `raw` as a list of ops named `{name}[i]` in errors. The count is checked
/// by the caller against its own limit.
pub fn parse_ops(raw: &[&RawValue], name: &str, limits: &Limits) -> Result<Vec<Op>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(index, op)| {
            let parsed = object::<OpJson<'_>>(op.get(), "an op");
            parsed
                .and_then(|op| check_op(op, limits))
                .map(BatchOp::into_op)
                .map_err(|error| at(name, index, error))
        })
        .collect()
}

fn check_op<'a>(op: OpJson<'a>, limits: &Limits) -> Result<BatchOp<'a>, ApiError> {
    input::check_key(&op.key, limits)?;
    let takes_none = |field: &str, given: bool| match given {
        true => Err(ApiError::InvalidBody(format!(
            "a {} op takes no `{field}`",
            op.op
        ))),
        false => Ok(()),
    };
    let precondition = || -> Result<Precondition, ApiError> {
        let tags = |text: &Option<Cow<'_, str>>, strong_only: bool, field: &str| {
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
    match op.op {
        Kind::Get => {
            takes_none("value", op.value.is_some())?;
            takes_none("ttl", op.ttl.is_some())?;
            takes_none("if_match", op.if_match.is_some())?;
            takes_none("if_none_match", op.if_none_match.is_some())?;
            Ok(BatchOp::Get(op.key))
        }
        Kind::Put => {
            let value = op
                .value
                .ok_or_else(|| ApiError::InvalidBody("a put op needs a `value`".into()))?;
            input::check_value(value.get().as_bytes(), limits)?;
            let ttl = op
                .ttl
                .map(|ttl| input::ttl_nanos(ttl, limits))
                .transpose()?;
            Ok(BatchOp::Op(Op::Put(Put {
                entry: Entry::for_ttl(&op.key, value.get().as_bytes(), ttl),
                ttl,
                precondition: precondition()?,
            })))
        }
        Kind::Delete => {
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
            Ok(BatchOp::Op(Op::Delete(Delete {
                key: op.key.as_ref().into(),
                precondition,
            })))
        }
    }
}

/// A result's bytes besides its value: `{"status":200,"value":`, `,"version":`, 20
/// digits, `}` and the comma.
const RESULT_BYTES: usize = 55;

/// A response body: `head` (the object's opening, up to `"results":`), the JSON
/// array of `outcomes`, and the closing brace.
pub fn results_body(head: &[u8], outcomes: &[Outcome]) -> Vec<u8> {
    // Sized for the values found: a guess per result grew the buffer (a copy of
    // all written so far) once values passed the guess.
    let values: usize = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Found(entry) => entry.value().len(),
            _ => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(head.len() + 3 + values + outcomes.len() * RESULT_BYTES);
    out.extend_from_slice(head);
    write_results(&mut out, outcomes);
    out.push(b'}');
    out
}

/// Appends the JSON array of `outcomes` to `out`.
fn write_results(out: &mut Vec<u8>, outcomes: &[Outcome]) {
    out.push(b'[');
    for (index, outcome) in outcomes.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_result(out, outcome);
    }
    out.push(b']');
}

fn write_result(out: &mut Vec<u8>, outcome: &Outcome) {
    let mut digits = itoa::Buffer::new();
    match outcome {
        Outcome::Found(entry) => {
            // Stored values are validated JSON text, written as they are.
            out.extend_from_slice(br#"{"status":200,"value":"#);
            out.extend_from_slice(entry.value());
            out.extend_from_slice(br#","version":"#);
            out.extend_from_slice(digits.format(entry.version()).as_bytes());
            out.push(b'}');
        }
        Outcome::Written(written) => {
            let status: &[u8] = if written.created {
                br#"{"status":201,"version":"#
            } else {
                br#"{"status":200,"version":"#
            };
            out.extend_from_slice(status);
            out.extend_from_slice(digits.format(written.version).as_bytes());
            out.push(b'}');
        }
        Outcome::Deleted(_) => out.extend_from_slice(br#"{"status":204}"#),
        Outcome::Missing => failed(out, &ApiError::KeyNotFound),
        Outcome::Failed(error) => failed(out, &ApiError::from(error.clone())),
    }
}

/// An op that did not happen: its status, and the native routes' error fields.
fn failed(out: &mut Vec<u8>, error: &ApiError) {
    let (status, code) = error.status(Dialect::Native);
    out.extend_from_slice(br#"{"status":"#);
    out.extend_from_slice(itoa::Buffer::new().format(status.as_u16()).as_bytes());
    out.extend_from_slice(br#","error":""#);
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(br#"","detail":"#);
    serde_json::to_writer(&mut *out, &error.to_string()).expect("a string serializes");
    out.push(b'}');
}

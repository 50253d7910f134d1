//! `POST /v1/txn`: compare, then one branch of ops, atomically (etcd's Txn).
//!
//! The compares and the chosen branch happen as one step with respect to every
//! other write and transaction, and readers see all of the branch's writes or
//! none (see `store::group`).

use actix_web::{
    HttpRequest, HttpResponse,
    http::StatusCode,
    web::{self, Payload},
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    AppState, Limits,
    error::{ApiError, Dialect},
    input, json_response, ops,
};
use crate::store::{Txn, op::Compare};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson<'a> {
    #[serde(default, borrow)]
    compare: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    success: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    failure: Vec<&'a RawValue>,
}

/// One compare: a key and exactly one of `version`, `exists`, `value`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareJson<'a> {
    key: String,
    version: Option<u64>,
    exists: Option<bool>,
    #[serde(default, borrow, deserialize_with = "ops::present")]
    value: Option<&'a RawValue>,
}

pub async fn txn(req: HttpRequest, payload: Payload, state: web::Data<AppState>) -> HttpResponse {
    let result = run(&req, payload, &state).await;
    result.unwrap_or_else(|error| error.respond(&req, Dialect::Native))
}

async fn run(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_body(req, payload, &state.limits).await?;
    let text = input::utf8_body(&body)?;
    let txn: TxnJson<'_> = ops::object(text, "a transaction")?;
    let limits = &state.limits;
    let count = txn.compare.len() + txn.success.len() + txn.failure.len();
    if count > limits.max_txn_ops {
        return Err(ApiError::TooManyOps {
            limit: limits.max_txn_ops,
            got: count,
        });
    }
    let compares = txn
        .compare
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            parse_compare(raw, limits).map_err(|error| ops::at("compare", index, error))
        })
        .collect::<Result<_, _>>()?;
    let parsed = Txn {
        compares,
        success: ops::parse_ops(&txn.success, "success", limits)?,
        failure: ops::parse_ops(&txn.failure, "failure", limits)?,
    };
    let done = state.store.txn(parsed).await?;
    let head: &[u8] = if done.succeeded {
        br#"{"succeeded":true,"results":"#
    } else {
        br#"{"succeeded":false,"results":"#
    };
    let out = ops::results_body(head, &done.outcomes);
    Ok(json_response(StatusCode::OK, out))
}

fn parse_compare(raw: &RawValue, limits: &Limits) -> Result<(Box<str>, Compare), ApiError> {
    let compare: CompareJson<'_> = ops::object(raw.get(), "a compare")?;
    input::check_key(&compare.key, limits)?;
    let what = match (compare.version, compare.exists, compare.value) {
        (Some(version), None, None) => Compare::Version(version),
        (None, Some(exists), None) => Compare::Exists(exists),
        (None, None, Some(value)) => {
            input::check_value(value.get().as_bytes(), limits)?;
            Compare::Value(serde_json::from_str(value.get()).expect("RawValue is valid JSON"))
        }
        _ => {
            return Err(ApiError::InvalidBody(
                "a compare takes a `key` and exactly one of `version`, `exists`, `value`".into(),
            ));
        }
    };
    Ok((compare.key.into(), what))
}

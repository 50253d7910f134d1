//! `POST /v1/batch`: many gets, puts and deletes in one request.
//!
//! Not atomic: each op is atomic on its own, ops on one key take effect in the
//! order given, and each op has its own result. Validation is all or nothing:
//! one bad op (or too many) fails the request and nothing is applied.

use actix_web::{
    HttpRequest, HttpResponse,
    http::StatusCode,
    web::{self, Payload},
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    AppState,
    error::{ApiError, Dialect},
    input, json_response, ops,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchJson<'a> {
    #[serde(borrow)]
    ops: Vec<ops::Object<ops::OpJson<'a>>>,
}

/// A batch with its ops unread: only to find which op a failed parse tripped on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch<'a> {
    #[serde(borrow)]
    ops: Vec<&'a RawValue>,
}

pub async fn batch(req: HttpRequest, payload: Payload, state: web::Data<AppState>) -> HttpResponse {
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
    // One pass over the body; only a body that fails it is read again, to say
    // which op is wrong.
    let batch: BatchJson<'_> = ops::object(text, "a batch").map_err(|error| {
        let raw = ops::object::<RawBatch<'_>>(text, "a batch");
        raw.map_or_else(
            |error| error,
            |raw| ops::locate(&raw.ops, "ops").unwrap_or(error),
        )
    })?;
    let limit = state.limits.max_batch_ops;
    if batch.ops.len() > limit {
        return Err(ApiError::TooManyOps {
            limit,
            got: batch.ops.len(),
        });
    }
    let parsed = ops::check_ops(batch.ops, "ops", &state.limits)?;
    let outcomes = state.store.batch(parsed).await;
    let out = ops::results_body(br#"{"results":"#, &outcomes);
    let mut response = json_response(StatusCode::OK, out);
    // On a replica its writes were refused (409 each): name the primary here too.
    if let Some(primary) = state.store.following()
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&primary)
    {
        let name = actix_web::http::header::HeaderName::from_static(super::error::PRIMARY_HEADER);
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

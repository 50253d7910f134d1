//! The PyRustKV-compatible routes, answered exactly as PyRustKV did (minus its bugs).
//!
//! `PUT /kv/insert`, `GET /kv/{key}`, `DELETE /kv/delete/{key}` and `DELETE /kv/{key}`.
//! One resource takes every method on `/kv/...` and `dispatch` picks the operation,
//! because the routes overlap: `GET /kv/delete/x` reads the key `delete/x`.

use std::borrow::Cow;

use actix_web::{
    HttpRequest, HttpResponse,
    http::Method,
    web::{self, Payload},
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    AppState,
    error::{ApiError, Dialect},
    input, json_response,
};
use crate::store::{Delete, Entry, Precondition, Put};

const SUCCESS: &str = r#"{"status":"success"}"#;
const PREFIX: &str = "/kv/";
const DELETE_PREFIX: &str = "/kv/delete/";

/// The insert body: `{"key": string, "value": any JSON, "ttl": seconds or null}`.
#[derive(Deserialize)]
struct InsertBody<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(default)]
    ttl: Option<f64>,
}

pub async fn dispatch(
    req: HttpRequest,
    payload: Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let path = req.uri().path();
    if !path.starts_with(PREFIX) {
        return super::meta::not_found(req).await; // the bare `/kv`
    }
    let result = match *req.method() {
        Method::PUT if path == "/kv/insert" => insert(&req, payload, &state).await,
        Method::GET | Method::HEAD => get(&req, &state),
        Method::DELETE if path.starts_with(DELETE_PREFIX) => {
            delete(&req, DELETE_PREFIX, &state).await
        }
        Method::DELETE => delete(&req, PREFIX, &state).await,
        _ => Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: path.to_owned(),
            // GET and DELETE take any key, "insert" included.
            allow: if path == "/kv/insert" {
                "GET, HEAD, PUT, DELETE"
            } else {
                "GET, HEAD, DELETE"
            },
        }),
    };
    result.unwrap_or_else(|error| error.respond(&req, Dialect::Compat))
}

async fn insert(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_body(req, payload, &state.limits).await?;
    let put = parse_insert(&body, state)?;
    state.put(put).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, SUCCESS))
}

fn parse_insert(body: &[u8], state: &AppState) -> Result<Put, ApiError> {
    // serde would also accept a JSON array as a struct; PyRustKV took objects only.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::InvalidBody(
            "body must be a JSON object with key and value".into(),
        ));
    }
    let insert: InsertBody<'_> = serde_json::from_slice(body)
        .map_err(|error| ApiError::InvalidBody(format!("invalid body: {error}")))?;
    input::check_key(&insert.key, &state.limits)?;
    let value = insert.value.get().as_bytes();
    input::check_value(value, &state.limits)?;
    let ttl = insert
        .ttl
        .map(|seconds| input::ttl_nanos(seconds, &state.limits))
        .transpose()?;
    Ok(Put {
        // An exact-size copy: a slice of the request would pin its receive buffer.
        entry: Entry::for_ttl(&insert.key, value, ttl),
        ttl,
        precondition: Precondition::default(),
    })
}

fn get(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let key = input::path_key(req, PREFIX, Dialect::Compat, &state.limits)?;
    let entry = state.store.get(&key).ok_or(ApiError::KeyNotFound)?;
    let mut body = Vec::with_capacity(key.len() + entry.value().len() + 20);
    body.extend_from_slice(b"{\"key\":");
    serde_json::to_writer(&mut body, &*key).expect("a str always serializes");
    body.extend_from_slice(b",\"value\":");
    body.extend_from_slice(entry.value());
    body.push(b'}');
    Ok(json_response(actix_web::http::StatusCode::OK, body))
}

/// Answers success whether or not the key existed, as PyRustKV did.
async fn delete(
    req: &HttpRequest,
    prefix: &str,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let key = input::path_key(req, prefix, Dialect::Compat, &state.limits)?;
    let delete = Delete {
        key,
        precondition: Precondition::default(),
    };
    state.delete(delete).await?;
    Ok(json_response(actix_web::http::StatusCode::OK, SUCCESS))
}

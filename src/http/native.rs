//! The native routes under `/v1/kv/{key}`: the value is the whole body, versions are
//! ETags, and `If-Match` / `If-None-Match` make writes conditional.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{Method, StatusCode, header},
    web::{self, Bytes, Payload},
};
use serde::Serialize;

use super::{
    AppState,
    error::{ApiError, Dialect},
    input, json_response,
};
use crate::store::{Delete, Entry, Precondition, Put, Tags};

const PREFIX: &str = "/v1/kv/";

fn native(req: &HttpRequest, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(|error| error.respond(req, Dialect::Native))
}

fn precondition(req: &HttpRequest) -> Result<Precondition, ApiError> {
    Ok(Precondition {
        if_match: input::tags(req, header::IF_MATCH)?,
        if_none_match: input::tags(req, header::IF_NONE_MATCH)?,
    })
}

/// Every request under `/v1/kv/`, by method.
pub async fn dispatch(
    req: HttpRequest,
    payload: Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !req.uri().path().starts_with(PREFIX) {
        // The bare `/v1/kv` (the scope's only other path): the scan route.
        let result = match *req.method() {
            Method::GET | Method::HEAD => super::scan::scan(&req, &state),
            _ => Err(ApiError::MethodNotAllowed {
                method: req.method().to_string(),
                path: req.path().to_owned(),
                allow: "GET, HEAD",
            }),
        };
        return native(&req, result);
    }
    let result = match *req.method() {
        Method::GET | Method::HEAD => read(&req, &state),
        Method::PUT => write(&req, payload, &state).await,
        Method::DELETE => remove(&req, &state).await,
        _ => Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow: "GET, HEAD, PUT, DELETE",
        }),
    };
    native(&req, result)
}

/// `GET` and `HEAD`: the stored JSON, its `ETag`, and `X-Expires-In` (whole seconds,
/// rounded up) when it has a TTL; 304 when `If-None-Match` names its version.
fn read(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let key = input::path_key(req, PREFIX, Dialect::Native, &state.limits)?;
    let if_none_match = input::tags(req, header::IF_NONE_MATCH)?;
    let entry = state.store.get(&key).ok_or(ApiError::KeyNotFound)?;
    let etag = input::etag(entry.version());
    if if_none_match.is_some_and(|tags| tags.matches(entry.version())) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((header::ETAG, etag));
    if let Some(nanos) = state.store.remaining(&entry) {
        let seconds = header::HeaderValue::from(nanos.div_ceil(1_000_000_000));
        response.insert_header((EXPIRES_IN, seconds));
    }
    let body = Bytes::from_owner(StoredValue(entry));
    Ok(response.insert_header(super::JSON_CONTENT).body(body))
}

/// Whole seconds left before a GET's key expires.
const EXPIRES_IN: header::HeaderName = header::HeaderName::from_static("x-expires-in");

/// The response body of a GET: the entry's value bytes, shared rather than copied
/// (the `Entry` handle keeps them alive until the body is written).
struct StoredValue(Entry);

impl AsRef<[u8]> for StoredValue {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

#[derive(Serialize)]
struct WrittenBody<'a> {
    key: &'a str,
    version: u64,
}

/// `PUT /v1/kv/{key}?ttl=S`: 201 if created, 200 if replaced.
async fn write(
    req: &HttpRequest,
    payload: Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    // The body first: an error found later then leaves the connection reusable.
    let body = input::json_body(req, payload, &state.limits).await?;
    let key = input::path_key(req, PREFIX, Dialect::Native, &state.limits)?;
    let ttl = input::query_ttl(req, &state.limits)?;
    let precondition = precondition(req)?;
    let value = body.trim_ascii();
    input::check_value(value, &state.limits)?;
    // JSON text is UTF-8 (RFC 8259, 8.1), but serde_json reading bytes into
    // `IgnoredAny` skips strings without decoding them, so invalid, overlong and
    // surrogate encodings inside them would be stored and served. One SIMD-fast pass
    // over the whole value checks that; parsing from the `&str` then skips its own.
    let text = input::utf8_body(value)?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|error| ApiError::InvalidBody(format!("body is not a JSON value: {error}")))?;
    let put = Put {
        entry: Entry::for_ttl(&key, value, ttl),
        ttl,
        precondition,
    };
    let written = state.put(put).await?;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = serde_json::to_vec(&WrittenBody {
        key: &key,
        version: written.version,
    })
    .expect("serializes");
    let mut response = json_response(status, body);
    let etag = input::etag(written.version);
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// `DELETE /v1/kv/{key}`: 204, or 404 if absent; `If-Match` as for PUT.
async fn remove(req: &HttpRequest, state: &AppState) -> Result<HttpResponse, ApiError> {
    let key = input::path_key(req, PREFIX, Dialect::Native, &state.limits)?;
    let precondition = precondition(req)?;
    if precondition
        .if_none_match
        .as_ref()
        .is_some_and(|tags| *tags != Tags::Any)
    {
        // Only `If-None-Match: *` is meaningful on a delete ("only if absent"), and it
        // can never succeed in deleting; reject tag lists rather than guess.
        return Err(ApiError::InvalidHeader(
            "If-None-Match on DELETE supports only *".into(),
        ));
    }
    let delete = Delete { key, precondition };
    match state.delete(delete).await? {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(ApiError::KeyNotFound),
    }
}

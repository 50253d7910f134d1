//! The OpenAPI 3 description of every route, generated with utoipa, served at
//! `/openapi.json`, and the interactive Swagger UI at `/docs` (its assets come from
//! the `utoipa-swagger-ui` crate's vendored copy: nothing is downloaded at build
//! time and the page needs no CDN).
//!
//! The handlers dispatch on method and read keys from the raw path (see `mod.rs`),
//! so the paths are declared here on documentation-only functions, next to the
//! schemas of every body the routes accept or answer.

#![allow(dead_code)] // the `#[utoipa::path]` functions exist only to be described

use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

/// `PUT /kv/insert` body.
#[derive(ToSchema)]
pub struct InsertRequest {
    /// Non-empty, at most `store.max_key_bytes` bytes.
    key: String,
    /// Any JSON value, `null` included.
    #[schema(value_type = Object)]
    value: Value,
    /// Seconds to live (finite, > 0, at most `store.max_ttl`); absent or null: no expiry.
    ttl: Option<f64>,
}

/// `{"status": "success"}`
#[derive(ToSchema)]
pub struct Status {
    #[schema(example = "success")]
    status: String,
}

/// A PyRustKV-route error: `{"detail": "..."}`.
#[derive(ToSchema)]
pub struct Detail {
    detail: String,
}

/// A native-route error: `{"error": code, "detail": "..."}`.
#[derive(ToSchema)]
pub struct NativeError {
    /// Machine-readable: `invalid_body`, `invalid_key`, `invalid_ttl`, `invalid_header`,
    /// `key_too_large`, `value_too_large`, `body_too_large`, `body_unreadable`,
    /// `unsupported_media_type`, `key_not_found`, `not_found`, `method_not_allowed`,
    /// `precondition_failed`, `unavailable`, `unauthorized`.
    error: String,
    detail: String,
}

/// `GET /kv/{key}` answer.
#[derive(ToSchema)]
pub struct KeyValue {
    key: String,
    #[schema(value_type = Object)]
    value: Value,
}

/// `PUT /v1/kv/{key}` answer.
#[derive(ToSchema)]
pub struct WrittenBody {
    key: String,
    /// Also in the `ETag` header, quoted.
    version: u64,
}

#[utoipa::path(put, path = "/kv/insert", tag = "PyRustKV-compatible",
    request_body(content = InsertRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (new or replaced)", body = Status),
        (status = 413, description = "Key, value or body over its limit", body = Detail),
        (status = 415, description = "Content-Type is not JSON", body = Detail),
        (status = 422, description = "Invalid body, key or ttl", body = Detail),
    ))]
fn compat_insert() {}

#[utoipa::path(get, path = "/kv/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, description = "The key, percent-encoded; may contain `/`")),
    responses(
        (status = 200, description = "Found", body = KeyValue),
        (status = 404, description = "Missing, expired or evicted", body = Detail),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_get() {}

#[utoipa::path(delete, path = "/kv/delete/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "Deleted, or was absent", body = Status),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_delete() {}

#[utoipa::path(delete, path = "/kv/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "Deleted, or was absent", body = Status),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_delete_short() {}

#[utoipa::path(get, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, description = "The key, percent-encoded; may contain `/`"),
        ("If-None-Match" = Option<String>, Header, description = "`\"N\"`: answer 304 if the version is N"),
    ),
    responses(
        (status = 200, description = "The stored JSON value", body = Object, content_type = "application/json",
            headers(
                ("ETag" = String, description = "The version, quoted"),
                ("X-Expires-In" = Option<u64>, description = "Whole seconds left (rounded up), when the key has a TTL"),
            )),
        (status = 304, description = "If-None-Match matched", headers(("ETag" = String))),
        (status = 400, description = "Empty key, invalid UTF-8 or malformed header", body = NativeError),
        (status = 404, description = "Missing, expired or evicted", body = NativeError),
        (status = 413, description = "Key over its limit", body = NativeError),
    ))]
fn native_get() {}

#[utoipa::path(head, path = "/v1/kv/{key}", tag = "native",
    params(("key" = String, Path, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "As GET, without a body", headers(("ETag" = String), ("X-Expires-In" = Option<u64>))),
        (status = 404, description = "Missing, expired or evicted"),
    ))]
fn native_head() {}

#[utoipa::path(put, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, description = "The key, percent-encoded"),
        ("ttl" = Option<f64>, Query, description = "Seconds to live (finite, > 0, at most store.max_ttl)"),
        ("If-Match" = Option<String>, Header, description = "`\"N\"` (or a list, or `*`): write only if the current version matches"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: write only if the key is absent"),
    ),
    request_body(content = Object, content_type = "application/json", description = "The value: any JSON"),
    responses(
        (status = 201, description = "Created", body = WrittenBody, headers(("ETag" = String))),
        (status = 200, description = "Replaced", body = WrittenBody, headers(("ETag" = String))),
        (status = 400, description = "Invalid JSON, key, ttl or header", body = NativeError),
        (status = 412, description = "A precondition failed", body = NativeError),
        (status = 413, description = "Key, value or body over its limit", body = NativeError),
        (status = 415, description = "Content-Type is not JSON", body = NativeError),
    ))]
fn native_put() {}

#[utoipa::path(delete, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, description = "The key, percent-encoded"),
        ("If-Match" = Option<String>, Header, description = "Delete only if the current version matches"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid key or header", body = NativeError),
        (status = 404, description = "Absent", body = NativeError),
        (status = 412, description = "If-Match failed", body = NativeError),
    ))]
fn native_delete() {}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Serving", body = Status)))]
fn health() {}

#[utoipa::path(get, path = "/v1/stats", tag = "operations",
    responses((status = 200, description = "Keys, capacity, memory and counters, in total and per partition", body = Object)))]
fn stats() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
fn metrics() {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "RustKV",
        description = "An in-memory key-value cache served over a REST API. \
        When a token is configured, every route but /health needs `Authorization: Bearer <token>` (401 otherwise). \
        Unknown routes answer 404 and wrong methods 405, as JSON."
    ),
    paths(
        compat_insert,
        compat_get,
        compat_delete,
        compat_delete_short,
        native_get,
        native_head,
        native_put,
        native_delete,
        health,
        stats,
        metrics
    ),
    components(schemas(InsertRequest, Status, Detail, NativeError, KeyValue, WrittenBody))
)]
pub struct ApiDoc;

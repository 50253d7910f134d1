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

use super::{meta::Health, replication::FollowRequest};
use crate::{
    replication::status::{Lag, ReplicaStatus, ReplicationStatus},
    store::{PartitionStats, StoreStats},
};
use utoipa::{
    Modify, Number, OpenApi, ToSchema,
    openapi::{
        ContentBuilder, ObjectBuilder, Ref, RefOr, ResponseBuilder, Schema, Type,
        header::Header,
        security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme},
    },
};

/// `PUT /kv/insert` body.
#[derive(ToSchema)]
pub struct InsertRequest {
    /// Non-empty, at most `store.max_key_bytes` bytes.
    #[schema(min_length = 1)]
    key: String,
    /// Any JSON value, `null` included.
    value: Value,
    /// Seconds to live (finite, > 0, at most `store.max_ttl`); absent or null: no expiry.
    #[schema(exclusive_minimum = 0.0)]
    ttl: Option<f64>,
}

/// `{"status": "success"}`
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct Status {
    #[schema(example = "success")]
    status: String,
}

/// A PyRustKV-route error: `{"detail": "..."}`.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct Detail {
    detail: String,
}

/// A native-route error: `{"error": code, "detail": "..."}`.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct NativeError {
    /// Machine-readable: `invalid_body`, `invalid_key`, `invalid_percent_escape`,
    /// `invalid_ttl`, `invalid_header`, `key_too_large`, `value_too_large`,
    /// `body_too_large`, `body_unreadable`, `unsupported_media_type`, `key_not_found`,
    /// `not_found`, `method_not_allowed`, `precondition_failed`, `unavailable`, `writes_refused`,
    /// `unauthorized`, `headers_too_large`, `too_many_ops`, `invalid_query`, `invalid_cursor`,
    /// `read_only`.
    error: String,
    detail: String,
}

/// `GET /kv/{key}` answer.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct KeyValue {
    key: String,
    /// The stored JSON value, as sent.
    value: Value,
}

/// `PUT /v1/kv/{key}` answer.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
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
    params(("key" = String, Path, min_length = 1, description = "The key, percent-encoded; may contain `/`")),
    responses(
        (status = 200, description = "Found", body = KeyValue),
        (status = 404, description = "Missing, expired or evicted", body = Detail),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_get() {}

#[utoipa::path(head, path = "/kv/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, min_length = 1, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "As GET, without a body"),
        (status = 404, description = "Missing, expired or evicted"),
        (status = 413, description = "Key over its limit"),
        (status = 422, description = "Empty key or invalid UTF-8"),
    ))]
fn compat_head() {}

#[utoipa::path(delete, path = "/kv/delete/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, min_length = 1, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "Deleted, or was absent", body = Status),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_delete() {}

#[utoipa::path(delete, path = "/kv/{key}", tag = "PyRustKV-compatible",
    params(("key" = String, Path, min_length = 1, description = "The key, percent-encoded")),
    responses(
        (status = 200, description = "Deleted, or was absent", body = Status),
        (status = 413, description = "Key over its limit", body = Detail),
        (status = 422, description = "Empty key or invalid UTF-8", body = Detail),
    ))]
fn compat_delete_short() {}

#[utoipa::path(get, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, min_length = 1, description = "The key, percent-encoded; may contain `/`"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`\"N\"`: answer 304 if the version is N"),
    ),
    responses(
        (status = 200, description = "The stored JSON value", body = Value, content_type = "application/json",
            headers(
                ("ETag" = String, description = "The version, quoted"),
                ("X-Expires-In" = u64, description = "Whole seconds left (rounded up); present only when the key has a TTL"),
            )),
        (status = 304, description = "If-None-Match matched", headers(("ETag" = String))),
        (status = 400, description = "Empty key, invalid UTF-8 or percent-escape, or malformed header", body = NativeError),
        (status = 404, description = "Missing, expired or evicted", body = NativeError),
        (status = 413, description = "Key over its limit", body = NativeError),
    ))]
fn native_get() {}

#[utoipa::path(head, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, min_length = 1, description = "The key, percent-encoded"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`\"N\"`: answer 304 if the version is N"),
    ),
    responses(
        (status = 200, description = "As GET, without a body", headers(("ETag" = String), ("X-Expires-In" = u64))),
        (status = 304, description = "If-None-Match matched", headers(("ETag" = String))),
        (status = 400, description = "Empty key, invalid UTF-8 or percent-escape, or malformed header"),
        (status = 404, description = "Missing, expired or evicted"),
        (status = 413, description = "Key over its limit"),
    ))]
fn native_head() {}

#[utoipa::path(put, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, min_length = 1, description = "The key, percent-encoded"),
        ("ttl" = Option<f64>, Query, exclusive_minimum = 0.0, description = "Seconds to live (finite, > 0, at most store.max_ttl)"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "`\"N\"` (or a list, or `*`): write only if the current version matches"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "`*`: write only if the key is absent"),
    ),
    request_body(content = Value, content_type = "application/json", description = "The value: any JSON"),
    responses(
        (status = 201, description = "Created", body = WrittenBody, headers(("ETag" = String))),
        (status = 200, description = "Replaced", body = WrittenBody, headers(("ETag" = String))),
        (status = 400, description = "Invalid JSON, key (percent-escapes included), ttl or header", body = NativeError),
        (status = 412, description = "A precondition failed", body = NativeError),
        (status = 413, description = "Key, value or body over its limit", body = NativeError),
        (status = 415, description = "Content-Type is not JSON", body = NativeError),
    ))]
fn native_put() {}

#[utoipa::path(delete, path = "/v1/kv/{key}", tag = "native",
    params(
        ("key" = String, Path, min_length = 1, description = "The key, percent-encoded"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Delete only if the current version matches"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid key (percent-escapes included) or header", body = NativeError),
        (status = 404, description = "Absent", body = NativeError),
        (status = 412, description = "If-Match failed", body = NativeError),
        (status = 413, description = "Key over its limit", body = NativeError),
    ))]
fn native_delete() {}

/// The kind of a batch or transaction op.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum OpKind {
    Get,
    Put,
    Delete,
}

/// One op of a batch or transaction branch. A get takes only `key`; a put needs
/// `value` and may take `ttl`, `if_match`, `if_none_match`; a delete may take
/// `if_match` and `if_none_match: "*"`. Any other field is an error.
#[derive(ToSchema)]
pub struct OpRequest {
    op: OpKind,
    /// Non-empty, at most `store.max_key_bytes` bytes.
    #[schema(min_length = 1)]
    key: String,
    /// A put's value: any JSON, `null` included.
    value: Option<Value>,
    /// A put's seconds to live (finite, > 0, at most `store.max_ttl`).
    #[schema(exclusive_minimum = 0.0)]
    ttl: Option<f64>,
    /// As the `If-Match` header: `"\"N\""`, a list, or `*`.
    if_match: Option<String>,
    /// As the `If-None-Match` header: `*` (only if absent), or a list on a put.
    if_none_match: Option<String>,
}

/// `POST /v1/batch` body.
#[derive(ToSchema)]
pub struct BatchRequest {
    /// At most `store.max_batch_ops` ops.
    ops: Vec<OpRequest>,
}

/// One op's result: its own status; `value` and `version` where there is one,
/// `error` and `detail` (as a native error) where the op did not happen.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct OpResult {
    /// 200 (found, replaced), 201 (created), 204 (deleted), 404, 412, 503.
    status: u16,
    /// A get's value.
    #[schema(required = false)]
    value: Option<Value>,
    /// A get's or put's version (the number in an ETag).
    #[schema(required = false, nullable = false)]
    version: Option<u64>,
    #[schema(required = false, nullable = false)]
    error: Option<String>,
    #[schema(required = false, nullable = false)]
    detail: Option<String>,
}

/// `POST /v1/batch` answer.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct BatchResponse {
    /// One per op, in order.
    results: Vec<OpResult>,
}

/// A transaction's condition on one key: exactly one of `version`, `exists`,
/// `value` besides `key`.
#[derive(ToSchema)]
pub struct CompareRequest {
    #[schema(min_length = 1)]
    key: String,
    /// The key is live with this version.
    #[schema(nullable = false)]
    version: Option<u64>,
    /// The key is live (true) or absent (false).
    #[schema(nullable = false)]
    exists: Option<bool>,
    /// The key is live and its value equals this one as JSON (not as bytes).
    value: Option<Value>,
}

/// `POST /v1/txn` body. At most `store.max_txn_ops` compares and ops in all.
#[derive(ToSchema)]
pub struct TxnRequest {
    #[schema(nullable = false)]
    compare: Option<Vec<CompareRequest>>,
    /// Run when every compare holds.
    #[schema(nullable = false)]
    success: Option<Vec<OpRequest>>,
    /// Run otherwise.
    #[schema(nullable = false)]
    failure: Option<Vec<OpRequest>>,
}

/// `POST /v1/txn` answer.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct TxnResponse {
    /// Whether every compare held (so `success` ran).
    succeeded: bool,
    /// The results of the branch that ran, one per op.
    results: Vec<OpResult>,
}

/// One key of a scan page.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct ScanItem {
    key: String,
    /// Absent with `values=false`.
    #[schema(required = false)]
    value: Option<Value>,
    version: u64,
}

/// `GET /v1/kv` answer.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct ScanPage {
    items: Vec<ScanItem>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(post, path = "/v1/batch", tag = "data",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Every op ran, each with its own result (not atomic as a whole)", body = BatchResponse),
        (status = 400, description = "A malformed op (its index in `detail`): nothing applied", body = NativeError),
        (status = 413, description = "Too many ops, or a key, value or the body over its limit: nothing applied", body = NativeError),
        (status = 415, description = "Content-Type is not JSON", body = NativeError),
    ))]
fn batch() {}

#[utoipa::path(post, path = "/v1/txn", tag = "data",
    request_body(content = TxnRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The compares and the chosen branch ran as one atomic step", body = TxnResponse),
        (status = 400, description = "A malformed compare or op (its place in `detail`): nothing applied", body = NativeError),
        (status = 413, description = "Too many compares and ops, or a key, value or the body over its limit", body = NativeError),
        (status = 415, description = "Content-Type is not JSON", body = NativeError),
    ))]
fn txn() {}

#[utoipa::path(get, path = "/v1/kv", tag = "data",
    params(
        ("prefix" = Option<String>, Query, nullable = false, description = "Only keys starting with this"),
        ("start" = Option<String>, Query, nullable = false, description = "Only keys at or after this (byte order)"),
        ("end" = Option<String>, Query, nullable = false, description = "Only keys before this"),
        ("match" = Option<String>, Query, nullable = false, description = "Only keys matching this Redis MATCH pattern (`*`, `?`, `[a-z]`, `[^a]`, `\\`)"),
        ("limit" = Option<u32>, Query, nullable = false, minimum = 1, description = "Most items (default store.scan_limit, at most store.max_scan_limit)"),
        ("cursor" = Option<String>, Query, nullable = false, description = "A previous page's next_cursor"),
        ("values" = Option<bool>, Query, nullable = false, description = "false: items without values (default true)"),
    ),
    responses(
        (status = 200, description = "A page of keys in byte order; fewer than limit (even none) when it examined store.max_scan_examined keys", body = ScanPage),
        (status = 400, description = "A malformed cursor or parameter", body = NativeError),
    ))]
fn scan() {}

#[utoipa::path(head, path = "/v1/kv", tag = "data",
    params(
        ("prefix" = Option<String>, Query, nullable = false),
        ("limit" = Option<u32>, Query, nullable = false, minimum = 1),
    ),
    responses(
        (status = 200, description = "As GET, without a body"),
        (status = 400, description = "A malformed cursor or parameter"),
    ))]
fn scan_head() {}

#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "Draining before a shutdown (requests still served), a partition cannot serve writes, or writes are refused (the log cannot write)", body = Health),
    ))]
fn health() {}

#[utoipa::path(head, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Serving"),
        (status = 503, description = "Draining, or a partition cannot serve writes"),
    ))]
fn health_head() {}

#[utoipa::path(get, path = "/v1/stats", tag = "operations",
    responses((status = 200, description = "Keys, capacity, memory and counters, in total and per partition", body = StoreStats)))]
fn stats() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
fn metrics() {}

#[utoipa::path(get, path = "/health/primary", tag = "replication",
    responses(
        (status = 200, description = "A primary that takes writes now (a load balancer's write check)", body = Health),
        (status = 503, description = "A replica, draining, or refusing writes (`detail` says which)", body = Health),
    ))]
fn health_primary() {}

#[utoipa::path(get, path = "/v1/replication", tag = "replication",
    responses((status = 200, description = "Role, primary, replication id, position, lag and connected replicas", body = ReplicationStatus)))]
fn replication_status() {}

#[utoipa::path(post, path = "/v1/replication/promote", tag = "replication",
    responses(
        (status = 200, description = "Now a primary (a new replication id; writes accepted). A primary stays one", body = ReplicationStatus),
        (status = 503, description = "The store is shutting down", body = NativeError),
    ))]
fn replication_promote() {}

#[utoipa::path(post, path = "/v1/replication/follow", tag = "replication",
    request_body(content = FollowRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Now a replica of `primary`: writes refused from now on; it resumes from its history where the primary's backlog allows, else takes a full copy", body = ReplicationStatus),
        (status = 400, description = "Not JSON, or `primary` is not http(s)://host:port", body = NativeError),
        (status = 413, description = "Body over server.max_body", body = NativeError),
        (status = 415, description = "Content-Type is not JSON", body = NativeError),
        (status = 503, description = "The store is shutting down", body = NativeError),
    ))]
fn replication_follow() {}

#[utoipa::path(get, path = "/v1/replication/sync", tag = "replication",
    params(
        ("id" = String, Query, description = "The replication id the replica holds (anything, for a new replica)"),
        ("position" = u64, Query, description = "The records of that history the replica holds"),
    ),
    responses(
        (status = 200, description = "The replication stream: records in the log's format (a full copy ending in a `synced` record, unless the backlog holds the history from `position`), then every change as it happens, and pings; it ends when the replica falls behind the backlog",
            body = String, content_type = "application/octet-stream",
            headers(
                ("RustKV-Replication-Id" = String, description = "The history the stream belongs to"),
                ("RustKV-Replication-Sync" = String, description = "`full` or `partial`"),
                ("RustKV-Replication-Position" = u64, description = "Where the stream's records start"),
            )),
        (status = 400, description = "Missing or malformed id or position", body = NativeError),
        (status = 503, description = "The store is shutting down", body = NativeError),
    ))]
fn replication_sync() {}

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
        compat_head,
        compat_delete,
        compat_delete_short,
        native_get,
        native_head,
        native_put,
        native_delete,
        batch,
        txn,
        scan,
        scan_head,
        health,
        health_head,
        stats,
        metrics,
        health_primary,
        replication_status,
        replication_promote,
        replication_follow,
        replication_sync
    ),
    components(schemas(
        InsertRequest,
        Status,
        Detail,
        NativeError,
        KeyValue,
        WrittenBody,
        OpKind,
        OpRequest,
        BatchRequest,
        OpResult,
        BatchResponse,
        CompareRequest,
        TxnRequest,
        TxnResponse,
        ScanItem,
        ScanPage,
        StoreStats,
        PartitionStats,
        Health,
        FollowRequest,
        ReplicationStatus,
        Lag,
        ReplicaStatus
    )),
    modifiers(&CommonResponses)
)]
pub struct ApiDoc;

/// The document as this server serves it: the static description, with the
/// configured TTL ceiling (`store.max_ttl`) as the `maximum` of both TTL inputs.
pub fn document(max_ttl_secs: f64) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    let set_maximum = |schema: Option<&mut RefOr<Schema>>| {
        if let Some(RefOr::T(Schema::Object(object))) = schema {
            object.maximum = Some(Number::Float(max_ttl_secs));
        }
    };
    if let Some(RefOr::T(Schema::Object(insert))) = openapi
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut("InsertRequest"))
    {
        set_maximum(insert.properties.get_mut("ttl"));
    }
    let put = openapi
        .paths
        .paths
        .get_mut("/v1/kv/{key}")
        .and_then(|item| item.put.as_mut());
    for parameter in put
        .into_iter()
        .flat_map(|op| op.parameters.iter_mut().flatten())
    {
        if parameter.name == "ttl" {
            set_maximum(parameter.schema.as_mut());
        }
    }
    openapi
}

/// Adds what every route shares rather than repeating it on each: 431 for headers
/// over their limits, the optional bearer token (a security scheme, 401 on every
/// route but `/health`) and 503 on the writes, which need the store's actors (they
/// answer it while shutting down).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = path == "/health" || path == "/health/primary";
            let key_route = path.starts_with("/kv/") || path.starts_with("/v1/kv/");
            let error = if path.starts_with("/kv/") {
                "Detail"
            } else {
                "NativeError"
            };
            // Batches and transactions write; the replication POSTs do not.
            let post_writes = path == "/v1/batch" || path == "/v1/txn";
            let operations = [
                (&mut item.get, false, true),
                (&mut item.head, false, false),
                (&mut item.put, true, true),
                (&mut item.delete, true, true),
                (&mut item.post, post_writes, true),
            ];
            for (operation, writes, has_body) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let responses = &mut operation.responses.responses;
                let too_many = ResponseBuilder::new().description(
                    "More header fields or header bytes than server.max_headers or \
                     server.max_header_bytes allow",
                );
                responses.insert("431".into(), with_body(too_many, error, has_body));
                if open {
                    continue;
                }
                // Either a bearer token or none: which one depends on the config.
                operation.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]);
                let unauthorized = ResponseBuilder::new()
                    .description("A token is configured and the request lacks it")
                    .header(
                        "WWW-Authenticate",
                        Header::new(ObjectBuilder::new().schema_type(Type::String)),
                    );
                responses.insert("401".into(), with_body(unauthorized, error, has_body));
                if writes {
                    let unavailable = ResponseBuilder::new().description(
                        "The server is shutting down (`unavailable`), or refuses writes \
                         because its log cannot write (`writes_refused`, e.g. disk full)",
                    );
                    responses.insert("503".into(), with_body(unavailable, error, has_body));
                }
                // A batch answers a replica's refusal per op, in its 200.
                if writes && (key_route || path == "/v1/txn") {
                    let replica = ResponseBuilder::new()
                        .description(
                            "This node is a replica: writes go to its primary, named in \
                             `detail` and in the `RustKV-Primary` header",
                        )
                        .header(
                            "RustKV-Primary",
                            Header::new(ObjectBuilder::new().schema_type(Type::String)),
                        );
                    responses.insert("409".into(), with_body(replica, error, has_body));
                }
            }
        }
    }
}

fn with_body(
    response: ResponseBuilder,
    schema: &str,
    has_body: bool,
) -> RefOr<utoipa::openapi::Response> {
    let response = if has_body {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build();
        response.content("application/json", content)
    } else {
        response
    };
    RefOr::T(response.build())
}

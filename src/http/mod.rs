//! The HTTP API: routes, handlers, request validation and error mapping.
//!
//! `configure` registers every route; `main` (through `server`) and the tests use
//! the same function. Handlers only use the store's public handle and messages.
//!
//! - `compat`: PyRustKV's routes under `/kv/`.
//! - `native`: `/v1/kv/{key}` with versions, ETags and preconditions.
//! - `meta`: `/health`, `/v1/stats`, unknown routes and wrong methods.
//! - `input`: turning request parts into validated inputs.
//! - `error`: `ApiError` and its mapping to statuses.
//! - `auth`, `head`, `tracking`: the bearer-token, header-limit and request-metrics
//!   middlewares.
//! - `replication`: `/v1/replication` (role, lag, promote, follow, the replicas'
//!   stream) and `/health/primary`.
//! - `metrics`, `log_metrics`, `repl_metrics`, `openapi`: `/metrics`,
//!   `/openapi.json` and `/docs`.

pub mod auth;
mod batch;
mod compat;
pub mod error;
mod fields;
pub mod head;
mod input;
mod log_metrics;
mod meta;
pub mod metrics;
mod native;
pub mod openapi;
mod ops;
mod repl_metrics;
pub mod replication;
mod scan;
mod tls_metrics;
pub mod tracking;
mod txn;

use actix_web::{HttpResponse, http::StatusCode, http::header, web};

use std::{sync::Arc, time::Instant};

use crate::{
    config::Config,
    store::{Delete, Put, Store, StoreError, Written},
};

/// Request limits, taken from the config once.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_body: usize,
    pub max_ttl_secs: f64,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_batch_ops: usize,
    pub max_txn_ops: usize,
    pub scan_limit: usize,
    pub max_scan_limit: usize,
    pub max_scan_examined: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_key_bytes: config.store.max_key_bytes,
            max_value_bytes: config.store.max_value_bytes.as_u64() as usize,
            max_body: config.server.max_body.as_u64() as usize,
            max_ttl_secs: config.store.max_ttl.as_secs_f64(),
            max_headers: config.server.max_headers,
            max_header_bytes: config.server.max_header_bytes.as_u64() as usize,
            max_batch_ops: config.store.max_batch_ops,
            max_txn_ops: config.store.max_txn_ops,
            scan_limit: config.store.scan_limit,
            max_scan_limit: config.store.max_scan_limit,
            max_scan_examined: config.store.max_scan_examined,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub limits: Limits,
    pub metrics: Arc<metrics::Metrics>,
    /// Whether a shutdown is draining, for `/health`.
    pub lifecycle: Arc<crate::net::Lifecycle>,
    pub replication: Arc<crate::replication::Replication>,
}

impl AppState {
    /// `Store::put`, timing the actor round trip for `/metrics`.
    async fn put(&self, put: Put) -> Result<Written, StoreError> {
        self.timed(self.store.put(put)).await
    }

    /// `Store::delete`, timed likewise.
    async fn delete(&self, delete: Delete) -> Result<Option<u64>, StoreError> {
        self.timed(self.store.delete(delete)).await
    }

    /// Awaits a message to a partition actor, observing how long the reply took.
    async fn timed<T>(&self, round_trip: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = round_trip.await;
        self.metrics
            .actor_round_trip
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// Registers every route on `cfg`.
///
/// The key routes are prefix scopes whose handlers dispatch on the method and read
/// the key from the raw path: a `{key:.*}` pattern would run a regex on every
/// request, which profiling showed at about a fifth of a PUT's instructions.
pub fn configure(cfg: &mut web::ServiceConfig, limits: &Limits) {
    // The key routes first: actix tries services in registration order, each try
    // costing ~200 instructions (callgrind: 9 tries, ~1,800 of a GET's ~17,000,
    // when they came after the eight resources below). No other route shares
    // their prefixes, so the order changes no match.
    cfg.service(web::scope("/v1/kv").default_service(web::to(native::dispatch)))
        .service(web::scope("/kv").default_service(web::to(compat::dispatch)))
        .service(
            web::resource("/health")
                .route(web::get().to(meta::health))
                .route(web::head().to(meta::health))
                .default_service(not_allowed("GET, HEAD")),
        )
        .service(only("/health/primary", "GET", replication::writable))
        .service(only("/v1/replication", "GET", replication::status))
        .service(only(
            "/v1/replication/promote",
            "POST",
            replication::promote,
        ))
        .service(only("/v1/replication/follow", "POST", replication::follow))
        .service(only("/v1/replication/sync", "GET", replication::sync))
        .service(only("/metrics", "GET", metrics::scrape))
        .service(only("/v1/stats", "GET", meta::stats))
        .service(only("/v1/batch", "POST", batch::batch))
        .service(only("/v1/txn", "POST", txn::txn))
        .service(web::resource("/docs").route(web::get().to(meta::docs_redirect)))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .url("/openapi.json", openapi::document(limits.max_ttl_secs)),
        )
        .default_service(web::to(meta::not_found));
}

/// A resource that answers `method` with `handler`, and 405 naming it to the others.
fn only<F, Args>(path: &str, method: &'static str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let routed = actix_web::http::Method::from_bytes(method.as_bytes()).expect("a method name");
    web::resource(path)
        .route(web::method(routed).to(handler))
        .default_service(not_allowed(method))
}

/// 405, with `Allow` listing `allow`.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req| meta::method_not_allowed(req, allow))
}

/// `Content-Type: application/json`, made once: `content_type(ContentType::json())`
/// turns a `Mime` into a header value on every response (~520 instructions).
const JSON_CONTENT: (header::HeaderName, header::HeaderValue) = (
    header::CONTENT_TYPE,
    header::HeaderValue::from_static("application/json"),
);

fn json_response(
    status: StatusCode,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(JSON_CONTENT)
        .body(body)
}

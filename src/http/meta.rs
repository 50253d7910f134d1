//! Routes about the server rather than the data: health, statistics, and the JSON
//! answers for unknown routes and wrong methods.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};

use super::{
    AppState,
    error::{ApiError, Dialect},
    json_response,
};

/// The body of `/health`: `{"status": "ok"}` while the server takes traffic.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct Health {
    /// `ok`; `draining` while a shutdown drains; `unavailable` when a partition
    /// cannot serve writes; `writes_refused` while the log cannot write (disk full,
    /// I/O error): reads are served, writes get 503 until the log recovers.
    #[schema(example = "ok")]
    status: &'static str,
    /// Why the server is not ready (absent when it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The partitions that cannot serve writes (absent when all can).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unavailable_partitions: Vec<usize>,
}

/// 200 while the server takes traffic. 503 while a shutdown drains, so load
/// balancers stop sending traffic here (requests are still served until the drain
/// ends), and 503 naming the partitions that cannot serve writes. Checking adopts a
/// partition whose thread died (see `store::handle`), so health checks also heal.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.draining() {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#);
    }
    let unavailable = state.store.unavailable_partitions();
    if unavailable.is_empty() {
        let Some(reason) = state.store.write_refusal() else {
            return json_response(StatusCode::OK, r#"{"status":"ok"}"#);
        };
        let body = Health {
            status: "writes_refused",
            detail: Some(format!("writes are refused: {reason}")),
            unavailable_partitions: Vec::new(),
        };
        return HttpResponse::ServiceUnavailable().json(body);
    }
    let body = Health {
        status: "unavailable",
        detail: Some(format!(
            "{} of {} partitions cannot serve writes: their actors are not running",
            unavailable.len(),
            state.store.partition_count()
        )),
        unavailable_partitions: unavailable,
    };
    HttpResponse::ServiceUnavailable().json(body)
}

pub async fn stats(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.store.stats())
}

/// `/docs` → `/docs/`, where Swagger UI's relative asset paths resolve.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let error = ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    };
    error.respond(&req, Dialect::of(req.path()))
}

/// A method the resource lacks; `allow` lists those it has (`configure` says which).
pub async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let error = ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        allow,
    };
    error.respond(&req, Dialect::of(req.path()))
}

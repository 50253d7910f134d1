//! Routes about the server rather than the data: health, statistics, and the JSON
//! answers for unknown routes and wrong methods.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};

use super::{
    AppState,
    error::{ApiError, Dialect},
    json_response,
};

/// 503 while a shutdown drains, so load balancers stop sending traffic here
/// (requests are still served until the drain ends).
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.lifecycle.draining() {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#);
    }
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
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

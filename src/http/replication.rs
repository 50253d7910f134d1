//! The replication routes: a node's role and lag, promotion, following another
//! node, the stream a replica reads, and the health check that answers 200 only
//! on a writable primary (so a load balancer sends writes to the promoted node
//! without a change to its config).

use actix_web::{
    HttpRequest, HttpResponse,
    http::StatusCode,
    web::{self, Payload},
};
use serde::Deserialize;

use super::{
    AppState,
    error::{ApiError, Dialect},
    input, json_response,
};
use crate::{config::check_primary_url, replication::stream::Stream};

/// Response headers that say how a replication stream starts.
pub const ID_HEADER: &str = "rustkv-replication-id";
pub const SYNC_HEADER: &str = "rustkv-replication-sync";
pub const POSITION_HEADER: &str = "rustkv-replication-position";

fn native(req: &HttpRequest, result: Result<HttpResponse, ApiError>) -> HttpResponse {
    result.unwrap_or_else(|error| error.respond(req, Dialect::Native))
}

/// `GET /v1/replication`.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.replication.status())
}

/// `POST /v1/replication/promote`: a replica becomes a primary (a primary stays one).
pub async fn promote(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = async {
        state.replication.promote().await?;
        Ok(HttpResponse::Ok().json(state.replication.status()))
    };
    native(&req, result.await)
}

/// The body of `POST /v1/replication/follow`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// The primary to follow: `http://host:port` or `https://host:port`.
    #[schema(example = "http://127.0.0.1:8101")]
    primary: String,
}

/// `POST /v1/replication/follow`: this node becomes a replica of `primary`.
pub async fn follow(
    req: HttpRequest,
    payload: Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let result = async {
        let body = input::json_body(&req, payload, &state.limits).await?;
        let request: FollowRequest = serde_json::from_slice(&body).map_err(|error| {
            ApiError::InvalidBody(format!(
                "expected {{\"primary\": \"http(s)://host:port\"}}: {error}"
            ))
        })?;
        check_primary_url(&request.primary).map_err(|reason| {
            ApiError::InvalidBody(format!("primary {:?} {reason}", request.primary))
        })?;
        state.replication.follow(request.primary).await?;
        Ok(HttpResponse::Ok().json(state.replication.status()))
    };
    native(&req, result.await)
}

/// The query of `GET /v1/replication/sync`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncQuery {
    id: String,
    position: u64,
}

/// `GET /v1/replication/sync?id=..&position=..`: the stream a replica reads (a
/// full copy unless this node's backlog holds the history from `position` on).
pub async fn sync(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = async {
        let query = web::Query::<SyncQuery>::from_query(req.query_string()).map_err(|error| {
            ApiError::InvalidBody(format!(
                "expected ?id=<replication id>&position=<records>: {error}"
            ))
        })?;
        let replication = &state.replication;
        let start = replication.open_sync(&query.id, query.position).await?;
        let peer = req
            .peer_addr()
            .map_or_else(|| "unknown".to_owned(), |addr| addr.to_string());
        log::info!(
            "replica {peer} connected: {} from position {}",
            if start.full { "full copy" } else { "resuming" },
            start.start.records
        );
        let stream = Stream::new(replication.clone(), peer, start.full, start.start);
        Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((ID_HEADER, start.id))
            .insert_header((SYNC_HEADER, if start.full { "full" } else { "partial" }))
            .insert_header((POSITION_HEADER, start.start.records.to_string()))
            .streaming(stream.into_body()))
    };
    native(&req, result.await)
}

/// `GET /health/primary`: 200 only on a primary that takes writes now.
pub async fn writable(state: web::Data<AppState>) -> HttpResponse {
    let not = |detail: String| {
        let body = serde_json::json!({ "status": "not_writable", "detail": detail });
        json_response(StatusCode::SERVICE_UNAVAILABLE, body.to_string())
    };
    if state.lifecycle.draining() {
        return not("draining before a shutdown".into());
    }
    if let Some(primary) = state.replication.primary() {
        return not(format!("a replica of {primary}"));
    }
    if let Some(reason) = state.store.write_refusal() {
        return not(format!("writes are refused: {reason}"));
    }
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

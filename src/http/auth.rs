//! Optional bearer-token authentication for every route but `/health`.
//!
//! The token comes from the config (`[auth] token` or `token_file`) or the
//! `RUSTKV_TOKEN` environment variable. Comparison is constant-time (`subtle`), so
//! response timing does not reveal how much of a guess was right; the token is
//! never logged.

use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header,
    middleware::Next,
};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Dialect};

/// Paths that never need a token: a load balancer's health check must work without one.
const OPEN_PATHS: [&str; 1] = ["/health"];

/// Whether `authorization` (the header's value) carries `token`.
pub fn authorized(authorization: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some(presented) = value.strip_prefix(b"Bearer ") else {
        return false;
    };
    presented.ct_eq(token).into()
}

/// Middleware body: answers 401 with `WWW-Authenticate` unless the request carries
/// the token or asks for an open path.
pub async fn require_token<B: MessageBody>(
    token: std::sync::Arc<[u8]>,
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    if OPEN_PATHS.contains(&request.path()) || authorized(presented, &token) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    // In the route family's own error shape, and closing the connection if a body
    // was sent, as every error answered before the body is read.
    let mut response =
        ApiError::Unauthorized.respond(request.request(), Dialect::of(request.path()));
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(r#"Bearer realm="rustkv""#),
    );
    Ok(request.into_response(response).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_table() {
        let token = b"s3cret";
        assert!(authorized(Some(b"Bearer s3cret"), token));
        assert!(!authorized(Some(b"Bearer s3cre"), token));
        assert!(!authorized(Some(b"Bearer s3crett"), token));
        assert!(!authorized(Some(b"bearer s3cret"), token));
        assert!(!authorized(Some(b"Basic s3cret"), token));
        assert!(!authorized(None, token));
    }
}

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
const OPEN_PATHS: [&str; 2] = ["/health", "/health/primary"];

/// The authentication scheme, matched without regard to case (RFC 9110, 11.1).
const SCHEME: &[u8] = b"Bearer";

/// Whether `authorization` (the header's value) carries `token`: the scheme in any
/// case, one or more spaces (RFC 9110, 11.4), then exactly the token.
pub fn authorized(authorization: Option<&[u8]>, token: &[u8]) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some((scheme, rest)) = value.split_at_checked(SCHEME.len()) else {
        return false;
    };
    let spaces = rest.iter().take_while(|&&byte| byte == b' ').count();
    if spaces == 0 {
        return false;
    }
    let presented = &rest[spaces..];
    // Only the scheme depends on this early exit; the token is compared in
    // constant time, so timing still says nothing about how much of a guess was right.
    scheme.eq_ignore_ascii_case(SCHEME) && bool::from(presented.ct_eq(token))
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
        let accepted: [&[u8]; 5] = [
            b"Bearer s3cret",
            // The scheme is case-insensitive (RFC 9110, 11.1) ...
            b"bearer s3cret",
            b"BEARER s3cret",
            b"bEaReR s3cret",
            // ... and separated from the credentials by one or more spaces (11.4).
            b"Bearer   s3cret",
        ];
        for value in accepted {
            assert!(
                authorized(Some(value), token),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let refused: [&[u8]; 11] = [
            b"Bearer s3cre",
            b"Bearer s3crett",
            // The token itself is compared exactly.
            b"bearer S3CRET",
            b"Basic s3cret",
            b"Bearers3cret",
            b"Bearer\ts3cret",
            b"Bearer \ts3cret",
            b"Bearer",
            b"Bearer ",
            b"Beare s3cret",
            b"",
        ];
        for value in refused {
            assert!(
                !authorized(Some(value), token),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        assert!(!authorized(None, token));
    }
}

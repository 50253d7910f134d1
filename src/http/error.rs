//! Everything that can go wrong with a request, and the one place it becomes HTTP.
//!
//! Handlers return `ApiError`; `respond` maps each variant to a status with an
//! exhaustive `match` (no catch-all arm, so a new variant cannot silently become a
//! 500) and renders the body in the route family's dialect: PyRustKV routes answer
//! `{"detail": ...}` as FastAPI did, native routes `{"error": code, "detail": ...}`.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{ConnectionType, StatusCode, header},
};
use serde::Serialize;

use crate::store::StoreError;

/// Which route family a response belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PyRustKV-compatible routes under `/kv/`.
    Compat,
    /// Native routes (`/v1/...` and the rest).
    Native,
}

impl Dialect {
    /// The family of a request path: PyRustKV's routes all live under `/kv/`.
    pub fn of(path: &str) -> Dialect {
        if path.starts_with("/kv/") {
            Dialect::Compat
        } else {
            Dialect::Native
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidBody(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    InvalidPercentEscape(String),
    #[error("{0}")]
    InvalidTtl(String),
    #[error("{0}")]
    InvalidHeader(String),
    #[error("key is longer than {limit} bytes")]
    KeyTooLarge { limit: usize },
    #[error("value is larger than {limit} bytes")]
    ValueTooLarge { limit: usize },
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("cannot read body: {0}")]
    BodyUnreadable(String),
    #[error("unsupported media type {0:?}: send application/json")]
    UnsupportedMediaType(String),
    #[error("Key not found")]
    KeyNotFound,
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("method {method} not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed {
        method: String,
        path: String,
        /// The `Allow` header a 405 must carry (RFC 9110, 15.5.6).
        allow: &'static str,
    },
    #[error("precondition failed: the key's current version is {}", describe(.current))]
    PreconditionFailed { current: Option<u64> },
    #[error("the store is shutting down")]
    Unavailable,
    #[error("writes are refused: {0}")]
    WritesRefused(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("request headers over the limit: {0}")]
    HeadersTooLarge(String),
    /// What is wrong with one part of a batch or transaction, and where it is
    /// (`ops[3]`, `compare[0]`): the part's own error, status and code.
    #[error("{at}: {source}")]
    At { at: String, source: Box<ApiError> },
    #[error("{got} ops is more than the {limit} allowed in one request")]
    TooManyOps { limit: usize, got: usize },
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidCursor(String),
    /// A write to a replica: `primary` takes them.
    #[error("this node is a replica and takes no writes: send them to its primary {primary}")]
    ReadOnly { primary: String },
}

/// The header a replica's 409 names its primary in.
pub const PRIMARY_HEADER: &str = "rustkv-primary";

fn describe(version: &Option<u64>) -> String {
    version.map_or_else(|| "none (absent)".to_owned(), |v| v.to_string())
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PreconditionFailed(failed) => ApiError::PreconditionFailed {
                current: failed.current,
            },
            StoreError::Unavailable => ApiError::Unavailable,
            StoreError::Refused(reason) => ApiError::WritesRefused(reason),
            StoreError::Following(primary) => ApiError::ReadOnly { primary },
        }
    }
}

impl ApiError {
    /// The status and the machine-readable code, per dialect.
    pub fn status(&self, dialect: Dialect) -> (StatusCode, &'static str) {
        // PyRustKV (FastAPI) answered validation errors with 422; native routes use 400.
        let invalid = match dialect {
            Dialect::Compat => StatusCode::UNPROCESSABLE_ENTITY,
            Dialect::Native => StatusCode::BAD_REQUEST,
        };
        match self {
            ApiError::InvalidBody(_) => (invalid, "invalid_body"),
            ApiError::InvalidKey(_) => (invalid, "invalid_key"),
            ApiError::InvalidPercentEscape(_) => (invalid, "invalid_percent_escape"),
            ApiError::InvalidTtl(_) => (invalid, "invalid_ttl"),
            ApiError::InvalidHeader(_) => (StatusCode::BAD_REQUEST, "invalid_header"),
            ApiError::KeyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "key_too_large"),
            ApiError::ValueTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "value_too_large"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyUnreadable(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::KeyNotFound => (StatusCode::NOT_FOUND, "key_not_found"),
            ApiError::RouteNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::PreconditionFailed { .. } => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::WritesRefused(_) => (StatusCode::SERVICE_UNAVAILABLE, "writes_refused"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::At { source, .. } => source.status(dialect),
            ApiError::TooManyOps { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_ops"),
            ApiError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::InvalidCursor(_) => (StatusCode::BAD_REQUEST, "invalid_cursor"),
            ApiError::ReadOnly { .. } => (StatusCode::CONFLICT, "read_only"),
        }
    }

    /// True for errors found before the request body was read. If the client sent a
    /// body, the connection is closed with `Connection: close` rather than left with
    /// unread bytes that would be taken for the next request.
    fn abandons_body(&self) -> bool {
        match self {
            ApiError::BodyTooLarge { .. }
            | ApiError::BodyUnreadable(_)
            | ApiError::UnsupportedMediaType(_)
            | ApiError::RouteNotFound { .. }
            | ApiError::MethodNotAllowed { .. }
            | ApiError::Unauthorized
            | ApiError::HeadersTooLarge(_) => true,
            ApiError::InvalidBody(_)
            | ApiError::InvalidKey(_)
            | ApiError::InvalidPercentEscape(_)
            | ApiError::InvalidTtl(_)
            | ApiError::InvalidHeader(_)
            | ApiError::KeyTooLarge { .. }
            | ApiError::ValueTooLarge { .. }
            | ApiError::KeyNotFound
            | ApiError::PreconditionFailed { .. }
            | ApiError::Unavailable
            | ApiError::WritesRefused(_)
            | ApiError::At { .. }
            | ApiError::TooManyOps { .. }
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidCursor(_) => false,
            ApiError::ReadOnly { .. } => false,
        }
    }

    pub fn respond(&self, req: &HttpRequest, dialect: Dialect) -> HttpResponse {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
            detail: String,
        }
        let (status, code) = self.status(dialect);
        let body = Body {
            error: (dialect == Dialect::Native).then_some(code),
            detail: self.to_string(),
        };
        let mut response = HttpResponse::build(status).json(body);
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        if let ApiError::ReadOnly { primary } = self
            && let Ok(value) = header::HeaderValue::from_str(primary)
        {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(PRIMARY_HEADER), value);
        }
        if self.abandons_body() && has_body(req) {
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        response
    }
}

fn has_body(req: &HttpRequest) -> bool {
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() != b"0");
    declared || headers.contains_key(header::TRANSFER_ENCODING)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant. The `match` has no catch-all arm, so a new variant does
    /// not compile until it is added here too.
    fn one_of_each() -> Vec<ApiError> {
        let text = || String::from("x");
        let all = vec![
            ApiError::InvalidBody(text()),
            ApiError::InvalidKey(text()),
            ApiError::InvalidPercentEscape(text()),
            ApiError::InvalidTtl(text()),
            ApiError::InvalidHeader(text()),
            ApiError::KeyTooLarge { limit: 1 },
            ApiError::ValueTooLarge { limit: 1 },
            ApiError::BodyTooLarge { limit: 1 },
            ApiError::BodyUnreadable(text()),
            ApiError::UnsupportedMediaType(text()),
            ApiError::KeyNotFound,
            ApiError::RouteNotFound {
                method: text(),
                path: text(),
            },
            ApiError::MethodNotAllowed {
                method: text(),
                path: text(),
                allow: "GET",
            },
            ApiError::PreconditionFailed { current: None },
            ApiError::Unavailable,
            ApiError::WritesRefused(text()),
            ApiError::Unauthorized,
            ApiError::HeadersTooLarge(text()),
            ApiError::At {
                at: text(),
                source: Box::new(ApiError::KeyNotFound),
            },
            ApiError::TooManyOps { limit: 1, got: 2 },
            ApiError::InvalidQuery(text()),
            ApiError::InvalidCursor(text()),
            ApiError::ReadOnly { primary: text() },
        ];
        for error in &all {
            match error {
                ApiError::InvalidBody(_)
                | ApiError::InvalidKey(_)
                | ApiError::InvalidPercentEscape(_)
                | ApiError::InvalidTtl(_)
                | ApiError::InvalidHeader(_)
                | ApiError::KeyTooLarge { .. }
                | ApiError::ValueTooLarge { .. }
                | ApiError::BodyTooLarge { .. }
                | ApiError::BodyUnreadable(_)
                | ApiError::UnsupportedMediaType(_)
                | ApiError::KeyNotFound
                | ApiError::RouteNotFound { .. }
                | ApiError::MethodNotAllowed { .. }
                | ApiError::PreconditionFailed { .. }
                | ApiError::Unavailable
                | ApiError::WritesRefused(_)
                | ApiError::Unauthorized
                | ApiError::HeadersTooLarge(_)
                | ApiError::At { .. }
                | ApiError::TooManyOps { .. }
                | ApiError::InvalidQuery(_)
                | ApiError::InvalidCursor(_) => {}
                ApiError::ReadOnly { .. } => {}
            }
        }
        all
    }

    /// Regression test: `headers_too_large` was missing from the document's list.
    #[test]
    fn every_code_is_listed_in_the_openapi_document() {
        use utoipa::OpenApi;
        let document = serde_json::to_value(crate::http::openapi::ApiDoc::openapi()).unwrap();
        let listed =
            document["components"]["schemas"]["NativeError"]["properties"]["error"]["description"]
                .as_str()
                .expect("NativeError.error is described");
        for error in one_of_each() {
            let code = error.status(Dialect::Native).1;
            assert!(
                listed.contains(&format!("`{code}`")),
                "{code} not in {listed:?}"
            );
        }
    }

    #[test]
    fn statuses_by_dialect() {
        let cases = [
            (ApiError::InvalidBody("x".into()), 422, 400),
            (ApiError::InvalidTtl("x".into()), 422, 400),
            (ApiError::InvalidPercentEscape("x".into()), 422, 400),
            (ApiError::KeyTooLarge { limit: 1 }, 413, 413),
            (
                ApiError::UnsupportedMediaType("text/plain".into()),
                415,
                415,
            ),
            (ApiError::KeyNotFound, 404, 404),
            (ApiError::PreconditionFailed { current: None }, 412, 412),
            (ApiError::Unavailable, 503, 503),
            (ApiError::WritesRefused("disk full".into()), 503, 503),
            (ApiError::Unauthorized, 401, 401),
            (ApiError::HeadersTooLarge("x".into()), 431, 431),
            (ApiError::TooManyOps { limit: 1, got: 2 }, 413, 413),
            (
                ApiError::At {
                    at: "ops[1]".into(),
                    source: Box::new(ApiError::ValueTooLarge { limit: 1 }),
                },
                413,
                413,
            ),
            (ApiError::InvalidCursor("x".into()), 400, 400),
            (
                ApiError::ReadOnly {
                    primary: "http://p".into(),
                },
                409,
                409,
            ),
        ];
        for (error, compat, native) in cases {
            assert_eq!(
                error.status(Dialect::Compat).0.as_u16(),
                compat,
                "{error:?}"
            );
            assert_eq!(
                error.status(Dialect::Native).0.as_u16(),
                native,
                "{error:?}"
            );
        }
    }
}

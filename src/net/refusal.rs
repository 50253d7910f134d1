//! The answers this layer gives by itself, for requests that never reach actix:
//! each refusal maps to a status in one exhaustive `match`, and renders as a
//! complete HTTP/1.1 response with the native JSON error body and
//! `Connection: close` (a refusal always ends the connection).
//!
//! They use the native dialect whatever the path: the request was refused before
//! any route family could be told from it.

use actix_web::http::StatusCode;
use bytes::Bytes;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not HTTP/1: a bad request line, header name, obs-fold, URI.
    #[error("{0}")]
    Malformed(String),
    /// A body whose end cannot be told for sure (request smuggling, RFC 9112 §6).
    #[error("{0}")]
    AmbiguousFraming(String),
    /// More header fields or head bytes than actix-http can hold.
    #[error("request headers over the limit: {0}")]
    HeadersTooLarge(String),
    /// A head not finished within `server.client_request_timeout` of its first byte.
    #[error("request head not received within {0}")]
    HeadTimeout(String),
    /// A body that stopped arriving for `server.client_body_timeout`.
    #[error("request body stalled: nothing received for {0}")]
    BodyTimeout(String),
    /// Plain HTTP sent to a port that speaks HTTPS.
    #[error("this port speaks HTTPS only: use an https:// URL")]
    PlainHttp,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        self.code().0
    }

    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            Refusal::AmbiguousFraming(_) => (StatusCode::BAD_REQUEST, "ambiguous_framing"),
            Refusal::HeadersTooLarge(_) => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Refusal::HeadTimeout(_) | Refusal::BodyTimeout(_) => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout")
            }
            Refusal::PlainHttp => (StatusCode::BAD_REQUEST, "https_required"),
        }
    }

    /// The whole response, head and body, ready to write.
    pub fn response(&self) -> Bytes {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            detail: String,
        }
        let (status, error) = self.code();
        let body = serde_json::to_string(&Body {
            error,
            detail: self.to_string(),
        })
        .unwrap_or_default();
        Bytes::from(format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_closing_json_response() {
        let response = Refusal::HeadTimeout("5s".into()).response();
        let text = std::str::from_utf8(&response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{head}"
        );
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "request_timeout");
        assert_eq!(json["detail"], "request head not received within 5s");
    }
}

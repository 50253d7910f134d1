//! The header-limit middleware: a request with more header fields than
//! `server.max_headers`, or more bytes of header names and values than
//! `server.max_header_bytes`, gets 431 in its route family's JSON error shape and
//! never reaches a handler.
//!
//! actix-http has fixed ceilings of its own (96 fields, a 128 KiB head) past which
//! it answers an empty 431 before any middleware runs; these limits are the
//! configurable ones below them.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    task::{Context, Poll, ready},
};

use actix_web::{
    Error,
    body::{BoxBody, EitherBody},
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::header::HeaderMap,
};
use pin_project_lite::pin_project;

use super::error::{ApiError, Dialect};

/// What a request's headers exceed, if anything.
fn excess(headers: &HeaderMap, max_headers: usize, max_bytes: usize) -> Option<String> {
    if headers.len() > max_headers {
        return Some(format!(
            "{} header fields, at most {max_headers}",
            headers.len()
        ));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (bytes > max_bytes)
        .then(|| format!("{bytes} bytes of header names and values, at most {max_bytes}"))
}

/// The middleware factory `App::wrap` takes: (most fields, most bytes).
pub struct HeaderLimits {
    pub max_headers: usize,
    pub max_bytes: usize,
}

impl<S, B> Transform<S, ServiceRequest> for HeaderLimits
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = HeaderLimitsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(HeaderLimitsService {
            service,
            max_headers: self.max_headers,
            max_bytes: self.max_bytes,
        }))
    }
}

pub struct HeaderLimitsService<S> {
    service: S,
    max_headers: usize,
    max_bytes: usize,
}

impl<S, B> Service<ServiceRequest> for HeaderLimitsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Checked<S::Future>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        match excess(request.headers(), self.max_headers, self.max_bytes) {
            None => Checked::Passed {
                inner: self.service.call(request),
            },
            Some(excess) => {
                let dialect = Dialect::of(request.path());
                let response =
                    ApiError::HeadersTooLarge(excess).respond(request.request(), dialect);
                Checked::Refused {
                    response: Some(request.into_response(response)),
                }
            }
        }
    }
}

pin_project! {
    /// Either the handler's future, or the refusal, ready at once.
    #[project = CheckedProj]
    pub enum Checked<F> {
        Passed { #[pin] inner: F },
        Refused { response: Option<ServiceResponse<BoxBody>> },
    }
}

impl<F, B> Future for Checked<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CheckedProj::Passed { inner } => {
                Poll::Ready(ready!(inner.poll(cx)).map(ServiceResponse::map_into_left_body))
            }
            CheckedProj::Refused { response } => {
                let response = response.take().expect("polled after completion");
                Poll::Ready(Ok(response.map_into_right_body()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn counts_fields_and_bytes() {
        let mut headers = HeaderMap::new();
        for index in 0..4 {
            let name = HeaderName::try_from(format!("x-h{index}")).unwrap();
            headers.append(name, HeaderValue::from_static("abcdef"));
        }
        // 4 fields of 4 + 6 bytes each.
        assert_eq!(excess(&headers, 4, 40), None);
        assert!(excess(&headers, 3, 40).unwrap().contains("4 header fields"));
        assert!(excess(&headers, 4, 39).unwrap().contains("40 bytes"));
    }
}

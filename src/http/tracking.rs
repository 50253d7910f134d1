//! The request-metrics middleware: counts every request by route and status class
//! and times it, into the handles `metrics::Metrics` registered.
//!
//! Written as a plain `Transform`/`Service` pair rather than with `from_fn`, which
//! boxes a future and clones an `Rc`'d service per request: here the future is the
//! inner service's, wrapped in place, and each worker holds its own clones of the
//! metric handles, so a request pays one non-atomic `Rc` clone, two TSC clock reads
//! (quanta) and the metric updates themselves.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, ready},
};

use actix_web::{
    Error,
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{Method, StatusCode},
};
use pin_project_lite::pin_project;
use prometheus::{Histogram, IntCounter};

/// Route labels: a fixed set, so a client cannot grow the label space. Declared in
/// the order of `Route`, so a route's label is `ROUTES[route as usize]`.
pub const ROUTES: [&str; 13] = [
    "compat_insert",
    "compat_get",
    "compat_delete",
    "native_get",
    "native_put",
    "native_delete",
    "batch",
    "scan",
    "txn",
    "health",
    "stats",
    "replication",
    "other",
];
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    CompatInsert,
    CompatGet,
    CompatDelete,
    NativeGet,
    NativePut,
    NativeDelete,
    Batch,
    Scan,
    Txn,
    Health,
    Stats,
    Replication,
    Other,
}

/// Which route label a request counts under. A method a key route does not take
/// (a 405) counts under `other`, like an unknown route, not under that path's reads.
fn route_of(method: &Method, path: &str) -> Route {
    if path.starts_with("/kv/") {
        match *method {
            Method::PUT if path == "/kv/insert" => Route::CompatInsert,
            Method::GET | Method::HEAD => Route::CompatGet,
            Method::DELETE => Route::CompatDelete,
            _ => Route::Other,
        }
    } else if path.starts_with("/v1/kv/") {
        match *method {
            Method::GET | Method::HEAD => Route::NativeGet,
            Method::PUT => Route::NativePut,
            Method::DELETE => Route::NativeDelete,
            _ => Route::Other,
        }
    } else if path == "/v1/kv" && matches!(*method, Method::GET | Method::HEAD) {
        Route::Scan
    } else if path == "/v1/batch" && method == Method::POST {
        Route::Batch
    } else if path == "/v1/txn" && method == Method::POST {
        Route::Txn
    } else if path == "/health" || path == "/health/primary" {
        Route::Health
    } else if path == "/v1/stats" {
        Route::Stats
    } else if path == "/v1/replication" || path.starts_with("/v1/replication/") {
        Route::Replication
    } else {
        Route::Other
    }
}

/// The per-route metric handles, resolved once (no label lookups per request).
#[derive(Clone)]
pub struct RouteHandles {
    /// `[route][class]`
    pub requests: Vec<Vec<IntCounter>>,
    /// `[route]`
    pub latency: Vec<Histogram>,
}

impl RouteHandles {
    fn observe(&self, route: Route, status: StatusCode, seconds: f64) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.requests[route as usize][class].inc();
        self.latency[route as usize].observe(seconds);
    }
}

/// The middleware factory `App::wrap` takes.
pub struct RequestMetrics(pub RouteHandles);

impl<S, B> Transform<S, ServiceRequest> for RequestMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    /// Runs once per worker thread: the worker gets its own `Rc` of the handles.
    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestMetricsService {
            service,
            handles: Rc::new(self.0.clone()),
        }))
    }
}

pub struct RequestMetricsService<S> {
    service: S,
    handles: Rc<RouteHandles>,
}

impl<S, B> Service<ServiceRequest> for RequestMetricsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Tracked<S::Future>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let route = route_of(request.method(), request.path());
        Tracked {
            started: quanta::Instant::now(),
            route,
            handles: Rc::clone(&self.handles),
            inner: self.service.call(request),
        }
    }
}

pin_project! {
    /// The inner service's future, observed when it completes.
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        handles: Rc<RouteHandles>,
        route: Route,
        started: quanta::Instant,
    }
}

impl<F, B> Future for Tracked<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        // An `Err` becomes its error's response further out; count it as that.
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        let seconds = this.started.elapsed().as_secs_f64();
        this.handles.observe(*this.route, status, seconds);
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_indexes_name_their_labels() {
        let cases = [
            (Method::PUT, "/kv/insert", "compat_insert"),
            (Method::GET, "/kv/a", "compat_get"),
            (Method::DELETE, "/kv/delete/a", "compat_delete"),
            (Method::GET, "/v1/kv/a", "native_get"),
            (Method::PUT, "/v1/kv/a", "native_put"),
            (Method::DELETE, "/v1/kv/a", "native_delete"),
            (Method::GET, "/health", "health"),
            (Method::GET, "/v1/stats", "stats"),
            (Method::GET, "/health/primary", "health"),
            (Method::GET, "/v1/replication", "replication"),
            (Method::POST, "/v1/replication/promote", "replication"),
            (Method::GET, "/v1/replication/sync", "replication"),
            (Method::GET, "/v1/replicationx", "other"),
            (Method::GET, "/metrics", "other"),
            (Method::HEAD, "/kv/a", "compat_get"),
            (Method::HEAD, "/v1/kv/a", "native_get"),
            (Method::DELETE, "/kv/a", "compat_delete"),
            (Method::GET, "/kv/insert", "compat_get"),
            // Methods the route does not take (405) are not its reads.
            (Method::PUT, "/kv/a", "other"),
            (Method::POST, "/kv/insert", "other"),
            (Method::PATCH, "/kv/delete/a", "other"),
            (Method::POST, "/v1/kv/a", "other"),
            (Method::OPTIONS, "/v1/kv/a", "other"),
            (Method::POST, "/v1/batch", "batch"),
            (Method::GET, "/v1/kv", "scan"),
            (Method::HEAD, "/v1/kv", "scan"),
            (Method::POST, "/v1/txn", "txn"),
            (Method::GET, "/v1/batch", "other"),
            (Method::PUT, "/v1/kv", "other"),
        ];
        for (method, path, label) in cases {
            assert_eq!(
                ROUTES[route_of(&method, path) as usize],
                label,
                "{method} {path}"
            );
        }
        assert_eq!(ROUTES.len(), Route::Other as usize + 1);
    }
}

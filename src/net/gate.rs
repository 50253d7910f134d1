//! The service between actix-http and the App: it tells the connection each time a
//! request is answered (opening the gate for the next, see `framing::Gate`) and
//! whether the answer closes the connection, and it marks answers
//! `Connection: close` when the connection will end after them anyway.

use std::{
    cell::Cell,
    future::{Future, Ready, ready as ready_ok},
    marker::PhantomData,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll, Waker, ready},
};

use actix_http::{Request, Response, body::MessageBody};
use actix_service::{Service, Transform};
use actix_web::http::ConnectionType;
use pin_project_lite::pin_project;

use super::Lifecycle;

/// What a connection and the requests on it share; one thread, so `Cell`s.
pub struct Shared {
    /// The process's lifecycle, cloned once per connection rather than once per
    /// request: its count is shared by every worker thread.
    lifecycle: Arc<Lifecycle>,
    answered: Cell<u64>,
    /// An answer said `Connection: close`.
    closing: Cell<bool>,
    /// The request in flight ends the connection (the framing said so).
    last: Cell<bool>,
    /// The connection's reader, parked until the next answer.
    reader: Cell<Option<Waker>>,
    /// HTTP/2: requests run side by side, and the connection counts them
    /// (`in_flight`) to know when it is idle. HTTP/1 has its framing for that.
    multiplexed: bool,
    in_flight: Cell<usize>,
}

impl Shared {
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        Shared {
            lifecycle,
            answered: Cell::default(),
            closing: Cell::default(),
            last: Cell::default(),
            reader: Cell::default(),
            multiplexed: false,
            in_flight: Cell::default(),
        }
    }

    /// For an HTTP/2 connection, which counts its requests in flight.
    pub fn multiplexed(lifecycle: Arc<Lifecycle>) -> Self {
        Shared {
            multiplexed: true,
            ..Shared::new(lifecycle)
        }
    }

    /// Requests received and not yet answered (counted on HTTP/2 only).
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    pub fn answered(&self) -> u64 {
        self.answered.get()
    }

    pub fn closing(&self) -> bool {
        self.closing.get()
    }

    pub fn set_last(&self, last: bool) {
        self.last.set(last);
    }

    pub fn park(&self, waker: &Waker) {
        self.reader.set(Some(waker.clone()));
    }

    fn answer(&self, closes: bool) {
        self.answered.set(self.answered.get() + 1);
        self.closing.set(self.closing.get() | closes);
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }
}

/// Put into each request's connection data by `on_connect_ext`.
#[derive(Clone)]
pub struct ConnHandle(pub Rc<Shared>);

/// Wraps each worker's App service in `Gated` (`actix_service::apply`).
pub struct GateLayer<B> {
    body: PhantomData<fn() -> B>,
}

impl<B> GateLayer<B> {
    pub fn new() -> Self {
        GateLayer { body: PhantomData }
    }
}

impl<S, B> Transform<S, Request> for GateLayer<B>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    B: MessageBody,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Transform = Gated<S, B>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready_ok(Ok(Gated {
            service,
            body: PhantomData,
        }))
    }
}

/// The App's service, reporting answers to the connection.
pub struct Gated<S, B> {
    service: S,
    body: PhantomData<fn() -> B>,
}

impl<S, B> Service<Request> for Gated<S, B>
where
    S: Service<Request>,
    S::Response: Into<Response<B>>,
    B: MessageBody,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Answer<S::Future, B>;

    actix_service::forward_ready!(service);

    fn call(&self, request: Request) -> Self::Future {
        let shared = request
            .conn_data::<ConnHandle>()
            .map(|handle| handle.0.clone());
        let in_flight = shared
            .as_ref()
            .filter(|shared| shared.multiplexed)
            .map(|shared| InFlight::new(Rc::clone(shared)));
        Answer {
            inner: self.service.call(request),
            shared,
            _in_flight: in_flight,
            body: PhantomData,
        }
    }
}

pin_project! {
    /// The App's answer, reported to the connection when it is ready.
    pub struct Answer<F, B> {
        #[pin]
        inner: F,
        shared: Option<Rc<Shared>>,
        // Counts the request until its answer is ready or it is dropped (an
        // HTTP/2 stream reset by the client drops it unanswered).
        _in_flight: Option<InFlight>,
        body: PhantomData<fn() -> B>,
    }
}

/// One HTTP/2 request in flight on its connection.
struct InFlight(Rc<Shared>);

impl InFlight {
    fn new(shared: Rc<Shared>) -> InFlight {
        shared.in_flight.set(shared.in_flight.get() + 1);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    /// The last request leaving wakes the reader, which may now time out as idle.
    fn drop(&mut self) {
        let left = self.0.in_flight.get() - 1;
        self.0.in_flight.set(left);
        if left == 0
            && let Some(waker) = self.0.reader.take()
        {
            waker.wake();
        }
    }
}

impl<F, R, E, B> Future for Answer<F, B>
where
    F: Future<Output = Result<R, E>>,
    R: Into<Response<B>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        this._in_flight.take();
        let Some(shared) = this.shared.take() else {
            return Poll::Ready(result.map(Into::into));
        };
        let Ok(response) = result else {
            // actix renders the error; whether it closes is unknown: assume it does.
            shared.answer(true);
            return Poll::Ready(result.map(Into::into));
        };
        let mut response: Response<B> = response.into();
        // actix-http pools response heads and does not reset their version: a head
        // that last answered an HTTP/1.0 request still says 1.0, and
        // `connection_type()` reads that as "close". The codec sets the version
        // from the request when it writes the head; until then, only an explicit
        // close may count.
        response.head_mut().version = actix_http::Version::HTTP_11;
        let ends = shared.last.get() || shared.lifecycle.stopping();
        if ends {
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        let closes = ends || response.head().connection_type() == ConnectionType::Close;
        shared.answer(closes);
        Poll::Ready(Ok(response))
    }
}

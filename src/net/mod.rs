//! The connection layer: TCP streams to actix-http, and the HTTP/1 rules actix-http
//! 3.11 does not enforce by itself, kept in one place instead of a fork of it.
//!
//! - `framing` (with `head`): a tracker that knows where each request's head and
//!   body end, so it can refuse ambiguous framing (request smuggling), answer
//!   malformed heads with JSON instead of actix's empty 400, strip chunk trailers,
//!   and end the stream after a request that closes the connection.
//! - `conn`: the stream type actix reads through the tracker; the head, body and
//!   keep-alive deadlines. Over `transport`: the TCP stream, or TLS over it.
//! - `accept`: what a new connection becomes, a `Conn` (HTTP/1.1) or an
//!   `h2::Multiplexed` (HTTP/2, which has no HTTP/1 framing to track): on an HTTPS
//!   port by ALPN after the TLS handshake, on a plain port by whether the client
//!   opens with HTTP/2's preface (h2c). `stream` is the one type actix-http serves
//!   for both.
//! - `gate`: the service in front of the App that reports each answer back to the
//!   connection (so nothing pipelined after a `Connection: close` answer runs).
//! - `refusal`: the JSON answers this layer gives by itself.
//! - `Lifecycle`: running, draining, stopping, shared with `/health` and `server`.
//!
//! Why a wrapper: actix-http 3.12-3.20 fix some of this (ambiguous framing refused
//! with an empty 400 since 3.12.1, idle connections closed on shutdown since 3.13.3,
//! trailers since 3.18.10) but need Rust 1.89, answer without JSON, and apply the
//! head timeout to the first request only; body timeouts are left to applications
//! (actix-web #928). Patching the dispatcher would mean vendoring 1,300 lines.

mod accept;
mod conn;
pub mod framing;
mod gate;
mod h2;
pub mod head;
pub mod refusal;
mod stream;
mod transport;

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_http::{HttpService, KeepAlive, Request, Response, body::MessageBody};
use actix_rt::net::TcpStream;
use actix_service::{IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_service};
use actix_web::{Error, dev::AppConfig};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use accept::Handshake;
pub use conn::Timeouts;
use gate::GateLayer;
use stream::Stream;

use crate::tls::Tls;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const STOPPING: u8 = 2;

/// Where the server is in its life; one for the whole process.
#[derive(Default)]
pub struct Lifecycle {
    phase: AtomicU8,
    /// Open connections, so a shutdown knows when the last one is gone.
    open: AtomicUsize,
    /// Cancelled when reading stops, waking idle connections to close.
    stop: CancellationToken,
}

impl Lifecycle {
    /// `/health` says so, so load balancers move traffic away; requests are served.
    pub fn draining(&self) -> bool {
        self.phase.load(Ordering::Relaxed) >= DRAINING
    }

    /// No new requests are read; answers close their connections.
    pub fn stopping(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == STOPPING
    }

    pub fn start_draining(&self) {
        let _ =
            self.phase
                .compare_exchange(RUNNING, DRAINING, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn stop_reading(&self) {
        self.phase.store(STOPPING, Ordering::Relaxed);
        self.stop.cancel();
    }

    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn stopped(&self) -> WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("phase", &self.phase)
            .field("open", &self.open)
            .finish()
    }
}

/// The App as a service for actix-http: errors rendered, the gate in front. A
/// macro, not a function: `HttpService` needs the concrete service types that an
/// `impl ServiceFactory` return would hide.
macro_rules! gated {
    ($app:expr) => {{
        let app = $app
            .into_factory()
            .map_err(|error| error.into().error_response())
            .map_init_err(|error| log::error!("cannot start the App: {error:?}"));
        let app = actix_service::map_config(app, |()| AppConfig::default());
        actix_service::apply(GateLayer::new(), app)
    }};
}

/// actix's keep-alive: `Conn` and `Multiplexed` time idle connections out
/// themselves, so actix need not (and sends no HTTP/2 pings).
fn keep_alive(timeouts: &Timeouts) -> KeepAlive {
    match timeouts.keep_alive.is_zero() {
        false => KeepAlive::Os,
        true => KeepAlive::Disabled,
    }
}

/// Turns Nagle's algorithm off for a new connection; answers its peer's address.
/// With Nagle on, the answers to pipelined requests (several small writes while the
/// first is unacknowledged) wait for the client's delayed ACK: 40 ms each batch on
/// Linux. Every answer is written whole, so nothing gains from the coalescing.
fn no_delay(io: &TcpStream) -> Option<SocketAddr> {
    if let Err(error) = io.set_nodelay(true) {
        log::debug!("TCP_NODELAY not set: {error}");
    }
    io.peer_addr().ok()
}

/// The service for one listener, called once per worker with that worker's App,
/// as `HttpServer` builds over `TcpStream`. Without `tls`, plain HTTP: HTTP/1.1
/// through `Conn`, or HTTP/2 for a client that opens with its preface (h2c). With
/// it, HTTPS: the TLS handshake, then HTTP/1.1 through `Conn` or HTTP/2, as ALPN
/// chose. Only how a connection is accepted differs (`accept`).
pub fn serve<F, S, B>(
    app: F,
    timeouts: Timeouts,
    lifecycle: Arc<Lifecycle>,
    local: SocketAddr,
    tls: Option<Arc<Tls>>,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    F: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let builder = HttpService::<Stream, _, _>::build()
        .keep_alive(keep_alive(&timeouts))
        // Conn applies it to every head; actix only to a connection's first.
        .client_request_timeout(Duration::ZERO)
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(local);
    let builder = match tls {
        Some(_) => builder.secure(),
        None => builder,
    };
    let service = builder
        .on_connect_ext(|io: &Stream, data| {
            data.insert(io.handle());
        })
        .finish(gated!(app));
    let handshake = tls.map(|tls| Handshake {
        tls,
        lifecycle: Arc::clone(&lifecycle),
        timeouts,
    });
    fn_service(move |io: TcpStream| {
        let peer = no_delay(&io);
        let (handshake, lifecycle) = (handshake.clone(), Arc::clone(&lifecycle));
        async move {
            let (stream, protocol) = match handshake {
                Some(handshake) => handshake.accept(io).await?,
                None => accept::plain(io, lifecycle, timeouts).await?,
            };
            Ok((stream, protocol, peer))
        }
    })
    .and_then(service)
}

//! What a new connection turns into: an HTTP/1 `Conn` or an HTTP/2
//! `Multiplexed`. On a TLS port the handshake comes first and ALPN decides; on a
//! plain port a client that opens with HTTP/2's preface gets HTTP/2 (h2c with
//! prior knowledge, RFC 9113 §3.3, as `oha --http2` and h2load speak it), any
//! other HTTP/1.
//!
//! A plain-HTTP request to this port is answered before any handshake: with a
//! 400 in JSON saying to use https, as nginx does, rather than rustls's alert,
//! which a client speaking plain HTTP shows as a garbled or empty reply. Anything
//! else that is not TLS, and any handshake not done within
//! `client_request_timeout`, closes the connection.

use std::{io, sync::Arc, time::Duration};

use actix_codec::{AsyncRead, AsyncWrite};
use actix_http::Protocol;
use actix_rt::{net::TcpStream, time::timeout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use super::{
    Lifecycle, Timeouts, conn::Conn, h2::Multiplexed, refusal::Refusal, stream::Stream,
    transport::Transport,
};
use crate::tls::Tls;

/// A TLS record's first byte: a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The start of HTTP/2's connection preface: no HTTP/1 request line begins so.
/// actix-http's own `tcp_auto_h2c` peeks at the same twelve bytes.
const H2_PREFACE: &[u8; 12] = b"PRI * HTTP/2";

/// A plain connection: HTTP/2 if its first bytes are the preface, else HTTP/1.
/// Waits for the first bytes up to the longer of `keep_alive` (a connection that
/// never speaks is idle) and `client_request_timeout` (the first request's head
/// deadline, which an HTTP/1 connection applies from its start), and closes if
/// none come.
pub async fn plain(
    tcp: TcpStream,
    lifecycle: Arc<Lifecycle>,
    timeouts: Timeouts,
) -> io::Result<(Stream, Protocol)> {
    let mut first = [0u8; H2_PREFACE.len()];
    let wait = timeouts.keep_alive.max(timeouts.head);
    let peeked = timeout(wait, tcp.peek(&mut first)).await;
    let read = peeked.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))?;
    if read == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(if &first == H2_PREFACE {
        let stream = Multiplexed::new(Transport::Plain(tcp), lifecycle, timeouts.keep_alive);
        (Stream::H2(stream), Protocol::Http2)
    } else {
        let conn = Conn::new(Transport::Plain(tcp), lifecycle, timeouts);
        (Stream::H1(conn), Protocol::Http1)
    })
}

/// How long the plain-HTTP refusal waits for the client to finish sending, so
/// that closing with its request unread does not reset the connection (which
/// can discard the refusal before the client reads it).
const DRAIN: Duration = Duration::from_millis(500);

/// Everything a listener's handshakes need.
#[derive(Clone)]
pub struct Handshake {
    pub tls: Arc<Tls>,
    pub lifecycle: Arc<Lifecycle>,
    pub timeouts: Timeouts,
}

impl Handshake {
    /// The connection, ready for actix-http; an error if it never got there.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<(Stream, Protocol)> {
        let limit = self.timeouts.head;
        let peer = tcp.peer_addr().ok();
        let result = timeout(limit, self.negotiate(tcp)).await;
        let outcome = result.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
        if let Err(error) = &outcome {
            self.tls.counters.handshake_failed();
            log::debug!("TLS handshake with {peer:?} failed: {error}");
        }
        outcome
    }

    async fn negotiate(&self, mut tcp: TcpStream) -> io::Result<(Stream, Protocol)> {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if first[0] != TLS_HANDSHAKE {
            if first[0].is_ascii_uppercase() {
                refuse_plain_http(&mut tcp).await;
            }
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not TLS"));
        }
        let acceptor = TlsAcceptor::from(self.tls.server_config());
        let tls = Box::new(acceptor.accept(tcp).await?);
        let (lifecycle, timeouts) = (Arc::clone(&self.lifecycle), self.timeouts);
        Ok(match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => {
                let stream = Multiplexed::new(Transport::Tls(tls), lifecycle, timeouts.keep_alive);
                (Stream::H2(stream), Protocol::Http2)
            }
            // http/1.1, or a client without ALPN: HTTP/1.
            _ => {
                let conn = Conn::new(Transport::Tls(tls), lifecycle, timeouts);
                (Stream::H1(conn), Protocol::Http1)
            }
        })
    }
}

/// Answers a plain-HTTP request with a JSON 400 and closes.
async fn refuse_plain_http(tcp: &mut TcpStream) {
    let refusal = Refusal::PlainHttp;
    if tcp.write_all(&refusal.response()).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
    let _ = timeout(DRAIN, drain(tcp)).await;
}

/// Reads until the client closes.
async fn drain(io: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    let mut sink = [0u8; 4096];
    while matches!(io.read(&mut sink).await, Ok(1..)) {}
}

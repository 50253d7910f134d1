//! `Transport`: what an HTTP/1 connection's bytes travel on, the TCP stream itself
//! or TLS over it. The framing tracker (`Conn`) sits above either, so HTTPS gets
//! every HTTP/1 rule plain HTTP has.

use std::{
    io::{self, Write},
    pin::Pin,
    task::{Context, Poll},
};

use actix_codec::{AsyncRead, AsyncWrite, ReadBuf};
use actix_rt::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub enum Transport {
    Plain(TcpStream),
    /// Boxed: a TLS session is over a kilobyte, a TCP stream a few words.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// Writes what the socket takes now, without waiting, for a last word on a
    /// connection being dropped: errors and short writes are ignored.
    pub fn try_write(&mut self, bytes: &[u8]) {
        match self {
            Transport::Plain(tcp) => {
                let _ = tcp.try_write(bytes);
            }
            Transport::Tls(stream) => {
                let (tcp, session) = stream.get_mut();
                if session.writer().write_all(bytes).is_err() {
                    return;
                }
                while session.wants_write() {
                    match session.write_tls(&mut NowOrNever(tcp)) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
        }
    }
}

/// The TCP stream as a blocking-style `Write` that never blocks: what rustls's
/// `write_tls` needs to push records out from `Drop`.
struct NowOrNever<'a>(&'a TcpStream);

impl Write for NowOrNever<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Forwards a call to whichever stream this is.
macro_rules! forward {
    ($self:expr, $stream:ident => $call:expr) => {
        match $self.get_mut() {
            Transport::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Transport::Tls($stream) => {
                let $stream = Pin::new(&mut **$stream);
                $call
            }
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, stream => stream.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, stream => stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self, stream => stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(tcp) => tcp.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, stream => stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, stream => stream.poll_shutdown(cx))
    }
}

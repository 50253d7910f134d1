//! `Stream`: what actix-http serves on a TLS port, one type for both protocols
//! (actix-http's `HttpService` dispatches on the `Protocol` given with it).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use actix_codec::{AsyncRead, AsyncWrite, ReadBuf};

use super::{conn::Conn, gate::ConnHandle, h2::Multiplexed};

// One per connection, made once and never moved after: boxing the larger variant
// would cost an allocation per connection to save bytes nobody copies.
#[allow(clippy::large_enum_variant)]
pub enum Stream {
    /// HTTP/1.1 through the framing tracker, as on a plain port.
    H1(Conn),
    H2(Multiplexed),
}

impl Stream {
    /// For the requests' connection data (`on_connect_ext`).
    pub fn handle(&self) -> ConnHandle {
        match self {
            Stream::H1(conn) => conn.handle(),
            Stream::H2(conn) => conn.handle(),
        }
    }
}

/// Forwards a call to whichever connection this is.
macro_rules! forward {
    ($self:expr, $conn:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::H1($conn) => {
                let $conn = Pin::new($conn);
                $call
            }
            Stream::H2($conn) => {
                let $conn = Pin::new($conn);
                $call
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, conn => conn.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, conn => conn.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self, conn => conn.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::H1(conn) => conn.is_write_vectored(),
            Stream::H2(conn) => conn.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, conn => conn.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, conn => conn.poll_shutdown(cx))
    }
}

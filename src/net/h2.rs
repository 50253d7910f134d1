//! `Multiplexed`: the stream an HTTP/2 connection runs on (TLS after ALPN chose
//! h2, or plain TCP whose client opened with the HTTP/2 preface: h2c). HTTP/2 frames are
//! not HTTP/1 messages, so the framing tracker stays out of it (h2 parses and
//! bounds its own frames); what it keeps from `Conn` is the connection's place in
//! the `Lifecycle` and an end: an idle connection (no request in flight) closes
//! after `keep_alive`, and one a shutdown finds idle closes at once.
//!
//! Closing is ending the read side: actix-http's h2 dispatcher then ends the
//! connection. It cannot send GOAWAY first (actix-http 3.11 keeps the h2
//! connection to itself), so a client sees its connection close between
//! requests, as an HTTP/1 client does at keep-alive's end.

use std::{
    io,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_codec::{AsyncRead, AsyncWrite, ReadBuf};
use actix_rt::time::{Instant, Sleep, sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    Lifecycle,
    gate::{ConnHandle, Shared},
    transport::Transport,
};

/// How long a shutdown leaves an idle connection to write its last answer: the
/// request leaves `in_flight` as its answer is handed to the dispatcher, a moment
/// before its frames are written, and h2 drops what is unwritten when reading ends.
const LAST_WRITE_GRACE: Duration = Duration::from_millis(100);

pub struct Multiplexed {
    io: Transport,
    shared: Rc<Shared>,
    lifecycle: Arc<Lifecycle>,
    keep_alive: Duration,
    /// When the connection counts as idle; armed when it becomes idle.
    timer: Pin<Box<Sleep>>,
    armed: bool,
    /// Resolves when a shutdown stops reading requests, to wake an idle connection.
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The read side has ended (idle or shutdown): it stays ended.
    ended: bool,
}

impl Multiplexed {
    pub fn new(io: Transport, lifecycle: Arc<Lifecycle>, keep_alive: Duration) -> Self {
        lifecycle.connection_opened();
        Multiplexed {
            io,
            shared: Rc::new(Shared::multiplexed(Arc::clone(&lifecycle))),
            stopped: Box::pin(lifecycle.stopped()),
            lifecycle,
            keep_alive,
            timer: Box::pin(sleep(Duration::ZERO)),
            armed: false,
            ended: false,
        }
    }

    /// For the requests' connection data (`on_connect_ext`).
    pub fn handle(&self) -> ConnHandle {
        ConnHandle(Rc::clone(&self.shared))
    }

    /// Whether the read side should end now; if not, this task is woken when
    /// that may change (a request leaving, the timer, a shutdown).
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.shared.in_flight() > 0 {
            self.shared.park(cx.waker());
            self.armed = false;
            return false;
        }
        let stopping = self.lifecycle.stopping() || self.stopped.as_mut().poll(cx).is_ready();
        if !self.armed || stopping {
            let wait = if stopping {
                LAST_WRITE_GRACE
            } else {
                self.keep_alive
            };
            let deadline = Instant::now() + wait;
            if !self.armed || deadline < self.timer.deadline() {
                self.timer.as_mut().reset(deadline);
            }
            self.armed = true;
        }
        self.timer.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for Multiplexed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(result) = Pin::new(&mut this.io).poll_read(cx, buf) {
            // Anything from the client (a request, a ping) moves the idle deadline.
            this.armed = false;
            return Poll::Ready(result);
        }
        if this.idle_expired(cx) {
            this.ended = true;
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl AsyncWrite for Multiplexed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Drop for Multiplexed {
    fn drop(&mut self) {
        self.lifecycle.connection_closed();
    }
}

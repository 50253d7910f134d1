//! `Conn`: the stream actix-http reads HTTP/1 requests from (TCP, or TLS over
//! it), through the framing tracker. It owns the deadlines actix lacks or applies
//! once: every head gets `client_request_timeout` from its first byte (408 after), a body gets
//! `client_body_timeout` per period without progress, an idle connection gets
//! `keep_alive`. Ending the stream for actix is how it stops a connection: actix
//! answers what it has, then shuts the write side down, and a refusal (400, 408,
//! 431) is written then, after every answer actix had to give.
//!
//! A body cut short is different: actix-http 3.11 takes an end of stream in the
//! middle of a body for the body's end (fixed in 3.12.0, #3067), and the handler
//! would store a truncated value. So there the stream fails with an I/O error
//! instead: actix drops the request unanswered, and `Drop` writes the 408.

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
use bytes::{Buf, Bytes};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    Lifecycle,
    framing::{Framing, Gate, Phase},
    gate::{ConnHandle, Shared},
    refusal::Refusal,
    transport::Transport,
};

/// The deadlines a connection applies, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub head: Duration,
    pub body: Duration,
    pub keep_alive: Duration,
}

/// What the armed timer is for: a phase of one request.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Armed {
    phase: Phase,
    requests: u64,
}

pub struct Conn {
    io: Transport,
    framing: Framing,
    shared: Rc<Shared>,
    lifecycle: Arc<Lifecycle>,
    timeouts: Timeouts,
    /// One timer per connection, reset rather than reallocated. It fires at or
    /// before `due`; see `expired`.
    timer: Pin<Box<Sleep>>,
    /// The current phase's deadline.
    due: Instant,
    armed: Option<Armed>,
    /// Bytes arrived since the timer was armed (a body's deadline moves with them).
    progress: bool,
    /// Resolves when a shutdown stops reading requests, to wake an idle connection.
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// `stopped` has been polled once, so it holds this task's waker. Polling it
    /// again would lock the process-wide token's waiter list on every request;
    /// a connection is one task, so its waker does not change.
    stop_registered: bool,
    /// A refusal's response, being written before the write side shuts down.
    refusal: Option<Bytes>,
}

impl Conn {
    pub fn new(io: Transport, lifecycle: Arc<Lifecycle>, timeouts: Timeouts) -> Conn {
        lifecycle.connection_opened();
        Conn {
            io,
            framing: Framing::new(),
            shared: Rc::new(Shared::new(Arc::clone(&lifecycle))),
            stopped: Box::pin(lifecycle.stopped()),
            stop_registered: false,
            lifecycle,
            timeouts,
            timer: Box::pin(sleep(Duration::ZERO)),
            due: Instant::now(),
            armed: None,
            progress: false,
            refusal: None,
        }
    }

    /// For the requests' connection data (`on_connect_ext`).
    pub fn handle(&self) -> ConnHandle {
        ConnHandle(Rc::clone(&self.shared))
    }

    fn gate(&self) -> Gate {
        Gate {
            answered: self.shared.answered(),
            closing: self.shared.closing() || self.lifecycle.stopping(),
        }
    }

    /// Hands ready bytes to actix; `None` when there are none.
    fn deliver(&mut self, dst: &mut ReadBuf<'_>) -> Option<Poll<io::Result<()>>> {
        let ready = self.framing.ready();
        if ready.is_empty() {
            return self.framing.ended().then_some(Poll::Ready(Ok(())));
        }
        let count = ready.len().min(dst.remaining());
        dst.put_slice(&ready[..count]);
        self.framing.consume(count);
        self.shared.set_last(self.framing.closes());
        Some(Poll::Ready(Ok(())))
    }

    /// The deadline for the current phase, if it has one.
    fn deadline(&self) -> Option<Duration> {
        let timeouts = &self.timeouts;
        match self.framing.phase() {
            Phase::Between if self.framing.requests() == 0 => Some(timeouts.head),
            Phase::Between => Some(timeouts.keep_alive),
            Phase::Head => Some(timeouts.head),
            Phase::Body => Some(timeouts.body),
            Phase::Finished => None,
        }
    }

    /// What missing the current phase's deadline is answered with: built only
    /// then, since it formats text.
    fn missed(&self) -> Option<Refusal> {
        let waited = |timeout| humantime::format_duration(timeout).to_string();
        match self.framing.phase() {
            Phase::Head => Some(Refusal::HeadTimeout(waited(self.timeouts.head))),
            Phase::Body => Some(Refusal::BodyTimeout(waited(self.timeouts.body))),
            Phase::Between | Phase::Finished => None,
        }
    }

    /// Arms the deadline for this phase if needed; true once it has passed.
    ///
    /// Each request arms two or three deadlines (head, body, keep-alive), but the
    /// runtime's timer is moved only when it would fire too late: moving it costs
    /// a timer-wheel removal and insertion (~300 instructions a request, callgrind).
    /// A timer left at an earlier deadline fires early, finds `due` still ahead,
    /// and is moved on then: about once per timeout period, not per request.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.deadline() else {
            return false;
        };
        let armed = Armed {
            phase: self.framing.phase(),
            requests: self.framing.requests(),
        };
        let rearm = self.armed != Some(armed) || (armed.phase == Phase::Body && self.progress);
        if rearm {
            self.due = Instant::now() + timeout;
            self.armed = Some(armed);
            self.progress = false;
            if self.timer.deadline() > self.due {
                self.timer.as_mut().reset(self.due);
            }
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.timer.deadline() >= self.due {
                return true;
            }
            self.timer.as_mut().reset(self.due);
        }
        false
    }

    /// Whether a shutdown has stopped reading requests; registers this task to be
    /// woken when it does.
    fn stop_requested(&mut self, cx: &mut Context<'_>) -> bool {
        self.lifecycle.stopping() || self.register_stop(cx)
    }

    /// Has a shutdown wake this task, once per connection; true if it already
    /// stopped. Done on every read that waits, not only between requests: actix
    /// polls the read side again after an answer only when bytes arrive, so a
    /// connection whose first poll already had its request (the h2c peek, a TLS
    /// handshake) and that then goes idle would otherwise sleep through the
    /// shutdown until `shutdown_timeout`.
    fn register_stop(&mut self, cx: &mut Context<'_>) -> bool {
        if self.stop_registered {
            return false;
        }
        self.stop_registered = true;
        self.stopped.as_mut().poll(cx).is_ready()
    }

    /// While an answer is owed no deadline applies; the keep-alive timer is armed
    /// now, from the request's arrival rather than its answer, so the answer need
    /// not wake the reader to arm it (one task wake-up less per request), and it is
    /// armed again if it fires before the answer.
    fn arm_for_answer(&mut self, cx: &mut Context<'_>) {
        if self.expired(cx) {
            self.armed = None;
            self.expired(cx);
        }
    }

    fn waiting_for_request(&self) -> bool {
        matches!(self.framing.phase(), Phase::Between | Phase::Head)
    }

    /// Ends the stream at a missed deadline; an error if a body would be truncated.
    fn time_out(&mut self) -> Option<io::Error> {
        let refusal = self.missed();
        let mid_body = self.framing.mid_body();
        self.framing.finish(refusal);
        mid_body.then(|| io::ErrorKind::TimedOut.into())
    }

    /// The client closed its side; an error if that cut a body short.
    fn client_closed(&mut self) -> Option<io::Error> {
        let mid_body = self.framing.mid_body();
        self.framing.client_closed();
        mid_body.then(|| io::ErrorKind::UnexpectedEof.into())
    }

    /// The refusal's response, rendered once, as far as not yet written.
    fn pending_refusal(&mut self) -> Option<&mut Bytes> {
        if self.refusal.is_none() {
            self.refusal = self.framing.refusal().map(Refusal::response);
        }
        self.refusal.as_mut().filter(|bytes| !bytes.is_empty())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.framing.scan(this.gate());
        loop {
            if let Some(poll) = this.deliver(dst) {
                return poll;
            }
            let held = this.framing.held(this.gate());
            if held && this.framing.buffered() {
                // The next request waits for this answer; the answer wakes us. With
                // nothing of it received yet, the socket's readiness will.
                this.shared.park(cx.waker());
                return Poll::Pending;
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, this.framing.buffer()) {
                Poll::Ready(Ok(0)) => {
                    if let Some(error) = this.client_closed() {
                        return Poll::Ready(Err(error));
                    }
                }
                Poll::Ready(Ok(_)) => this.progress = true,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending if held => {
                    this.register_stop(cx);
                    this.arm_for_answer(cx);
                    return Poll::Pending;
                }
                Poll::Pending if this.expired(cx) => {
                    if let Some(error) = this.time_out() {
                        return Poll::Ready(Err(error));
                    }
                }
                // Only between requests: a body under way belongs to a request in flight.
                Poll::Pending if this.waiting_for_request() && this.stop_requested(cx) => {}
                Poll::Pending => return Poll::Pending,
            }
            this.framing.scan(this.gate());
        }
    }
}

impl AsyncWrite for Conn {
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

    /// Writes a pending refusal first: actix has written all it will by now.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while let Some(response) = this.pending_refusal().cloned() {
            let written = std::task::ready!(Pin::new(&mut this.io).poll_write(cx, &response))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some(rest) = this.refusal.as_mut() {
                rest.advance(written);
            }
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // actix dropped the connection without shutting it down (a body timed out):
        // the refusal goes out as far as the socket takes it without waiting.
        if let Some(response) = self.pending_refusal() {
            let response = response.clone();
            self.io.try_write(&response);
        }
        self.lifecycle.connection_closed();
    }
}

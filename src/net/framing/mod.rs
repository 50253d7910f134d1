//! The HTTP/1 framing tracker: the bytes a client sent, and how much of them actix
//! may see. Pure: no clock, no socket; the connection (`conn`) feeds it bytes and
//! tells it what the application has answered.
//!
//! It follows each request from head to body end, and so knows:
//! - when a head is complete and acceptable (`head::judge`); heads are handed on
//!   whole, so actix never sees one it would refuse with an empty body;
//! - where a body ends, chunked or not, and strips chunk trailers actix would refuse;
//! - when the stream must end: after a request that closes the connection, when
//!   the application or a shutdown says so, or at a refusal.
//!
//! Request N+1 is handed on only after request N is answered (`Gate`): an answer
//! may close the connection, and then nothing pipelined after it may run.

use bytes::{Buf, BytesMut};

use super::{
    head::{self, Body},
    refusal::Refusal,
};

/// Trailer fields kept in the buffer while the section is incomplete, at most.
const MAX_TRAILER_BYTES: usize = 16_384;

/// What the rest of the server says, read at each scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    /// Requests the application has answered on this connection.
    pub answered: u64,
    /// The application or a shutdown wants no request after those in flight.
    pub closing: bool,
}

/// Where the client is in what it sends; picks the deadline that applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Between requests (before the first, or after a body).
    Between,
    /// Part of a head received.
    Head,
    /// A body under way.
    Body,
    /// No more requests: the stream ends once the ready bytes are read.
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Between,
    Head,
    Length(u64),
    Chunked(Chunk),
    UntilEof,
    Finished,
}

/// Position in a chunked body (RFC 9112 §7.1), as actix's `ChunkedState` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    Size {
        size: u64,
        digits: u8,
    },
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final blank line.
    TrailerStart,
    TrailerLine,
    EndLf,
}

/// One step of a chunked body: the next state, or the body's end.
enum Step {
    Next(Chunk),
    /// The final CRLF: trailer bytes from `ready` to before this one are dropped.
    End,
    Invalid,
}

pub struct Framing {
    /// Received bytes not yet handed on.
    buf: BytesMut,
    /// `buf[..ready]` may be handed on now.
    ready: usize,
    /// `buf[..scanned]` has been framed.
    scanned: usize,
    state: State,
    /// Heads handed on so far.
    requests: u64,
    /// The request under way ends the connection.
    closes: bool,
    refusal: Option<Refusal>,
}

impl Default for Framing {
    fn default() -> Self {
        Self::new()
    }
}

impl Framing {
    pub fn new() -> Self {
        Framing {
            buf: BytesMut::new(),
            ready: 0,
            scanned: 0,
            state: State::Between,
            requests: 0,
            closes: false,
            refusal: None,
        }
    }

    /// Where received bytes go; `scan` then frames them.
    pub fn buffer(&mut self) -> &mut BytesMut {
        const READ_SIZE: usize = 8192;
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        &mut self.buf
    }

    /// Bytes actix may read now.
    pub fn ready(&self) -> &[u8] {
        &self.buf[..self.ready]
    }

    /// `count` ready bytes were handed on.
    pub fn consume(&mut self, count: usize) {
        self.buf.advance(count);
        self.ready -= count;
        self.scanned -= count;
    }

    /// Received bytes are waiting (ready or not yet handed on).
    pub fn buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The stream has ended for actix: nothing ready and nothing more to come.
    pub fn ended(&self) -> bool {
        self.state == State::Finished && self.ready == 0
    }

    /// Waiting for the answer to the request in flight before handing on the next.
    pub fn held(&self, gate: Gate) -> bool {
        self.state == State::Between && self.requests > gate.answered
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Between => Phase::Between,
            State::Head => Phase::Head,
            State::Length(_) | State::Chunked(_) | State::UntilEof => Phase::Body,
            State::Finished => Phase::Finished,
        }
    }

    /// A body with a known end is under way: ending the stream now would truncate it.
    pub fn mid_body(&self) -> bool {
        matches!(self.state, State::Length(_) | State::Chunked(_))
    }

    /// Heads handed on so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether the request under way (or last handed on) ends the connection.
    pub fn closes(&self) -> bool {
        self.closes
    }

    /// The refusal to send once actix is done, if the stream ended with one.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// Ends the stream after the ready bytes, dropping what follows.
    pub fn finish(&mut self, refusal: Option<Refusal>) {
        self.buf.truncate(self.ready);
        self.scanned = self.ready;
        self.state = State::Finished;
        self.refusal = self.refusal.take().or(refusal);
    }

    /// Frames the bytes received since the last scan.
    pub fn scan(&mut self, gate: Gate) {
        loop {
            let progressed = match self.state {
                State::Between => self.between(gate),
                State::Head => self.head(gate),
                State::Length(remaining) => self.length(remaining),
                State::Chunked(chunk) => self.chunked(chunk),
                State::UntilEof => {
                    self.scanned = self.buf.len();
                    self.ready = self.scanned;
                    false
                }
                State::Finished => false,
            };
            if !progressed {
                return;
            }
        }
    }

    fn between(&mut self, gate: Gate) -> bool {
        if gate.closing {
            self.finish(None);
            return false;
        }
        if self.held(gate) || self.scanned == self.buf.len() {
            return false;
        }
        self.state = State::Head;
        true
    }

    fn head(&mut self, gate: Gate) -> bool {
        if gate.closing {
            // Not yet handed on: a request that has not started for actix.
            self.finish(None);
            return false;
        }
        match head::judge(&self.buf[self.scanned..]) {
            Ok(None) => false,
            Err(refusal) => {
                self.finish(Some(refusal));
                false
            }
            Ok(Some(head)) => {
                self.scanned += head.len;
                self.ready = self.scanned;
                self.requests += 1;
                self.closes = head.closes;
                self.state = match head.body {
                    Body::None => State::Between,
                    Body::Length(length) => State::Length(length),
                    Body::Chunked => State::Chunked(Chunk::Size { size: 0, digits: 0 }),
                    Body::UntilEof => State::UntilEof,
                };
                if head.body == Body::None {
                    self.request_done();
                }
                true
            }
        }
    }

    fn length(&mut self, remaining: u64) -> bool {
        let available = (self.buf.len() - self.scanned) as u64;
        let taken = remaining.min(available);
        self.scanned += taken as usize;
        self.ready = self.scanned;
        if taken == remaining {
            self.state = State::Between;
            self.request_done();
            return true;
        }
        self.state = State::Length(remaining - taken);
        false
    }

    fn chunked(&mut self, mut chunk: Chunk) -> bool {
        while self.scanned < self.buf.len() {
            if let Chunk::Data(remaining) = chunk {
                let taken = remaining.min((self.buf.len() - self.scanned) as u64);
                self.scanned += taken as usize;
                chunk = if taken == remaining {
                    Chunk::DataCr
                } else {
                    Chunk::Data(remaining - taken)
                };
                continue;
            }
            let byte = self.buf[self.scanned];
            self.scanned += 1;
            let in_trailers = matches!(
                chunk,
                Chunk::TrailerStart | Chunk::TrailerLine | Chunk::EndLf
            );
            match step(chunk, byte) {
                Step::Next(next) => chunk = next,
                Step::End => {
                    self.drop_trailers();
                    self.state = State::Between;
                    self.request_done();
                    return true;
                }
                Step::Invalid => {
                    // actix would fail the payload; end the stream where the body broke.
                    self.ready = self.scanned - 1;
                    self.finish(None);
                    return false;
                }
            }
            // Trailer fields stay unready: `drop_trailers` removes them at the end.
            if !in_trailers {
                self.ready = self.scanned;
            }
        }
        if self.scanned - self.ready > MAX_TRAILER_BYTES {
            self.finish(None);
            return false;
        }
        self.state = State::Chunked(chunk);
        false
    }

    /// Removes trailer fields, `buf[ready..]` up to the final CRLF, which stays.
    fn drop_trailers(&mut self) {
        let final_crlf = self.scanned - 2;
        if final_crlf > self.ready {
            let trailers = final_crlf - self.ready;
            self.buf.copy_within(final_crlf.., self.ready);
            self.buf.truncate(self.buf.len() - trailers);
            self.scanned -= trailers;
        }
        self.ready = self.scanned;
    }

    /// A request's last byte was framed.
    fn request_done(&mut self) {
        if self.closes {
            self.finish(None);
        }
    }

    /// The client closed its side: hand on what is ready, then end.
    pub fn client_closed(&mut self) {
        self.finish(None);
    }
}

/// One byte of chunked framing outside chunk data.
fn step(chunk: Chunk, byte: u8) -> Step {
    use Chunk::*;
    match (chunk, byte) {
        (Size { size, digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
            let digit = (byte as char).to_digit(16).unwrap_or_default() as u64;
            match size.checked_mul(16) {
                Some(size) if digits < 16 => Step::Next(Size {
                    size: size + digit,
                    digits: digits + 1,
                }),
                _ => Step::Invalid,
            }
        }
        (Size { size, digits }, b'\r') if digits > 0 => Step::Next(SizeLf { size }),
        (Size { size, digits }, b' ' | b'\t' | b';') if digits > 0 => {
            Step::Next(Extension { size })
        }
        (Extension { size }, b'\r') => Step::Next(SizeLf { size }),
        (Extension { .. }, b'\n') => Step::Invalid,
        (Extension { size }, _) => Step::Next(Extension { size }),
        (SizeLf { size: 0 }, b'\n') => Step::Next(TrailerStart),
        (SizeLf { size }, b'\n') => Step::Next(Data(size)),
        (DataCr, b'\r') => Step::Next(DataLf),
        (DataLf, b'\n') => Step::Next(Size { size: 0, digits: 0 }),
        (TrailerStart, b'\r') => Step::Next(EndLf),
        (TrailerStart, _) => Step::Next(TrailerLine),
        (TrailerLine, b'\n') => Step::Next(TrailerStart),
        (TrailerLine, _) => Step::Next(TrailerLine),
        (EndLf, b'\n') => Step::End,
        _ => Step::Invalid,
    }
}

#[cfg(test)]
mod tests;

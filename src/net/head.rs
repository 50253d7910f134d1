//! Judging one complete request head: is it well formed, how is its body framed,
//! and does it end the connection. Pure: bytes in, a verdict out.
//!
//! The framing rules mirror actix-http 3.11's decoder (`h1/decoder.rs`) so that this
//! layer and actix always agree on where a request ends; where actix would answer
//! an empty 400 or 431, the head is refused here instead, with a JSON body.

use std::mem::MaybeUninit;

use super::refusal::Refusal;
// actix-http's ceilings, the ones config validation holds the header limits under:
// past them actix answers an empty 431 of its own, so this layer refuses first.
use crate::config::{ACTIX_MAX_HEAD_BYTES, ACTIX_MAX_HEADERS as MAX_HEADERS};

/// `ACTIX_MAX_HEAD_BYTES` as a buffer length.
const MAX_HEAD_BYTES: usize = ACTIX_MAX_HEAD_BYTES as usize;

/// How the body after a head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// No body: the next byte starts the next request.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 only).
    Chunked,
    /// The rest of the connection (CONNECT, or a WebSocket upgrade): actix reads it
    /// as a stream, so no later request exists.
    UntilEof,
}

/// A complete, acceptable head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, its blank line included.
    pub len: usize,
    pub body: Body,
    /// Nothing after this request may be processed (RFC 9112 §9.6, §6.3).
    pub closes: bool,
}

/// What the headers say about framing, collected in one pass.
#[derive(Default)]
struct Fields {
    length: Option<u64>,
    chunked: bool,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    websocket: bool,
}

/// `Ok(None)` while the head is incomplete; `Err` for a head to refuse.
pub fn judge(bytes: &[u8]) -> Result<Option<Head>, Refusal> {
    // Uninitialized: initializing 96 headers (3 KiB) cost more than parsing a
    // small head; httparse initializes the ones it fills.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(bytes, &mut headers) {
        Ok(httparse::Status::Complete(len)) if len < MAX_HEAD_BYTES => len,
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD_BYTES => return Ok(None),
        Ok(_) => return Err(Refusal::HeadersTooLarge(too_large())),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::HeadersTooLarge(format!(
                "more than {MAX_HEADERS} header fields"
            )));
        }
        Err(error) => {
            return Err(Refusal::Malformed(format!(
                "malformed request head: {error}"
            )));
        }
    };
    let http10 = request.version == Some(0);
    let method = request.method.unwrap_or_default();
    // httparse takes any token as a method; actix's `Method` refuses some (`GET%`)
    // with its empty 400. Standard methods match without allocating.
    if actix_web::http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(Refusal::Malformed(format!(
            "request method is not valid: {:?}",
            method.escape_debug().to_string()
        )));
    }
    check_path(request.path.unwrap_or_default())?;
    let fields = read_fields(request.headers, http10)?;
    let body = framing(&fields, method, http10)?;
    // HTTP/1.0 closes unless it asks to keep alive; both framings at once must close.
    let closes = fields.close
        || (http10 && !fields.keep_alive)
        || (fields.chunked && fields.length.is_some())
        || body == Body::UntilEof;
    Ok(Some(Head { len, body, closes }))
}

fn too_large() -> String {
    format!("request head larger than {MAX_HEAD_BYTES} bytes")
}

/// The path must become an `http::Uri` in actix, which refuses bytes httparse lets
/// through (raw non-ASCII among them). The common path is checked without building
/// one, so a request costs no allocation here.
fn check_path(path: &str) -> Result<(), Refusal> {
    // Only origin-form ("/...") is plain: anything else (`kv/x`, `;/x`) is read by
    // `Uri` as an authority or absolute form, which it may refuse.
    let plain = path.starts_with('/')
        && path
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@?".contains(&byte));
    if plain || actix_web::http::Uri::try_from(path).is_ok() {
        return Ok(());
    }
    Err(Refusal::Malformed(format!(
        "request target is not a valid URI: {:?}",
        path.escape_debug().to_string()
    )))
}

fn read_fields(headers: &[httparse::Header<'_>], http10: bool) -> Result<Fields, Refusal> {
    let mut fields = Fields::default();
    for header in headers {
        // Decoded (a UTF-8 check and a trim) only for the four fields read here, not
        // for a request's others (Host, Content-Type, Accept...).
        let value = || std::str::from_utf8(header.value).map(str::trim);
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let length = value().ok().filter(|text| !text.starts_with('+'));
            match (fields.length, length.and_then(|text| text.parse().ok())) {
                (None, Some(length)) => fields.length = Some(length),
                (Some(_), _) => return Err(framing_error("more than one Content-Length")),
                (None, None) => return Err(framing_error("Content-Length is not a number")),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if fields.transfer_encoding {
                return Err(framing_error("more than one Transfer-Encoding"));
            }
            fields.transfer_encoding = true;
            match value() {
                _ if http10 => {
                    return Err(framing_error(
                        "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)",
                    ));
                }
                Ok(coding) if coding.eq_ignore_ascii_case("chunked") => fields.chunked = true,
                // `identity` too (actix-http frames it by Content-Length or as no
                // body): RFC 9112 §6.3 says a request whose final coding is not
                // chunked has no reliable length, and must get 400 and a close.
                _ => return Err(framing_error("Transfer-Encoding other than chunked")),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value().unwrap_or_default().split(',').map(str::trim) {
                fields.close |= token.eq_ignore_ascii_case("close");
                fields.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            fields.websocket |= value().is_ok_and(|text| text.eq_ignore_ascii_case("websocket"));
        }
    }
    Ok(fields)
}

/// actix's order: chunked, then a WebSocket upgrade, then Content-Length.
fn framing(fields: &Fields, method: &str, http10: bool) -> Result<Body, Refusal> {
    if http10 && method == "POST" && fields.length.is_none() {
        return Err(framing_error("an HTTP/1.0 POST needs Content-Length"));
    }
    Ok(match fields.length {
        _ if fields.chunked => Body::Chunked,
        _ if fields.websocket => Body::UntilEof,
        Some(0) | None if method == "CONNECT" => Body::UntilEof,
        Some(0) | None => Body::None,
        Some(length) => Body::Length(length),
    })
}

fn framing_error(detail: &str) -> Refusal {
    Refusal::AmbiguousFraming(format!("request body framing: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Refusal> {
        judge(text.as_bytes())
    }

    #[test]
    fn framing_and_closing_by_head() {
        let cases: &[(&str, Body, bool)] = &[
            ("GET / HTTP/1.1\r\n\r\n", Body::None, false),
            ("GET / HTTP/1.0\r\n\r\n", Body::None, true),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                Body::None,
                false,
            ),
            (
                "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
                Body::None,
                true,
            ),
            (
                "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
                Body::None,
                true,
            ),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Body::Length(5),
                false,
            ),
            (
                "PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Body::None,
                false,
            ),
            (
                "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Body::Chunked,
                false,
            ),
            (
                "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Body::Chunked,
                true,
            ),
            ("CONNECT a:1 HTTP/1.1\r\n\r\n", Body::UntilEof, true),
            (
                "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                Body::UntilEof,
                true,
            ),
        ];
        for (text, body, closes) in cases {
            let judged = head(text).unwrap().unwrap();
            assert_eq!((judged.body, judged.closes), (*body, *closes), "{text:?}");
            assert_eq!(judged.len, text.len(), "{text:?}");
        }
    }

    #[test]
    fn refusals_by_head() {
        let cases: &[(&[u8], u16)] = &[
            (
                b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                400,
            ),
            (b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (b"PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400),
            (b"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
                400,
            ),
            (
                b"PUT / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 4\r\n\r\n",
                400,
            ),
            (b"GET ;/v1/stats HTTP/1.1\r\n\r\n", 400),
            (b"DELETE kv/x HTTP/1.1\r\n\r\n", 400),
            (b"GET% / HTTP/1.1\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\n\r\n", 400),
            (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nX\x01: 1\r\n\r\n", 400),
        ];
        for (bytes, status) in cases {
            let refusal = judge(bytes).expect_err(&String::from_utf8_lossy(bytes));
            assert_eq!(refusal.status().as_u16(), *status, "{bytes:?}");
        }
    }

    #[test]
    fn partial_heads_wait_until_the_ceiling() {
        assert_eq!(head("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        let many: String = (0..100).map(|index| format!("X-{index}: v\r\n")).collect();
        let refusal = head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err();
        assert_eq!(refusal.status().as_u16(), 431);
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(head(&big).unwrap_err().status().as_u16(), 431);
    }
}

//! Tables: byte streams in (split into reads), what actix gets out, and how the
//! stream ends.

use super::*;

/// Everyone answers at once and nothing closes: the gate never holds.
const OPEN: Gate = Gate {
    answered: u64::MAX,
    closing: false,
};

/// Feeds `reads` one after another, handing on whatever is ready after each.
fn run(reads: &[&[u8]], gate: Gate) -> (Vec<u8>, Framing) {
    let mut framing = Framing::new();
    let mut out = Vec::new();
    for read in reads {
        framing.buffer().extend_from_slice(read);
        framing.scan(gate);
        out.extend_from_slice(framing.ready());
        let count = framing.ready().len();
        framing.consume(count);
    }
    (out, framing)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn what_actix_sees_and_how_the_stream_ends() {
    const GET: &str = "GET /a HTTP/1.1\r\n\r\n";
    const CLOSE: &str = "PUT /a HTTP/1.1\r\nConnection: close\r\nContent-Length: 1\r\n\r\n1";
    const CHUNKED: &str = "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    // (reads, what actix sees, ended, phase after)
    let cases: &[(&[&str], &str, bool, Phase)] = &[
        (&[GET], GET, false, Phase::Between),
        (
            &[GET, GET],
            &"GET /a HTTP/1.1\r\n\r\n".repeat(2),
            false,
            Phase::Between,
        ),
        // A head is handed on whole, never in pieces.
        (&["GET /a HT", "TP/1.1\r\n"], "", false, Phase::Head),
        (
            &["GET /a HT", "TP/1.1\r\n", "\r\n"],
            GET,
            false,
            Phase::Between,
        ),
        // Nothing after a closing request.
        (&[&format!("{CLOSE}{GET}")], CLOSE, true, Phase::Finished),
        (&[CLOSE, GET], CLOSE, true, Phase::Finished),
        (
            &["GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"],
            "GET / HTTP/1.0\r\n\r\n",
            true,
            Phase::Finished,
        ),
        // Bodies pass as they come.
        (
            &["PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\n12"],
            "PUT /a HTTP/1.1\r\nContent-Length: 4\r\n\r\n12",
            false,
            Phase::Body,
        ),
        (
            &[CHUNKED, "3\r\nabc\r\n0\r\n\r\n", GET],
            &format!("{CHUNKED}3\r\nabc\r\n0\r\n\r\n{GET}"),
            false,
            Phase::Between,
        ),
        // Trailers are dropped, even across reads; the final CRLF stays.
        (
            &[CHUNKED, "1\r\na\r\n0\r\nX-T: 1\r\n", "Y: 2\r\n\r\n", GET],
            &format!("{CHUNKED}1\r\na\r\n0\r\n\r\n{GET}"),
            false,
            Phase::Between,
        ),
        (
            &[CHUNKED, "1;ext=1\r\na\r\n0\r\n\r\n"],
            &format!("{CHUNKED}1;ext=1\r\na\r\n0\r\n\r\n"),
            false,
            Phase::Between,
        ),
        // Both framings on HTTP/1.1: chunked wins, then the connection ends.
        (
            &[
                "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\nGET /a HTTP/1.1\r\n\r\n",
            ],
            "PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n0\r\n\r\n",
            true,
            Phase::Finished,
        ),
        // A broken chunk ends the stream where it broke.
        (&[CHUNKED, "zz\r\n"], CHUNKED, true, Phase::Finished),
    ];
    for (reads, seen, ended, phase) in cases {
        let reads: Vec<&[u8]> = reads.iter().map(|read| read.as_bytes()).collect();
        let (out, framing) = run(&reads, OPEN);
        assert_eq!(text(&out), *seen, "{reads:?}");
        assert_eq!(
            (framing.ended(), framing.phase()),
            (*ended, *phase),
            "{reads:?}"
        );
        assert_eq!(framing.refusal(), None);
    }
}

#[test]
fn refused_heads_end_the_stream_after_earlier_requests() {
    let smuggled = "GET /a HTTP/1.1\r\n\r\nPUT /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n";
    let (out, framing) = run(&[smuggled.as_bytes()], OPEN);
    assert_eq!(text(&out), "GET /a HTTP/1.1\r\n\r\n");
    assert!(framing.ended());
    assert_eq!(framing.refusal().unwrap().status().as_u16(), 400);
}

#[test]
fn the_next_request_waits_for_the_answer() {
    let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let mut gate = Gate::default();
    let (out, mut framing) = run(&[two], gate);
    assert_eq!(text(&out), "GET /a HTTP/1.1\r\n\r\n");
    assert!(framing.held(gate));
    gate.answered = 1;
    framing.scan(gate);
    assert_eq!(text(framing.ready()), "GET /b HTTP/1.1\r\n\r\n");
    // An answer that closes the connection: /b never reaches actix.
    let (_, mut framing) = run(&[two], Gate::default());
    framing.scan(Gate {
        answered: 1,
        closing: true,
    });
    assert_eq!((framing.ready(), framing.ended()), (&b""[..], true));
}

#[test]
fn finishing_keeps_what_is_ready() {
    let mut framing = Framing::new();
    framing
        .buffer()
        .extend_from_slice(b"PUT /a HTTP/1.1\r\nContent-Length: 9\r\n\r\n12");
    framing.scan(OPEN);
    framing.finish(None);
    assert!(text(framing.ready()).ends_with("12"));
    assert!(!framing.ended());
    let count = framing.ready().len();
    framing.consume(count);
    assert!(framing.ended());
}

//! Cases that break the grammar or the framing: odd request lines and header
//! fields, `Content-Length` values and body lengths, chunked bodies, and the
//! framing conflicts request smuggling uses. Requests the server may run address
//! `fuzz-` keys; payloads it must never run write sentinels (see `cases.rs`).

use rand::{Rng, rngs::StdRng, seq::SliceRandom};

use crate::cases::{Case, fuzz_key, pick, smuggled, valid};

/// Odd request lines and header fields, on `fuzz-` keys. Half the cases keep the
/// request line and line ends valid and add one or two odd fields, so that each
/// field's own handling (431, obs-fold, NUL) is reached, not only the first error.
pub fn head_chaos(rng: &mut StdRng) -> Case {
    let key = fuzz_key(rng);
    let clean = rng.gen_bool(0.5);
    let (line, newline) = match clean {
        true => (format!("PUT /v1/kv/{key} HTTP/1.1"), "\r\n"),
        false => odd_request_line(rng, &key),
    };
    let mut head = format!("{line}{newline}").into_bytes();
    let mut variants = vec![if clean { "fields" } else { "line" }];
    match rng.gen_range(0..6) {
        0 => variants.push("no-host"),
        1 => head.extend(format!("Host: a{newline}Host: b{newline}").bytes()),
        _ => head.extend(format!("Host: test{newline}").bytes()),
    }
    let fields = if clean {
        rng.gen_range(1..=2)
    } else {
        rng.gen_range(0..=4)
    };
    for _ in 0..fields {
        let (variant, field) = odd_field(rng);
        variants.push(variant);
        head.extend_from_slice(&field);
        head.extend_from_slice(newline.as_bytes());
    }
    if line.starts_with("PUT ") && rng.gen_bool(0.5) {
        head.extend(format!("Content-Length: 1{newline}{newline}7").bytes());
    } else {
        head.extend_from_slice(newline.as_bytes());
    }
    Case::one(format!("head/{}", variants.join("+")), head)
}

/// A request line with odd parts (method, target, version, separators), and the
/// line end the rest of the head uses.
fn odd_request_line(rng: &mut StdRng, key: &str) -> (String, &'static str) {
    let long = "a".repeat(9000);
    let method = pick(
        rng,
        &[
            "GET", "PUT", "DELETE", "POST", "get", "G\0ET", "G\u{c9}T", "", "PUT PUT", "CONNECT",
            "OPTIONS", "TRACE", "PATCH",
        ],
    );
    let target = match rng.gen_range(0..14) {
        0 => "*".to_owned(),
        1 => String::new(),
        2 => format!("http://test/v1/kv/{key}"),
        3 => format!("/v1/kv/{key}?ttl=1&ttl=2"),
        4 => format!("/v1/kv/{key}\0"),
        5 => format!("/v1/kv/{key}\u{ff}"),
        6 => format!("/v1/kv/{key} x"),
        7 => format!("/kv/{key}%00"),
        8 => format!("/v1/kv/{key}{long}"),
        9 => format!("//v1/kv/{key}"),
        10 => format!("/v1/kv/../kv/{key}"),
        11 => format!("/v1/kv/{key}#frag"),
        12 => format!("/kv/{key}"),
        _ => format!("/v1/kv/{key}"),
    };
    let version = pick(
        rng,
        &[
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/2.0",
            "HTTP/0.9",
            "HTTP/1.10",
            "http/1.1",
            "HTTP/1.1 ",
            "HTTP/1",
            "",
            "HTTP/1.1\0",
        ],
    );
    let separator = pick(rng, &[" ", " ", " ", "  ", "\t"]);
    let newline = pick(rng, &["\r\n", "\r\n", "\r\n", "\n", "\r"]);
    let line = format!("{method}{separator}{target}{separator}{version}");
    (line, newline)
}

fn odd_field(rng: &mut StdRng) -> (&'static str, Vec<u8>) {
    let (variant, field): (&str, &[u8]) = match rng.gen_range(0..16) {
        0 => ("nul-value", b"X-Fuzz: a\0b"),
        1 => ("non-ascii-value", b"X-Fuzz: \xc3\xa9\xff"),
        2 => ("nul-name", b"X\0Fuzz: 1"),
        3 => ("space-name", b"X Fuzz: 1"),
        4 => ("empty-name", b": empty"),
        5 => ("space-before-colon", b"X-Fuzz : 1"),
        6 => ("obs-fold", b"X-Fuzz: a\r\n b"),
        7 => ("bare-cr", b"X-Fuzz: a\rb"),
        8 => ("no-colon", b"NoColon"),
        9 => ("non-ascii-name", b"X-F\xc3\xbczz: 1"),
        10 => ("bad-content-type", b"Content-Type: \xff\xfe"),
        11 => ("bad-if-match", b"If-Match: \"1\"\x01"),
        12 => ("expect", b"Expect: 100-continue"),
        13 => {
            return (
                "huge-value",
                format!("X-Fuzz: {}", "v".repeat(20_000)).into_bytes(),
            );
        }
        14 => {
            let fields: Vec<String> = (0..100).map(|n| format!("X-F{n}: {n}")).collect();
            return ("many-fields", fields.join("\r\n").into_bytes());
        }
        _ => (
            "duplicate-content-type",
            b"Content-Type: application/json\r\nContent-Type: text/plain",
        ),
    };
    (variant, field.to_vec())
}

/// Odd `Content-Length` values and bodies shorter or longer than declared.
pub fn content_length_chaos(rng: &mut StdRng) -> Case {
    let key = fuzz_key(rng);
    let head =
        format!("PUT /v1/kv/{key} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n");
    let body = b"[1,2,3]";
    let (variant, length, sent): (&str, String, Vec<u8>) = match rng.gen_range(0..16) {
        0 => ("abc", "abc".into(), body.to_vec()),
        1 => ("negative", "-1".into(), body.to_vec()),
        2 => ("plus", "+7".into(), body.to_vec()),
        3 => ("spaces", " 7 ".into(), body.to_vec()),
        4 => ("hex", "0x7".into(), body.to_vec()),
        5 => ("huge", "99999999999999999999999".into(), body.to_vec()),
        6 => ("u64-overflow", "18446744073709551616".into(), body.to_vec()),
        7 => ("equal-list", "7, 7".into(), body.to_vec()),
        8 => ("empty", String::new(), body.to_vec()),
        9 => ("arabic-digit", "\u{665}".into(), body.to_vec()),
        10 => ("nul", "7\0".into(), body.to_vec()),
        11 => (
            "duplicate-equal",
            "7\r\nContent-Length: 7".into(),
            body.to_vec(),
        ),
        12 => ("truncated-body", "50".into(), body.to_vec()),
        13 => (
            "longer-garbage",
            "7".into(),
            b"[1,2,3]garbage\r\n\r\n".to_vec(),
        ),
        14 => {
            let mut sent = body.to_vec();
            sent.extend(valid(rng, "HTTP/1.1"));
            ("longer-pipelined", "7".into(), sent)
        }
        _ => ("over-max-body", "1000000".into(), body.to_vec()),
    };
    let mut bytes = format!("{head}Content-Length: {length}\r\n\r\n").into_bytes();
    bytes.extend(sent);
    Case::one(format!("content-length/{variant}"), bytes)
}

/// Chunked bodies with bad sizes, extensions, trailers and framing, on `fuzz-` keys.
pub fn chunked_chaos(rng: &mut StdRng) -> Case {
    let key = fuzz_key(rng);
    let version = if rng.gen_ratio(1, 5) {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let head = format!(
        "PUT /v1/kv/{key} {version}\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let long_extension = format!(";{}", "x".repeat(5000));
    let (variant, body): (&str, String) = match rng.gen_range(0..20) {
        0 => ("valid", "7\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        1 => (
            "upper-hex-leading-zeros",
            "0007\r\n[1,2,3]\r\n0\r\n\r\n".into(),
        ),
        2 => ("plus-size", "+7\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        3 => ("negative-size", "-7\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        4 => ("0x-size", "0x7\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        5 => ("non-hex-size", "zz\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        6 => (
            "overflow-size",
            "ffffffffffffffffffff\r\n[1,2,3]\r\n0\r\n\r\n".into(),
        ),
        7 => ("size-too-small", "3\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        8 => ("size-too-large", "9\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        9 => (
            "extensions",
            "7;a=b;c;d=\"q;x\"\r\n[1,2,3]\r\n0;z=1\r\n\r\n".into(),
        ),
        10 => ("bws-extension", "7 ; a = b\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        11 => (
            "long-extension",
            format!("7{long_extension}\r\n[1,2,3]\r\n0\r\n\r\n"),
        ),
        12 => (
            "trailers",
            "7\r\n[1,2,3]\r\n0\r\nX-T: 1\r\nContent-Length: 5\r\n\r\n".into(),
        ),
        13 => (
            "bad-trailer",
            "7\r\n[1,2,3]\r\n0\r\nno colon\r\n\r\n".into(),
        ),
        14 => ("lf-only", "7\n[1,2,3]\n0\n\n".into()),
        15 => ("missing-data-crlf", "7\r\n[1,2,3]0\r\n\r\n".into()),
        16 => ("no-last-chunk", "7\r\n[1,2,3]\r\n".into()),
        17 => ("no-final-crlf", "7\r\n[1,2,3]\r\n0\r\n".into()),
        18 => ("empty-size", "\r\n[1,2,3]\r\n0\r\n\r\n".into()),
        _ => ("nul-in-size", "7\0\r\n[1,2,3]\r\n0\r\n\r\n".into()),
    };
    let mut bytes = head.into_bytes();
    bytes.extend(body.bytes());
    if rng.gen_ratio(1, 3) {
        bytes.extend(valid(rng, "HTTP/1.1"));
    }
    Case::one(format!("chunked/{version}/{variant}"), bytes)
}

/// Framing conflicts a smuggling attack uses: Transfer-Encoding with Content-Length
/// (TE.CL and CL.TE), Transfer-Encoding alone with a body that only a server
/// ignoring it would run (TE.0), and two different Content-Lengths. Under every
/// reading RFC 9112 allows, the payload is body or the connection closes.
pub fn smuggling(rng: &mut StdRng, index: usize) -> Case {
    let (payload, target) = smuggled(rng, index);
    let version = if rng.gen_bool(0.5) {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let coding = pick(
        rng,
        &[
            "chunked",
            "Chunked",
            "CHUNKED",
            " chunked",
            "chunked ",
            "\tchunked",
            "chunked, chunked",
            "identity, chunked",
            "gzip, chunked",
            "chunked, identity",
            "xchunked",
            "chunked\0",
            "chunked\u{ff}",
            "\u{b}chunked",
            "identity",
        ],
    );
    let te = match rng.gen_range(0..6) {
        0 => format!("transfer-encoding: {coding}"),
        1 => format!("Transfer-Encoding : {coding}"),
        2 => format!("Transfer-Encoding:\r\n {coding}"),
        3 => format!("Transfer-Encoding: identity\r\nTransfer-Encoding: {coding}"),
        _ => format!("Transfer-Encoding: {coding}"),
    };
    let size_line = format!("{:x}\r\n", payload.len());
    let (shape, lengths, body): (&str, Vec<usize>, Vec<u8>) = match rng.gen_range(0..4) {
        0 => {
            let body = [size_line.as_bytes(), &payload, b"\r\n0\r\n\r\n"].concat();
            ("te.cl", vec![size_line.len()], body)
        }
        1 => {
            let body = [b"0\r\n\r\n".as_slice(), &payload].concat();
            ("cl.te", vec![body.len()], body)
        }
        2 => ("te.0", vec![], payload.clone()),
        _ => {
            let body = [b"7".as_slice(), &payload].concat();
            ("cl.cl", vec![1, body.len()], body)
        }
    };
    let mut fields = vec!["Content-Type: application/json".to_owned()];
    if shape != "cl.cl" {
        fields.push(te);
    }
    let list = shape == "cl.cl" && rng.gen_bool(0.5);
    if list {
        fields.push(format!("Content-Length: {}, {}", lengths[0], lengths[1]));
    } else {
        fields.extend(lengths.iter().map(|n| format!("Content-Length: {n}")));
    }
    fields.shuffle(rng);
    let key = fuzz_key(rng);
    let method = pick(rng, &["PUT", "GET", "POST"]);
    let mut bytes = format!("{method} /v1/kv/{key} {version}\r\nHost: test\r\n").into_bytes();
    for field in &fields {
        bytes.extend(format!("{field}\r\n").bytes());
    }
    bytes.extend(b"\r\n");
    bytes.extend(body);
    let variant = if shape == "cl.cl" {
        format!("{version}/cl.cl{}", if list { "-list" } else { "" })
    } else {
        format!("{version}/{shape}/{coding:?}")
    };
    let mut case = Case::one(format!("smuggling/{variant}"), bytes);
    case.targets.push(target);
    case
}

//! The handshake: client certificates under `client_ca` (accepted, missing, from
//! another CA), plain HTTP and other non-TLS bytes on the TLS port, a client that
//! never starts its handshake, a client without ALPN, and an idle HTTP/2
//! connection closed after `keep_alive`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::{
    Fixture,
    certs::{Ca, Dates, Role},
    client::{self, Client, DEADLINE, Protocol, read_to_close},
};

#[test]
fn client_certificates_under_client_ca_are_required() {
    let fixture = Fixture::new();
    let dir = fixture.path();
    let clients = Ca::new(dir, "clients");
    let stranger_ca = Ca::new(dir, "strangers");
    let server = fixture.start("", Some(&clients.pem));
    let member = clients.issue(dir, "member", Role::Client, Dates::Current);
    let stranger = stranger_ca.issue(dir, "stranger", Role::Client, Dates::Current);
    let expired = clients.issue(dir, "expired-member", Role::Client, Dates::Expired);
    for protocol in Protocol::BOTH {
        let identity = Some((member.cert.as_path(), member.key.as_path()));
        let client = Client::new(server.addr, &fixture.ca.pem, identity, protocol);
        assert_eq!(client.get("/health").status, 200, "{protocol:?}");

        let anonymous = fixture.client(server.addr, protocol);
        let error = anonymous
            .try_request("GET", "/health", &[], None)
            .unwrap_err();
        assert!(error.is_connect() || error.is_request(), "{error:?}");
        // webpki reports an expired certificate it finds no valid path for as an
        // unknown issuer too: the alert matters less than the refusal.
        // Refused in the handshake: under TLS 1.3 the client may finish its side
        // first and read the alert at its first read. webpki reports an expired
        // certificate as having no known issuer, so the alert's name is not checked.
        for refused in [&stranger, &expired] {
            let config =
                client::config_presenting(&fixture.ca.pem, &refused.cert, &refused.key, protocol);
            let outcome = client::handshake(server.addr, config).and_then(|mut stream| {
                let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
                read_to_close(&mut stream)
            });
            let error = outcome.map(String::from_utf8).unwrap_err().to_string();
            assert!(error.contains("fatal alert"), "{protocol:?}: {error}");
        }
    }
}

#[test]
fn plain_http_to_the_tls_port_gets_a_json_400() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(read_to_close(&mut tcp).unwrap()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (head, body) = reply.split_once("\r\n\r\n").expect("a whole response");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "https_required", "{body}");
    // And the port still serves HTTPS, and counted the failed handshake.
    let client = fixture.client(server.addr, Protocol::Http1);
    assert_eq!(client.get("/health").status, 200);
    // Counted once the refusal is done with the connection: when the client closes.
    drop(tcp);
    let counted = "\nrustkv_tls_handshake_failures_total 1\n";
    let deadline = Instant::now() + DEADLINE;
    let mut metrics = client.get("/metrics").body;
    while !metrics.contains(counted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        metrics = client.get("/metrics").body;
    }
    assert!(metrics.contains(counted), "{metrics}");
}

#[test]
fn other_non_tls_bytes_are_closed_at_once() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = Instant::now();
    tcp.write_all(b"\x00\x01binary junk\r\n").unwrap();
    let mut buffer = [0u8; 64];
    let read = tcp.read(&mut buffer);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_silent_client_is_cut_after_client_request_timeout() {
    let fixture = Fixture::new();
    let server = fixture.start("[server]\nclient_request_timeout = \"300ms\"\n", None);
    for hello in [&b""[..], b"\x16\x03\x01"] {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        tcp.write_all(hello).unwrap();
        let started = Instant::now();
        let read = tcp.read(&mut [0u8; 64]);
        let waited = started.elapsed();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            waited >= Duration::from_millis(250),
            "cut before the timeout: {waited:?}"
        );
        assert!(waited < Duration::from_secs(3), "{waited:?}");
    }
}

#[test]
fn a_client_without_alpn_gets_http1() {
    let fixture = Fixture::new();
    let server = fixture.start("", None);
    let mut config = client::config(&fixture.ca.pem, None, Protocol::Http1);
    config.alpn_protocols.clear();
    let mut stream = client::handshake(server.addr, config).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(read_to_close(&mut stream).unwrap()).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

/// An HTTP/2 connection with no request in flight closes after `keep_alive`.
#[test]
fn an_idle_http2_connection_closes_after_keep_alive() {
    let fixture = Fixture::new();
    let server = fixture.start("[server]\nkeep_alive = \"300ms\"\n", None);
    let config = client::config(&fixture.ca.pem, None, Protocol::Http2);
    let mut stream = client::handshake(server.addr, config).unwrap();
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"h2"[..]));
    // The client preface and an empty SETTINGS frame: a connection, no request.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let started = Instant::now();
    let frames = read_to_close(&mut stream).expect("closed before the read deadline");
    let waited = started.elapsed();
    assert!(!frames.is_empty(), "the server's SETTINGS came first");
    assert!(
        waited >= Duration::from_millis(250),
        "closed too soon: {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

//! The real binary with `[tls]`: files that must stop start-up (each error names
//! the file), SIGHUP rotating the certificate and keeping it when the new files
//! are bad, SIGTERM not waiting on idle HTTP/2 connections, and the clear-text
//! token warning.

use std::{fs, path::Path, time::Duration};

use crate::{
    Fixture,
    certs::{self, Dates, Role},
    client::{self, Client, Protocol},
    common::process::Server,
};

const LIMIT: Duration = Duration::from_secs(10);

fn config_file(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("rustkv.toml");
    fs::write(&path, toml).unwrap();
    path
}

/// Starts the binary on `toml`, expecting it to refuse; answers its log.
fn refused_start(dir: &Path, toml: &str) -> String {
    match Server::try_start(&config_file(dir, toml)) {
        Ok(server) => panic!("started despite {toml}; log:\n{}", server.log_tail()),
        Err(failure) => failure,
    }
}

#[test]
fn bad_files_stop_start_up_naming_the_file() {
    let fixture = Fixture::new();
    let dir = fixture.path();
    let expired = fixture
        .ca
        .issue(dir, "expired", Role::Server, Dates::Expired);
    let early = fixture
        .ca
        .issue(dir, "early", Role::Server, Dates::NotYetValid);
    let other = fixture.ca.issue(dir, "other", Role::Server, Dates::Current);
    let garbage = dir.join("garbage.pem");
    fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let server = &fixture.server;
    let section = |cert: &Path, key: &Path, ca: &str| {
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {ca:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let shown = |path: &Path| path.display().to_string();
    let cases = [
        (
            section(&expired.cert, &expired.key, ""),
            vec![shown(&expired.cert), "expired at 2001-01-01".into()],
        ),
        (
            section(&early.cert, &early.key, ""),
            vec![shown(&early.cert), "not valid before 3000-01-01".into()],
        ),
        (
            section(&server.cert, &other.key, ""),
            vec![format!(
                "{} is not the private key of the certificate in {}",
                shown(&other.key),
                shown(&server.cert)
            )],
        ),
        (
            section(&missing, &server.key, ""),
            vec![format!("cannot read {}", shown(&missing))],
        ),
        (
            section(&server.cert, &missing, ""),
            vec![format!("cannot read {}", shown(&missing))],
        ),
        (
            section(&garbage, &server.key, ""),
            vec![shown(&garbage), "no CERTIFICATE".into()],
        ),
        (
            section(&server.cert, &server.cert, ""),
            vec![shown(&server.cert), "no PRIVATE KEY".into()],
        ),
        (
            section(&server.cert, &server.key, &shown(&missing)),
            vec![format!("cannot read {}", shown(&missing))],
        ),
        (
            section(&server.cert, &server.key, &shown(&garbage)),
            vec![shown(&garbage), "no CERTIFICATE".into()],
        ),
    ];
    for (toml, expected) in cases {
        let log = refused_start(dir, &toml);
        for text in expected {
            assert!(log.contains(&text), "{toml}\nshould say {text:?}:\n{log}");
        }
    }
}

/// SIGHUP serves new files from the next handshake on; bad new files keep the
/// certificate in use, the log says why, and the server goes on serving.
#[test]
fn sighup_rotates_the_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let fixture = Fixture::new();
    let dir = fixture.path();
    let live = fixture.ca.issue(dir, "live", Role::Server, Dates::Current);
    let first = live.der.clone();
    let server = Server::start(&config_file(dir, &certs::tls_section(&live, None)));
    let trust = || client::config(&fixture.ca.pem, None, Protocol::Http1);
    assert_eq!(client::presented(server.addr, trust()), first);

    let next = fixture.ca.issue(dir, "next", Role::Server, Dates::Current);
    fs::copy(&next.cert, &live.cert).unwrap();
    fs::copy(&next.key, &live.key).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_for_log("TLS certificate reloaded", LIMIT),
        "{}",
        server.log_tail()
    );
    assert_eq!(
        client::presented(server.addr, trust()),
        next.der,
        "the new certificate"
    );

    let expired = fixture
        .ca
        .issue(dir, "expired", Role::Server, Dates::Expired);
    fs::copy(&expired.cert, &live.cert).unwrap();
    fs::copy(&expired.key, &live.key).unwrap();
    server.signal("HUP");
    assert!(
        server.wait_for_log("TLS reload failed", LIMIT),
        "{}",
        server.log_tail()
    );
    assert!(
        server.log_tail().contains("expired at 2001-01-01"),
        "{}",
        server.log_tail()
    );
    assert_eq!(
        client::presented(server.addr, trust()),
        next.der,
        "still the last good one"
    );
    let client = Client::new(server.addr, &fixture.ca.pem, None, Protocol::Http2);
    assert_eq!(client.get("/health").status, 200);
    let metrics = client.get("/metrics").body;
    for line in [
        "rustkv_tls_reloads_total 1",
        "rustkv_tls_reload_failures_total 1",
        // 4000-01-01, the test certificates' notAfter.
        "rustkv_tls_certificate_not_after_seconds 64060588800",
    ] {
        assert!(
            metrics.contains(&format!("\n{line}\n")),
            "{line}:\n{metrics}"
        );
    }
}

/// A shutdown closes idle connections, HTTP/1.1 and HTTP/2, instead of waiting
/// out `shutdown_timeout` for them.
#[test]
fn sigterm_does_not_wait_for_idle_connections_over_either_protocol() {
    let fixture = Fixture::new();
    let toml = "[server]\nkeep_alive = \"60s\"\nshutdown_timeout = \"30s\"\n";
    let config = config_file(
        fixture.path(),
        &format!("{toml}{}", certs::tls_section(&fixture.server, None)),
    );
    for protocol in Protocol::BOTH {
        let mut server = Server::start(&config);
        // The client keeps its connection open, idle, after the answer.
        let client = Client::new(server.addr, &fixture.ca.pem, None, protocol);
        assert_eq!(client.get("/health").status, 200);
        server.signal("TERM");
        let status = server.wait(Duration::from_secs(5));
        assert!(
            status.is_some_and(|status| status.success()),
            "{protocol:?}: {status:?}:\n{}",
            server.log_tail()
        );
    }
}

/// With a token, a non-loopback bind warns that it travels in clear text unless
/// TLS is on.
#[test]
fn a_token_without_tls_beyond_loopback_warns() {
    let fixture = Fixture::new();
    let dir = fixture.path();
    let exposed = "[server]\nbind = \"0.0.0.0\"\n[auth]\ntoken = \"s3cret\"\n";
    let plain = Server::start(&config_file(dir, exposed));
    let warning = "cross the network in clear text";
    assert!(plain.wait_for_log("listening on", LIMIT));
    assert!(plain.log_tail().contains(warning), "{}", plain.log_tail());
    drop(plain);
    let secured = format!("{exposed}{}", certs::tls_section(&fixture.server, None));
    let secure = Server::start(&config_file(dir, &secured));
    assert!(
        !secure.log_tail().contains(warning),
        "{}",
        secure.log_tail()
    );
}

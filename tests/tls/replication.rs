//! A replica following an HTTPS primary: the CA it trusts and the client
//! certificate it presents come from `[replication]`; a primary whose CA it does
//! not trust gets no connection.

use std::{
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    Fixture,
    certs::{Dates, Role},
    client::{Client, Protocol},
};
use crate::common::TestServer;

fn link(replica: &TestServer) -> Value {
    replica.get("/v1/replication").json()
}

/// A primary that asks for client certificates; a replica that trusts its CA and
/// presents one takes a full copy and follows the stream over HTTPS.
#[test]
fn a_replica_follows_an_https_primary_with_a_client_certificate() {
    let fixture = Fixture::new();
    let primary = fixture.start("", Some(&fixture.ca.pem));
    let identity = fixture
        .ca
        .issue(fixture.path(), "replica", Role::Client, Dates::Current);
    let identity_pair = (identity.cert.as_path(), identity.key.as_path());
    let client = Client::new(
        primary.addr,
        &fixture.ca.pem,
        Some(identity_pair),
        Protocol::Http1,
    );
    let json = [("Content-Type", "application/json")];
    let before = client.request("PUT", "/v1/kv/before", &json, Some(b"1"));
    assert_eq!(before.status, 201, "{}", before.body);
    let replica = TestServer::start(&format!(
        "[replication]\nprimary = \"{}\"\nprimary_ca_file = \"{}\"\n\
         primary_cert_file = \"{}\"\nprimary_key_file = \"{}\"\n",
        primary.base,
        fixture.ca.pem.display(),
        identity.cert.display(),
        identity.key.display(),
    ));
    let after = client.request("PUT", "/v1/kv/after", &json, Some(b"2"));
    assert_eq!(after.status, 201, "{}", after.body);
    let started = Instant::now();
    while replica.get("/v1/kv/after").status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replica never got the stream: {}",
            link(&replica)
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(replica.get("/v1/kv/before").body, "1", "the full copy");
    assert_eq!(link(&replica)["link"], "streaming");
}

/// A replica that trusts only Mozilla's CAs refuses a primary whose certificate a
/// private CA signed: it stays unconnected and says why.
#[test]
fn a_replica_refuses_an_https_primary_it_cannot_verify() {
    let fixture = Fixture::new();
    let primary = fixture.start("", None);
    let replica = TestServer::start(&format!("[replication]\nprimary = \"{}\"\n", primary.base));
    let started = Instant::now();
    let error = loop {
        let status = link(&replica);
        if let Some(error) = status["last_error"].as_str() {
            break error.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_ne!(link(&replica)["link"], "streaming");
}

//! HTTPS: `[tls]` against real servers on 127.0.0.1, port 0, with certificates
//! made at run time (`certs`). The same routes, limits, metrics and auth as plain
//! HTTP over HTTP/1.1 and HTTP/2 (`serving`); what the handshake accepts and
//! refuses, plain HTTP to the TLS port, idle connections (`handshake`); and the
//! binary itself: bad files at start-up, SIGHUP reload, shutdown, the warnings
//! (`binary`).

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod certs;
mod client;
mod handshake;
mod replication;
mod serving;

use std::{net::SocketAddr, path::Path};

use certs::{Ca, Dates, Issued, Role};
use client::{Client, Protocol};
use common::TestServer;
use tempfile::TempDir;

/// A CA and a server certificate it signed, in a temporary directory.
struct Fixture {
    dir: TempDir,
    ca: Ca,
    server: Issued,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "main");
        let server = ca.issue(dir.path(), "server", Role::Server, Dates::Current);
        Fixture { dir, ca, server }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An in-process server with `[tls]` and `toml`'s other sections.
    fn start(&self, toml: &str, client_ca: Option<&Path>) -> TestServer {
        let server = TestServer::start(&format!(
            "{toml}\n{}",
            certs::tls_section(&self.server, client_ca)
        ));
        assert!(server.base.starts_with("https://"), "{}", server.base);
        server
    }

    /// A client trusting this fixture's CA, without a client certificate.
    fn client(&self, addr: SocketAddr, protocol: Protocol) -> Client {
        Client::new(addr, &self.ca.pem, None, protocol)
    }
}

//! Clients for a TLS port: `Client` (reqwest, HTTP/1.1 or HTTP/2 as ALPN is told
//! to offer) checks every reply against the OpenAPI contract as the plain tests'
//! client does; `handshake` is a bare rustls connection, for what a handshake
//! presents or refuses, and for raw bytes over TLS.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    sync::Arc,
    time::Duration,
};

use reqwest::{Version, blocking};
use rustls::{ClientConnection, StreamOwned, pki_types::ServerName};

use crate::common::{Reply, contract};

/// How long any client call may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Which protocol a client offers by ALPN, and so gets.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub const BOTH: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            Protocol::Http1 => vec![b"http/1.1".to_vec()],
            Protocol::Http2 => vec![b"h2".to_vec()],
        }
    }

    fn version(self) -> Version {
        match self {
            Protocol::Http1 => Version::HTTP_11,
            Protocol::Http2 => Version::HTTP_2,
        }
    }
}

/// A rustls client configuration trusting `ca`, presenting `identity` if given,
/// offering `protocol`: built by the server's own `tls::client_config`.
pub fn config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    protocol: Protocol,
) -> rustls::ClientConfig {
    let mut config = rustkv::tls::client_config(ca, identity).expect("client TLS config");
    config.alpn_protocols = protocol.alpn();
    config
}

pub struct Client {
    http: blocking::Client,
    base: String,
    protocol: Protocol,
}

impl Client {
    pub fn new(
        addr: SocketAddr,
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        protocol: Protocol,
    ) -> Client {
        let http = blocking::Client::builder()
            .use_preconfigured_tls(config(ca, identity, protocol))
            .timeout(DEADLINE)
            .build()
            .unwrap();
        Client {
            http,
            base: format!("https://{addr}"),
            protocol,
        }
    }

    /// A client speaking HTTP/2 in clear text from its first byte (h2c with prior
    /// knowledge) to a plain port (`tests/h2c.rs`).
    #[allow(dead_code)]
    pub fn h2c(addr: SocketAddr) -> Client {
        let http = blocking::Client::builder()
            .http2_prior_knowledge()
            .timeout(DEADLINE)
            .build()
            .unwrap();
        Client {
            http,
            base: format!("http://{addr}"),
            protocol: Protocol::Http2,
        }
    }

    /// Sends a request; a transport error (a refused handshake) is `Err`.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, reqwest::Error> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_vec());
        }
        let response = request.send()?;
        assert_eq!(
            response.version(),
            self.protocol.version(),
            "{method} {path}: ALPN chose another protocol"
        );
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response.text()?;
        let reply = Reply {
            status,
            headers,
            body,
        };
        contract::check(method.as_str(), path, &reply);
        Ok(reply)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|error| panic!("{method} {path} over {:?}: {error:?}", self.protocol))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }
}

/// A TLS connection, handshake done (or its error).
pub fn handshake(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(DEADLINE))?;
    tcp.set_write_timeout(Some(DEADLINE))?;
    let name = ServerName::try_from("localhost").unwrap();
    let connection =
        ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    // TLS 1.3: a refused client certificate shows at the first read or write.
    stream.flush()?;
    Ok(stream)
}

/// The certificate the server presents to a new connection.
pub fn presented(addr: SocketAddr, config: rustls::ClientConfig) -> Vec<u8> {
    let stream = handshake(addr, config).expect("handshake");
    stream.conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Reads until the peer closes (or the read deadline passes, an error).
pub fn read_to_close(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(all),
            Ok(count) => all.extend_from_slice(&chunk[..count]),
            // A peer closing without close_notify (rustls reports it) is a close.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(all),
            Err(error) => return Err(error),
        }
    }
}

/// A client configuration presenting `cert` and `key` as they are, without the
/// checks `tls::client_config` makes (an expired certificate, to see the server
/// refuse it).
pub fn config_presenting(
    ca: &Path,
    cert: &Path,
    key: &Path,
    protocol: Protocol,
) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap())
        .unwrap();
    config.alpn_protocols = protocol.alpn();
    config
}

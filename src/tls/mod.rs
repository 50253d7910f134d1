//! TLS: the rustls configuration built from `[tls]`'s files, checked at start-up
//! and rebuilt on reload.
//!
//! `Tls` holds the configuration in use behind an `ArcSwap`: each new connection
//! takes the current one, so a reload (SIGHUP) changes what the next handshakes
//! present without touching connections already open. A reload that fails keeps
//! the configuration in use. `net` does the handshakes; this module knows nothing
//! of sockets.
//!
//! `client_config` builds the other side (a CA to verify a server against, an
//! optional client certificate) from the same files and checks, for whatever will
//! connect to another RustKV (replication).

mod counters;
mod files;
mod validity;

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::SystemTime,
};

use arc_swap::ArcSwap;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring},
    server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier},
    sign::{CertifiedKey, SingleCertAndKey},
};

use crate::config::TlsConfig;

pub use counters::TlsCounters;
pub use files::TlsError;
pub use validity::{Validity, validity};

/// ALPN, in the server's order of preference.
const PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions remembered for resumption (each a few hundred bytes).
const SESSION_CACHE: usize = 4096;

/// The server's TLS configuration, reloadable.
pub struct Tls {
    files: TlsConfig,
    current: ArcSwap<ServerConfig>,
    /// Shared by every configuration a reload builds, so clients resume across it.
    sessions: Arc<dyn StoresServerSessions>,
    pub counters: TlsCounters,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// The `ring` provider: it builds with a C compiler alone, where aws-lc-rs (rustls's
/// default) needs cmake too.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

impl Tls {
    /// Reads and checks the files of `[tls]`: the error names the bad one.
    pub fn load(files: &TlsConfig) -> Result<Tls, TlsError> {
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let (config, not_after) = build(files, Arc::clone(&sessions))?;
        let counters = TlsCounters::default();
        counters.serving(not_after);
        Ok(Tls {
            files: files.clone(),
            current: ArcSwap::from_pointee(config),
            sessions,
            counters,
        })
    }

    /// The configuration for the next handshake.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Reads the files again and, if they pass every check `load` makes, serves
    /// them from the next handshake on. On error the configuration in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let built = build(&self.files, Arc::clone(&self.sessions));
        let (config, not_after) = built.inspect_err(|_| {
            self.counters.reload_failures.fetch_add(1, Relaxed);
        })?;
        self.current.store(Arc::new(config));
        self.counters.serving(not_after);
        self.counters.reloads.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// A server configuration from the files, and when its certificate expires.
fn build(
    files: &TlsConfig,
    sessions: Arc<dyn StoresServerSessions>,
) -> Result<(ServerConfig, SystemTime), TlsError> {
    let provider = provider();
    let certified = certified_key(&provider, &files.cert, &files.key)?;
    // certified_key has read the dates already: this cannot fail.
    let not_after = certified
        .cert
        .first()
        .and_then(|leaf| validity(leaf))
        .map_or(SystemTime::UNIX_EPOCH, |dates| dates.not_after);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?;
    let builder = if files.client_ca.as_os_str().is_empty() {
        builder.with_no_client_auth()
    } else {
        let roots = Arc::new(files::roots(&files.client_ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|source| TlsError::Ca {
                path: files.client_ca.clone(),
                reason: source.to_string(),
            })?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = PROTOCOLS.iter().map(|protocol| protocol.to_vec()).collect();
    config.session_storage = sessions;
    Ok((config, not_after))
}

/// The certificate chain and its key, checked: readable, in date, matching.
fn certified_key(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain = files::chain(cert, SystemTime::now())?;
    let signing = provider
        .key_provider
        .load_private_key(files::private_key(key)?)
        .map_err(|source| TlsError::Key {
            path: key.to_owned(),
            reason: source.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
    })?;
    Ok(certified)
}

/// A client configuration that trusts the CAs in `ca` and, with `identity` (a
/// certificate chain and its key), presents a client certificate. ALPN is the
/// caller's to set.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let roots: RootCertStore = files::roots(ca)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    let Some((cert, key)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let certified = certified_key(&provider, cert, key)?;
    Ok(builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified))))
}

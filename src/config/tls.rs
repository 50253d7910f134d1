//! The `[tls]` section: where the certificate, its key and the client CA live.
//!
//! Validation here is about the keys alone (a key without a certificate, a client
//! CA without either); reading and checking the files themselves is `tls`'s job at
//! start-up, so that a reload on SIGHUP checks them the same way.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

/// HTTPS on the server's port; off (plain HTTP) while `cert` and `key` are empty.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key of the first certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca: PathBuf,
}

impl TlsConfig {
    /// Whether the port speaks HTTPS.
    pub fn enabled(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let (cert, key) = (self.cert.as_os_str(), self.key.as_os_str());
        check(
            cert.is_empty() == key.is_empty(),
            if cert.is_empty() {
                "tls.key"
            } else {
                "tls.cert"
            },
            if cert.is_empty() {
                self.key.display()
            } else {
                self.cert.display()
            },
            "tls.cert and tls.key go together: set both for HTTPS, or neither",
        )?;
        check(
            self.client_ca.as_os_str().is_empty() || !cert.is_empty(),
            "tls.client_ca",
            self.client_ca.display(),
            "client certificates need HTTPS: set tls.cert and tls.key too",
        )
    }
}

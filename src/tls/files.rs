//! Reading `[tls]`'s PEM files, and the one error type for everything that can be
//! wrong with them: each variant names the file, since the operator's next step
//! is to look at it.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::validity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no {what} in it (expected a PEM \"{what}\" block)", path.display())]
    Missing { path: PathBuf, what: &'static str },
    #[error("{}: certificate {index} is not X.509 this server can read", path.display())]
    Unreadable { path: PathBuf, index: usize },
    #[error("{}: certificate {index} expired at {not_after}", path.display())]
    Expired {
        path: PathBuf,
        index: usize,
        not_after: String,
    },
    #[error("{}: certificate {index} is not valid before {not_before}", path.display())]
    NotYetValid {
        path: PathBuf,
        index: usize,
        not_before: String,
    },
    #[error("{}: unusable private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{} is not the private key of the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: unusable CA bundle: {reason}", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, what: &'static str, error: rustls_pki_types::pem::Error) -> TlsError {
    match error {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: path.to_owned(),
            what,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Every certificate in a PEM file, in order; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(path, "CERTIFICATE", error))?;
    if certs.is_empty() {
        return Err(pem_error(
            path,
            "CERTIFICATE",
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

/// The server's chain, each certificate in date at `now` (clients would refuse it
/// otherwise, after the server had started as if all were well).
pub fn chain(path: &Path, now: SystemTime) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = certificates(path)?;
    for (index, cert) in certs.iter().enumerate() {
        check_dates(path, index + 1, cert, now)?;
    }
    warn_if_expiring(path, &certs[0], now);
    Ok(certs)
}

fn check_dates(
    path: &Path,
    index: usize,
    cert: &CertificateDer<'_>,
    now: SystemTime,
) -> Result<(), TlsError> {
    let path = path.to_owned();
    let Some(dates) = validity(cert) else {
        return Err(TlsError::Unreadable { path, index });
    };
    let shown = |time| humantime::format_rfc3339_seconds(time).to_string();
    if now > dates.not_after {
        let not_after = shown(dates.not_after);
        return Err(TlsError::Expired {
            path,
            index,
            not_after,
        });
    }
    if now < dates.not_before {
        let not_before = shown(dates.not_before);
        return Err(TlsError::NotYetValid {
            path,
            index,
            not_before,
        });
    }
    Ok(())
}

/// Renewal is due: a month's notice, in the log at each start and reload.
fn warn_if_expiring(path: &Path, leaf: &CertificateDer<'_>, now: SystemTime) {
    const NOTICE: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);
    let Some(dates) = validity(leaf) else { return };
    if let Ok(left) = dates.not_after.duration_since(now)
        && left < NOTICE
    {
        log::warn!(
            "TLS certificate {} expires at {} (in {} days): renew it and send SIGHUP",
            path.display(),
            humantime::format_rfc3339_seconds(dates.not_after),
            left.as_secs() / 86_400
        );
    }
}

/// The private key: the first PKCS#8, PKCS#1 or SEC1 block in the file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?)
        .map_err(|error| pem_error(path, "PRIVATE KEY", error))
}

/// A CA bundle as trust anchors.
pub fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|error| TlsError::Ca {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    }
    Ok(roots)
}

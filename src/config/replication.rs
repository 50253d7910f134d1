//! The `[replication]` section: whether this node follows a primary, and what a
//! primary keeps for its replicas.
//!
//! Every node can serve replicas (a primary needs no setting for it); `primary`
//! makes a node a replica from start-up, as Redis's `replicaof`.

use std::{path::Path, sync::Arc, time::Duration};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{ConfigError, check};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// `http://host:port` or `https://host:port` of the primary this node
    /// follows; empty: a primary.
    pub primary: String,
    /// PEM file of the CAs that sign an HTTPS primary's certificate; empty:
    /// Mozilla's public CAs.
    pub primary_ca_file: String,
    /// A client certificate chain and its key (PEM) to present to an HTTPS
    /// primary that asks for one (its `[tls] client_ca_file`); both or neither.
    pub primary_cert_file: String,
    pub primary_key_file: String,
    /// A file whose contents (trimmed) are the bearer token to present to the
    /// primary; empty: present this node's own `[auth]` token, if any.
    pub primary_token_file: String,
    /// Bytes of recent changes a primary keeps so that a replica that lost its
    /// connection resumes without a full copy (Redis's repl-backlog-size). A
    /// replica that falls further behind is disconnected and takes a full copy.
    pub backlog_size: ByteSize,
    /// A replica that hears nothing from its primary for this long (the primary
    /// pings several times a second) drops the connection and reconnects.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A primary started with this takes no writes until a replica has connected
    /// to it (or it is promoted): an old primary restarted after a failover does
    /// not take writes back before it is told to follow the new one.
    pub fence_on_start: bool,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            primary: String::new(),
            primary_ca_file: String::new(),
            primary_cert_file: String::new(),
            primary_key_file: String::new(),
            primary_token_file: String::new(),
            backlog_size: ByteSize::mib(64),
            timeout: Duration::from_secs(5),
            fence_on_start: false,
        }
    }
}

impl ReplicationConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.primary.is_empty() {
            check_primary_url(&self.primary)
                .map_err(|reason| invalid("replication.primary", &self.primary, reason))?;
        }
        check(
            self.backlog_size.as_u64() >= 1024 * 1024,
            "replication.backlog_size",
            self.backlog_size,
            "must be at least 1MiB",
        )?;
        check(
            self.timeout >= Duration::from_secs(1),
            "replication.timeout",
            humantime::format_duration(self.timeout),
            "must be at least 1s (the primary pings every 250ms)",
        )?;
        self.primary_tls()?;
        self.primary_token().map(|_| ())
    }

    /// The TLS settings for an HTTPS primary, from `primary_ca_file` and the client
    /// certificate; `None` when none is set (Mozilla's CAs, no client certificate).
    pub fn primary_tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ConfigError> {
        let identity = match (&*self.primary_cert_file, &*self.primary_key_file) {
            ("", "") => None,
            ("", _) | (_, "") => {
                let reason = "primary_cert_file and primary_key_file go together".to_owned();
                return Err(invalid("replication.primary_cert_file", "", reason));
            }
            (cert, key) => Some((Path::new(cert), Path::new(key))),
        };
        if self.primary_ca_file.is_empty() {
            return match identity {
                None => Ok(None),
                Some(_) => Err(invalid(
                    "replication.primary_ca_file",
                    "",
                    "must name the primary's CA when a client certificate is set".into(),
                )),
            };
        }
        let ca = Path::new(&self.primary_ca_file);
        crate::tls::client_config(ca, identity)
            .map(|config| Some(Arc::new(config)))
            .map_err(|error| {
                invalid(
                    "replication.primary_ca_file",
                    &self.primary_ca_file,
                    error.to_string(),
                )
            })
    }

    /// The token to present to the primary, from `primary_token_file`, if set.
    pub fn primary_token(&self) -> Result<Option<String>, ConfigError> {
        if self.primary_token_file.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.primary_token_file).map_err(|source| {
            ConfigError::Read {
                path: self.primary_token_file.clone(),
                source,
            }
        })?;
        Ok(Some(text.trim().to_owned()))
    }
}

fn invalid(key: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason,
    }
}

/// Whether `url` names a primary this node can follow: `http://host:port` or
/// `https://host:port`, with no path (the replication routes are appended to
/// it). Shared with `POST /v1/replication/follow`.
pub fn check_primary_url(url: &str) -> Result<(), String> {
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(authority) = authority else {
        return Err("must start with http:// or https://".into());
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err("must name a port: http(s)://host:port".into());
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-[]:".contains(&byte));
    if !host_ok || port.parse::<u16>().map_or(true, |port| port == 0) {
        return Err("must be http(s)://host:port, with nothing after the port".into());
    }
    Ok(())
}

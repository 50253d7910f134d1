//! Configuration: the TOML file, its defaults, command-line overrides and validation.
//!
//! `config/default.toml` is embedded in the binary and is the single source of the
//! defaults (a test checks the serde defaults agree with it). A file given with
//! `--config` may set any subset of keys. `validate` runs once, at start-up, and
//! names the offending key; the rest of the program trusts a `Config`.

use std::{net::ToSocketAddrs, path::Path, time::Duration};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

mod auth;
mod persistence;
mod replication;
mod tls;

pub use auth::{AuthConfig, TOKEN_ENV};
pub use persistence::{Fsync, MAX_PERSISTENT_PARTITIONS, Mode, PersistenceConfig};
pub use replication::{ReplicationConfig, check_primary_url};
pub use tls::TlsConfig;

/// The default configuration, as shipped in `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The smallest partition `partitions = 0` will create, in entries of capacity.
pub const MIN_AUTO_PARTITION_CAPACITY: u64 = 1024;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub metrics: MetricsConfig,
    pub persistence: PersistenceConfig,
    pub tls: TlsConfig,
    pub replication: ReplicationConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Count and time every request by route (the only metrics on the request path).
    pub requests: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { requests: true }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    /// 0 = one per core.
    pub workers: usize,
    pub max_body: ByteSize,
    /// How long a shutdown waits for requests in flight once it stops reading.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long a shutdown first keeps serving while `/health` answers 503.
    #[serde(with = "humantime_serde")]
    pub shutdown_drain: Duration,
    /// Open connections per worker before new ones wait.
    pub max_connections: usize,
    /// How long a client may take to send each request's head; slower ones get 408.
    #[serde(with = "humantime_serde")]
    pub client_request_timeout: Duration,
    /// How long a request body may go without a byte before the connection is cut.
    #[serde(with = "humantime_serde")]
    pub client_body_timeout: Duration,
    /// How long an idle keep-alive connection is kept open.
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Most header fields in one request; more get 431.
    pub max_headers: usize,
    /// Most bytes of header names and values in one request; more get 431.
    pub max_header_bytes: ByteSize,
}

/// actix-http's own ceilings, which the header limits cannot exceed: it refuses a
/// request with more header fields, or a head larger than its buffer, by itself.
pub const ACTIX_MAX_HEADERS: usize = 96;
pub const ACTIX_MAX_HEAD_BYTES: u64 = 131_072;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub capacity: u64,
    pub max_memory: ByteSize,
    /// 0 = automatic (see `resolved_partitions`).
    pub partitions: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: ByteSize,
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    pub placement: Placement,
    pub eviction: Eviction,
    /// Most ops in one `POST /v1/batch`.
    pub max_batch_ops: usize,
    /// Most ops in one `POST /v1/txn` (compares and both branches together).
    pub max_txn_ops: usize,
    /// Items a scan page returns when the request names no `limit`.
    pub scan_limit: usize,
    /// Most items a scan page may be asked for.
    pub max_scan_limit: usize,
    /// Most keys a scan page examines (as Redis's SCAN COUNT): a page whose keys
    /// mostly fail `match` or have expired stops there, with a cursor.
    pub max_scan_examined: usize,
}

/// Which entry goes when a partition is full.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Eviction {
    /// The least recently used.
    #[default]
    Lru,
    /// Caffeine's W-TinyLFU: a small LRU window, then a segmented LRU whose
    /// newcomers must be more frequent (by a count-min sketch) than the entry
    /// they would displace.
    Tinylfu,
}

/// Where partition actors run.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// On the HTTP worker threads, partitions dealt round-robin: a write to a
    /// partition of the worker that received it needs no cross-thread hop.
    Workers,
    /// On dedicated arbiter threads, at most one per core.
    Arbiters,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    /// One line per request (method, path, status, bytes, duration) at info.
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8000,
            workers: 0,
            max_body: ByteSize::mib(2),
            shutdown_timeout: Duration::from_secs(10),
            shutdown_drain: Duration::ZERO,
            max_connections: 25_000,
            client_request_timeout: Duration::from_secs(5),
            client_body_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            max_headers: 64,
            max_header_bytes: ByteSize::kib(16),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            max_memory: ByteSize::mib(512),
            partitions: 0,
            max_key_bytes: 1024,
            max_value_bytes: ByteSize::mib(1),
            // humantime's year is 365.25 days.
            max_ttl: Duration::from_secs(10 * 31_557_600),
            tick: Duration::from_millis(100),
            placement: Placement::Workers,
            eviction: Eviction::Lru,
            max_batch_ops: 1000,
            max_txn_ops: 128,
            scan_limit: 100,
            max_scan_limit: 1000,
            max_scan_examined: 10_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            access_log: false,
        }
    }
}

/// Command-line values that win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub capacity: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid config: {key} = {value}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    /// Loads `path` (or the embedded default), applies `overrides` and `RUSTKV_TOKEN`,
    /// validates. The only place the configuration reads the environment.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => DEFAULT_TOML.to_owned(),
        };
        let mut config = Config::parse(&text)?;
        config.apply(overrides);
        config.auth.env_token = std::env::var(TOKEN_ENV).ok();
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text; keys it does not set take their defaults.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(bind) = &overrides.bind {
            self.server.bind.clone_from(bind);
        }
        if let Some(port) = overrides.port {
            self.server.port = port;
        }
        if let Some(capacity) = overrides.capacity {
            self.store.capacity = capacity;
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.store.validate()?;
        self.persistence
            .validate(self.store.resolved_partitions())?;
        let largest_record = store_record_bytes(&self.store);
        check(
            !self.persistence.enabled()
                || largest_record <= crate::persist::record::MAX_RECORD_BYTES as u64,
            "store.max_value_bytes",
            self.store.max_value_bytes,
            "with persistence on, a key and value must fit in a log record (128 MiB)",
        )?;
        self.auth.resolve()?;
        self.tls.validate()?;
        self.replication.validate()?;
        let store = &self.store;
        // A PyRustKV insert body carries the key and the value plus a little JSON.
        let largest_insert = store.max_value_bytes.as_u64() + store.max_key_bytes as u64 * 6 + 64;
        check(
            self.server.max_body.as_u64() >= largest_insert,
            "server.max_body",
            self.server.max_body,
            format!("must be at least {largest_insert} bytes to hold the largest key and value"),
        )
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let resolves = (self.bind.as_str(), self.port)
            .to_socket_addrs()
            .map(|mut addrs| addrs.next().is_some())
            .unwrap_or(false);
        check(
            resolves,
            "server.bind",
            &self.bind,
            "not an address or host name",
        )?;
        check(
            self.workers <= 1024,
            "server.workers",
            self.workers,
            "at most 1024",
        )?;
        check(
            self.max_body.as_u64() > 0,
            "server.max_body",
            self.max_body,
            "must be > 0",
        )?;
        check(
            self.max_connections >= 1,
            "server.max_connections",
            self.max_connections,
            "must be >= 1",
        )?;
        check(
            (1..=ACTIX_MAX_HEADERS).contains(&self.max_headers),
            "server.max_headers",
            self.max_headers,
            "must be 1 to 96 (actix-http refuses more by itself)",
        )?;
        let header_bytes = self.max_header_bytes.as_u64();
        check(
            (1024..=ACTIX_MAX_HEAD_BYTES).contains(&header_bytes),
            "server.max_header_bytes",
            self.max_header_bytes,
            "must be 1KiB to 128KiB (actix-http's own ceiling for a request head)",
        )?;
        for (key, timeout) in [
            ("server.client_request_timeout", self.client_request_timeout),
            ("server.client_body_timeout", self.client_body_timeout),
        ] {
            // Zero would cut every client off at once; `net` has no "disabled" value.
            check(
                timeout >= Duration::from_millis(100),
                key,
                humantime::format_duration(timeout),
                "must be at least 100ms",
            )?;
        }
        Ok(())
    }

    /// The worker count with 0 resolved to the number of cores.
    pub fn resolved_workers(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            workers => workers,
        }
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.capacity >= 1,
            "store.capacity",
            self.capacity,
            "must be at least 1",
        )?;
        check(
            self.max_key_bytes >= 1,
            "store.max_key_bytes",
            self.max_key_bytes,
            "must be >= 1",
        )?;
        check(
            self.max_key_bytes <= 65_536,
            "store.max_key_bytes",
            self.max_key_bytes,
            "at most 65536",
        )?;
        check(
            self.max_value_bytes.as_u64() >= 4,
            "store.max_value_bytes",
            self.max_value_bytes,
            "must be >= 4 (room for `null`)",
        )?;
        check(
            self.partitions as u64 <= self.capacity && self.partitions <= 4096,
            "store.partitions",
            self.partitions,
            "at most 4096 and at most store.capacity",
        )?;
        let ttl_ok =
            self.max_ttl > Duration::ZERO && self.max_ttl <= Duration::from_secs(100 * 31_557_600);
        check(
            ttl_ok,
            "store.max_ttl",
            humantime::format_duration(self.max_ttl),
            "must be > 0 and at most 100 years",
        )?;
        let tick_ok = self.tick >= Duration::from_millis(1) && self.tick <= Duration::from_secs(10);
        check(
            tick_ok,
            "store.tick",
            humantime::format_duration(self.tick),
            "must be between 1ms and 10s",
        )?;
        for (name, value, most) in [
            ("store.max_batch_ops", self.max_batch_ops, 100_000),
            ("store.max_txn_ops", self.max_txn_ops, 10_000),
            ("store.max_scan_limit", self.max_scan_limit, 100_000),
        ] {
            check(
                (1..=most).contains(&value),
                name,
                value,
                format!("must be between 1 and {most}"),
            )?;
        }
        check(
            (1..=self.max_scan_limit).contains(&self.scan_limit),
            "store.scan_limit",
            self.scan_limit,
            "must be between 1 and store.max_scan_limit",
        )?;
        check(
            self.max_scan_examined >= self.max_scan_limit,
            "store.max_scan_examined",
            self.max_scan_examined,
            "must be at least store.max_scan_limit",
        )?;
        let largest_entry =
            crate::store::entry_charge(self.max_key_bytes, self.max_value_bytes.as_u64() as usize);
        let per_partition = self.max_memory.as_u64() / self.resolved_partitions() as u64;
        check(
            per_partition >= largest_entry,
            "store.max_memory",
            self.max_memory,
            format!(
                "each of the {} partitions needs room for the largest entry ({largest_entry} bytes)",
                self.resolved_partitions()
            ),
        )
    }

    /// The partition count with 0 resolved: one per core, but never a partition
    /// with less than `MIN_AUTO_PARTITION_CAPACITY` entries of capacity.
    pub fn resolved_partitions(&self) -> usize {
        if self.partitions > 0 {
            return self.partitions;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        (self.capacity / MIN_AUTO_PARTITION_CAPACITY).clamp(1, cores) as usize
    }
}

/// The largest log record a write can make: the value, the key and the record's
/// own fields.
fn store_record_bytes(store: &StoreConfig) -> u64 {
    store.max_value_bytes.as_u64() + store.max_key_bytes as u64 + 64
}

fn check(
    ok: bool,
    key: &'static str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> Result<(), ConfigError> {
    if ok {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        key,
        value: value.to_string(),
        reason: reason.into(),
    })
}

#[cfg(test)]
mod tests;

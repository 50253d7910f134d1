//! What `/metrics` reports about TLS, counted here as plain atomics so that this
//! module needs no metrics library (`http::tls_metrics` reads them at scrape time).

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::SystemTime,
};

#[derive(Debug, Default)]
pub struct TlsCounters {
    /// Connections that never completed a handshake: plain HTTP, other non-TLS
    /// bytes, a refused client certificate, a timeout, a client that left.
    pub handshake_failures: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// The `notAfter` of the certificate in use, in seconds since the epoch: an
    /// alert on it is how an operator hears of a renewal that did not happen.
    pub not_after: AtomicU64,
}

impl TlsCounters {
    pub fn handshake_failed(&self) {
        self.handshake_failures.fetch_add(1, Relaxed);
    }

    pub(super) fn serving(&self, not_after: SystemTime) {
        let seconds = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.not_after.store(seconds, Relaxed);
    }
}

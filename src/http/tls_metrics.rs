//! `/metrics` for TLS: handshakes that failed, reloads, and when the certificate
//! in use expires. Read from `tls::TlsCounters` at scrape time; absent without
//! `[tls]`.

use std::sync::{Arc, atomic::Ordering::Relaxed};

use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::fields::{self, Field};
use crate::tls::{Tls, TlsCounters};

const FIELDS: [Field<TlsCounters>; 4] = [
    (
        "tls_handshake_failures_total",
        "Connections closed before a TLS handshake completed (plain HTTP, a refused \
         client certificate, a timeout)",
        true,
        |c| c.handshake_failures.load(Relaxed),
    ),
    (
        "tls_reloads_total",
        "Certificate reloads (SIGHUP) that took effect",
        true,
        |c| c.reloads.load(Relaxed),
    ),
    (
        "tls_reload_failures_total",
        "Certificate reloads refused, the certificate in use kept",
        true,
        |c| c.reload_failures.load(Relaxed),
    ),
    (
        "tls_certificate_not_after_seconds",
        "When the certificate in use expires, in seconds since the Unix epoch",
        false,
        |c| c.not_after.load(Relaxed),
    ),
];

pub struct TlsCollector {
    tls: Arc<Tls>,
    descs: Vec<Desc>,
}

impl TlsCollector {
    pub fn new(tls: Arc<Tls>) -> prometheus::Result<Self> {
        let descs = fields::descs(&FIELDS)?;
        Ok(TlsCollector { tls, descs })
    }
}

impl Collector for TlsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        fields::collect(&FIELDS, &self.tls.counters)
    }
}

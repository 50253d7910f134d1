//! `/metrics` for TLS: handshakes that failed, reloads, and when the certificate
//! in use expires. Read from `tls::TlsCounters` at scrape time; absent without
//! `[tls]`.

use std::sync::{Arc, atomic::Ordering::Relaxed};

use prometheus::{
    IntCounter, IntGauge, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::tls::{Tls, TlsCounters};

/// name, help, counter (true) or gauge (false), reader.
type Field = (&'static str, &'static str, bool, fn(&TlsCounters) -> u64);

const FIELDS: [Field; 4] = [
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
        let descs = FIELDS
            .iter()
            .map(|(name, help, _, _)| {
                Desc::new(
                    format!("rustkv_{name}"),
                    (*help).into(),
                    vec![],
                    Default::default(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(TlsCollector { tls, descs })
    }
}

impl Collector for TlsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = Vec::new();
        for (name, help, counter, read) in FIELDS {
            let opts = Opts::new(name, help).namespace("rustkv");
            let value = read(&self.tls.counters);
            if counter {
                let metric = IntCounter::with_opts(opts).expect("valid metric");
                metric.inc_by(value);
                families.extend(metric.collect());
            } else {
                let metric = IntGauge::with_opts(opts).expect("valid metric");
                metric.set(value as i64);
                families.extend(metric.collect());
            }
        }
        families
    }
}

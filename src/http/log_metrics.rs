//! `/metrics` for the logs (`[persistence] mode = "aof"`): what they wrote and
//! synced, how long syncs took, rewrites, faults and what start-up recovered.
//! Read from the store's `LogCounters` at scrape time; absent without persistence.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::{
    Gauge, IntGauge,
    core::{Collector, Desc},
    proto::{self, MetricFamily},
};

use super::fields::{self, Field};

use crate::store::{
    Store,
    journal::{LogCounters, SYNC_BUCKETS},
};

pub struct LogCollector {
    store: Store,
    descs: Vec<Desc>,
}

const FIELDS: [Field<LogCounters>; 6] = [
    (
        "log_bytes_written_total",
        "Bytes written to logs and snapshots",
        true,
        |c| c.bytes_written.load(Relaxed),
    ),
    (
        "log_rewrites_total",
        "Snapshots completed, each replacing a partition's log",
        true,
        |c| c.rewrites.load(Relaxed),
    ),
    (
        "log_faults_total",
        "Times a log failed to write or sync and writes were refused",
        true,
        |c| c.faults.load(Relaxed),
    ),
    (
        "log_recovered_records",
        "Records replayed at start-up",
        false,
        |c| c.records_loaded.load(Relaxed),
    ),
    (
        "log_recovery_expired_entries",
        "Entries not loaded at start-up because they expired while the server was down",
        false,
        |c| c.records_expired.load(Relaxed),
    ),
    (
        "log_recovery_truncated_bytes",
        "Bytes cut off damaged file tails at start-up",
        false,
        |c| c.bytes_truncated.load(Relaxed),
    ),
];

const REFUSED: (&str, &str) = (
    "rustkv_log_writes_refused",
    "1 while writes are refused because a log cannot write, else 0",
);
const RECOVERY: (&str, &str) = (
    "rustkv_log_recovery_seconds",
    "How long the start-up recovery took",
);
const SYNCS: (&str, &str) = ("rustkv_log_sync_seconds", "fdatasync latency of the logs");

impl LogCollector {
    pub fn new(store: Store) -> prometheus::Result<Self> {
        let mut descs = fields::descs(&FIELDS)?;
        for (name, help) in [REFUSED, RECOVERY, SYNCS] {
            descs.push(Desc::new(
                name.into(),
                help.into(),
                vec![],
                Default::default(),
            )?);
        }
        Ok(Self { store, descs })
    }
}

impl Collector for LogCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(counters) = self.store.log_counters() else {
            return Vec::new();
        };
        let mut families = fields::collect(&FIELDS, counters);
        let refused = IntGauge::new(REFUSED.0, REFUSED.1).expect("valid metric");
        refused.set(i64::from(self.store.write_refusal().is_some()));
        families.extend(refused.collect());
        let recovery = Gauge::new(RECOVERY.0, RECOVERY.1).expect("valid metric");
        recovery.set(counters.recovery_nanos.load(Relaxed) as f64 / 1e9);
        families.extend(recovery.collect());
        families.push(sync_histogram(counters));
        families
    }
}

/// The sync latencies as a Prometheus histogram family.
fn sync_histogram(counters: &LogCounters) -> MetricFamily {
    let mut histogram = proto::Histogram::default();
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(SYNC_BUCKETS.len());
    for (bound, count) in SYNC_BUCKETS.iter().zip(&counters.sync_histogram) {
        cumulative += count.load(Relaxed);
        let mut bucket = proto::Bucket::default();
        bucket.set_cumulative_count(cumulative);
        bucket.set_upper_bound(*bound);
        buckets.push(bucket);
    }
    histogram.set_bucket(buckets);
    histogram.set_sample_count(counters.syncs.load(Relaxed));
    histogram.set_sample_sum(counters.sync_nanos.load(Relaxed) as f64 / 1e9);
    let mut metric = proto::Metric::default();
    metric.set_histogram(histogram);
    let mut family = MetricFamily::default();
    family.set_name(SYNCS.0.into());
    family.set_help(SYNCS.1.into());
    family.set_field_type(proto::MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}

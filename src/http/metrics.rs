//! Prometheus metrics: what `/metrics` exposes. The request middleware that feeds
//! the per-route series is in `tracking`.
//!
//! Produced by the `prometheus` crate, never hand-formatted. Store figures are not
//! kept twice: a `Collector` reads the store's own atomic counters at scrape time,
//! so the request path pays nothing for them. The per-request cost is two clock
//! reads and a few atomic adds on handles resolved once at start-up (no label
//! lookups on the hot path).

use std::sync::Arc;

use actix_web::{HttpResponse, http::header::ContentType, web};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::{
    AppState,
    tracking::{CLASSES, ROUTES, RouteHandles},
};
use crate::{
    store::{PartitionStats, Store, StoreStats},
    tls::Tls,
};

/// The metrics handles shared by every worker.
pub struct Metrics {
    registry: Registry,
    /// The request middleware's handles (see `tracking`).
    pub routes: RouteHandles,
    /// Time from sending a write to its partition actor to its reply.
    pub actor_round_trip: Histogram,
}

impl Metrics {
    /// The registry; with `tls`, its handshake, reload and expiry figures too.
    pub fn new(store: Store, tls: Option<Arc<Tls>>) -> prometheus::Result<Arc<Metrics>> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rustkv_http_requests_total",
                "HTTP requests by route and status class",
            ),
            &["route", "class"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "rustkv_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(prometheus::exponential_buckets(0.000_025, 2.0, 16)?),
            &["route"],
        )?;
        let actor_round_trip = Histogram::with_opts(
            HistogramOpts::new(
                "rustkv_store_actor_round_trip_seconds",
                "Time from sending a write to its partition actor to the reply",
            )
            .buckets(prometheus::exponential_buckets(0.000_001, 2.0, 18)?),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(actor_round_trip.clone()))?;
        registry.register(Box::new(super::log_metrics::LogCollector::new(
            store.clone(),
        )?))?;
        registry.register(Box::new(StoreCollector::new(store)?))?;
        if let Some(tls) = tls {
            registry.register(Box::new(super::tls_metrics::TlsCollector::new(tls)?))?;
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let requests = ROUTES
            .iter()
            .map(|route| {
                CLASSES
                    .iter()
                    .map(|class| requests.with_label_values(&[route, class]))
                    .collect()
            })
            .collect();
        let latency = ROUTES
            .iter()
            .map(|route| latency.with_label_values(&[route]))
            .collect();
        Ok(Arc::new(Metrics {
            registry,
            routes: RouteHandles { requests, latency },
            actor_round_trip,
        }))
    }

    /// Adds replication's figures (role, position, lag, replicas).
    pub fn watch_replication(
        &self,
        replication: Arc<crate::replication::Replication>,
    ) -> prometheus::Result<()> {
        let collector = super::repl_metrics::ReplicationCollector::new(replication)?;
        self.registry.register(Box::new(collector))
    }

    /// The exposition text.
    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        buffer
    }
}

/// `GET /metrics`.
pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType(
            TextEncoder::new()
                .format_type()
                .parse()
                .expect("valid mime"),
        ))
        .body(state.metrics.render())
}

/// Exposes the store's own counters at scrape time, per partition.
struct StoreCollector {
    store: Store,
    descs: Vec<Desc>,
}

/// name, help, counter (true) or gauge (false), extra label (name, value), reader.
type Field = (
    &'static str,
    &'static str,
    bool,
    Option<(&'static str, &'static str)>,
    fn(&PartitionStats) -> u64,
);

const FIELDS: [Field; 14] = [
    (
        "store_hits_total",
        "GETs that found a live entry",
        true,
        None,
        |s| s.hits,
    ),
    (
        "store_misses_total",
        "GETs that found nothing live",
        true,
        None,
        |s| s.misses,
    ),
    (
        "store_inserts_total",
        "Writes that created a key",
        true,
        None,
        |s| s.inserts,
    ),
    (
        "store_updates_total",
        "Writes that replaced a live key",
        true,
        None,
        |s| s.updates,
    ),
    (
        "store_deletes_total",
        "Deletes that removed a live key",
        true,
        None,
        |s| s.deletes,
    ),
    (
        "store_evictions_total",
        "Entries evicted to make room",
        true,
        Some(("cause", "capacity")),
        |s| s.evictions_capacity,
    ),
    (
        "store_evictions_total",
        "Entries evicted to make room",
        true,
        Some(("cause", "memory")),
        |s| s.evictions_memory,
    ),
    (
        "store_expirations_total",
        "Expired entries, reclaimed (active) or read (lazy)",
        true,
        Some(("kind", "active")),
        |s| s.expirations,
    ),
    (
        "store_expirations_total",
        "Expired entries, reclaimed (active) or read (lazy)",
        true,
        Some(("kind", "lazy")),
        |s| s.expired_reads,
    ),
    (
        "store_read_buffer_drops_total",
        "Hits not recorded for LRU (read buffer full)",
        true,
        None,
        |s| s.read_drops,
    ),
    (
        "store_group_messages_total",
        "Batch and transaction messages applied (one per partition a group touches)",
        true,
        None,
        |s| s.group_messages,
    ),
    ("store_keys", "Live entries", false, None, |s| s.keys),
    (
        "store_memory_bytes",
        "Approximate bytes charged for keys, values and overhead",
        false,
        None,
        |s| s.memory,
    ),
    (
        "store_capacity",
        "Most entries the partition holds",
        false,
        None,
        |s| s.capacity,
    ),
];

impl StoreCollector {
    fn new(store: Store) -> prometheus::Result<Self> {
        Ok(Self {
            store,
            descs: descs()?,
        })
    }
}

/// The labels a field's series carry: `partition`, then its extra label if any.
fn label_names(extra: Option<(&'static str, &'static str)>) -> Vec<&'static str> {
    let mut labels = vec!["partition"];
    labels.extend(extra.map(|(label, _)| label));
    labels
}

/// One descriptor per metric name, declaring every label its series carry: a
/// registry and its consumers take the descriptor as the truth about a family.
fn descs() -> prometheus::Result<Vec<Desc>> {
    let mut descs: Vec<Desc> = Vec::new();
    for (name, help, _, extra, _) in FIELDS {
        let fq_name = format!("rustkv_{name}");
        if descs.iter().any(|desc| desc.fq_name == fq_name) {
            continue; // the fields of one family share name, help and label names
        }
        let labels = label_names(extra).into_iter().map(String::from).collect();
        descs.push(Desc::new(fq_name, help.into(), labels, Default::default())?);
    }
    Ok(descs)
}

/// The store's figures as metric families, one per name, one series per partition
/// (and extra label value).
fn families(stats: &StoreStats) -> Vec<MetricFamily> {
    let mut families: Vec<MetricFamily> = Vec::new();
    for (name, help, counter, extra, read) in FIELDS {
        let labels = label_names(extra);
        let opts = Opts::new(name, help).namespace("rustkv");
        let family = if counter {
            let vec = IntCounterVec::new(opts, &labels).expect("valid metric");
            for (index, partition) in stats.partitions.iter().enumerate() {
                let index = index.to_string();
                let mut values = vec![index.as_str()];
                values.extend(extra.map(|(_, value)| value));
                vec.with_label_values(&values).inc_by(read(partition));
            }
            vec.collect()
        } else {
            let vec = prometheus::IntGaugeVec::new(opts, &labels).expect("valid metric");
            for (index, partition) in stats.partitions.iter().enumerate() {
                vec.with_label_values(&[index.to_string().as_str()])
                    .set(read(partition) as i64);
            }
            vec.collect()
        };
        for family in family {
            match families
                .iter_mut()
                .find(|known| known.name() == family.name())
            {
                Some(known) => known
                    .mut_metric()
                    .extend(family.get_metric().iter().cloned()),
                None => families.push(family),
            }
        }
    }
    families
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        families(&self.store.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression test: the descriptors declared only `partition` while the
    /// evictions and expirations series carry `cause` and `kind` too.
    #[test]
    fn descriptors_declare_what_is_collected() {
        let descs = descs().unwrap();
        let stats = StoreStats {
            total: PartitionStats::default(),
            partitions: vec![PartitionStats::default(); 2],
        };
        let families = families(&stats);
        assert_eq!(families.len(), descs.len(), "one descriptor per family");
        for family in &families {
            let desc = descs
                .iter()
                .find(|desc| desc.fq_name == family.name())
                .unwrap_or_else(|| panic!("{} has no descriptor", family.name()));
            assert_eq!(desc.help, family.help(), "{}", family.name());
            let mut declared = desc.variable_labels.clone();
            declared.sort();
            for metric in family.get_metric() {
                let mut carried: Vec<String> = metric
                    .get_label()
                    .iter()
                    .map(|label| label.name().to_owned())
                    .collect();
                carried.sort();
                assert_eq!(carried, declared, "{}", family.name());
            }
        }
    }
}

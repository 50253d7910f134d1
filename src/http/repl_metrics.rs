//! `/metrics` for replication: the role, the position, lag, connected replicas,
//! and what the streams did. Read from `Replication` at scrape time.

use std::sync::Arc;

use prometheus::{
    Gauge,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use super::fields::{self, Field};
use crate::replication::{Replication, status::ReplicationStatus};

pub struct ReplicationCollector {
    replication: Arc<Replication>,
    descs: Vec<Desc>,
}

/// What one scrape reads: the status and the counters, once.
struct Figures {
    status: ReplicationStatus,
    counts: [u64; 6],
}

const FIELDS: [Field<Figures>; 13] = [
    (
        "replication_is_replica",
        "1 on a replica (follows a primary, refuses writes), 0 on a primary",
        false,
        |f| u64::from(f.status.role == "replica"),
    ),
    (
        "replication_position",
        "Changes (records) this node holds of its replication history",
        false,
        |f| f.status.position,
    ),
    (
        "replication_backlog_bytes",
        "Bytes of recent changes kept for replicas to resume from",
        false,
        |f| f.status.backlog_bytes,
    ),
    (
        "replication_lag_records",
        "Records the primary has that this replica has not applied",
        false,
        |f| f.status.lag.records,
    ),
    (
        "replication_lag_bytes",
        "Bytes of those records",
        false,
        |f| f.status.lag.bytes,
    ),
    (
        "replication_connected_replicas",
        "Replicas streaming from this node",
        false,
        |f| f.status.replicas.len() as u64,
    ),
    (
        "replication_replicas_lag_records_max",
        "Records the furthest-behind connected replica has not been sent",
        false,
        |f| {
            f.status
                .replicas
                .iter()
                .map(|r| r.lag_records)
                .max()
                .unwrap_or(0)
        },
    ),
    (
        "replication_full_syncs_total",
        "Full copies this node served to replicas",
        true,
        |f| f.counts[0],
    ),
    (
        "replication_partial_syncs_total",
        "Replica connections this node resumed from its backlog",
        true,
        |f| f.counts[1],
    ),
    (
        "replication_replicas_dropped_total",
        "Replicas disconnected because they fell behind the backlog",
        true,
        |f| f.counts[2],
    ),
    (
        "replication_full_copies_total",
        "Full copies this node took from its primary",
        true,
        |f| f.counts[3],
    ),
    (
        "replication_resumes_total",
        "Times this node resumed from its primary's backlog",
        true,
        |f| f.counts[4],
    ),
    (
        "replication_applied_records_total",
        "Records this node applied from its primary",
        true,
        |f| f.counts[5],
    ),
];

const LAG_SECONDS: (&str, &str) = (
    "rustkv_replication_lag_seconds",
    "Seconds since this replica last held everything its primary had told it of",
);

impl ReplicationCollector {
    pub fn new(replication: Arc<Replication>) -> prometheus::Result<Self> {
        let mut descs = fields::descs(&FIELDS)?;
        descs.push(Desc::new(
            LAG_SECONDS.0.into(),
            LAG_SECONDS.1.into(),
            vec![],
            Default::default(),
        )?);
        Ok(Self { replication, descs })
    }
}

impl Collector for ReplicationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let c = &self.replication.counters;
        let figures = Figures {
            status: self.replication.status(),
            counts: [
                c.full_syncs.get(),
                c.partial_syncs.get(),
                c.dropped_behind.get(),
                c.full_copies.get(),
                c.resumes.get(),
                c.applied.get(),
            ],
        };
        let mut families = fields::collect(&FIELDS, &figures);
        let lag = Gauge::new(LAG_SECONDS.0, LAG_SECONDS.1).expect("valid metric");
        lag.set(figures.status.lag.seconds);
        families.extend(lag.collect());
        families
    }
}

//! What a node reports about replication: the body of `GET /v1/replication`, and
//! the figures `/metrics` exports.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::Replication;

/// The body of `GET /v1/replication`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct ReplicationStatus {
    /// `primary` (takes writes) or `replica` (follows `primary`, refuses writes).
    #[schema(example = "primary")]
    pub role: &'static str,
    /// The primary this node follows (a replica only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The id of the history this node holds (a replica's is its primary's).
    pub replication_id: String,
    /// Changes in that history this node holds: its records and their bytes.
    pub position: u64,
    pub position_bytes: u64,
    /// The oldest position a replica may resume from without a full copy.
    pub backlog_first_position: u64,
    /// Bytes of changes held for replicas to resume from.
    pub backlog_bytes: u64,
    /// Whether this node records its changes for replicas (on once it has served one).
    pub recording: bool,
    /// A primary that takes no writes until a replica connects or it is promoted
    /// (`[replication] fence_on_start`).
    pub fenced: bool,
    /// A replica's connection: `connecting`, `full_copy` or `streaming`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<&'static str>,
    /// Why the last connection to the primary failed (a replica only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// How far behind its primary a replica is (zeros on a primary).
    pub lag: Lag,
    /// The replicas connected to this node.
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct Lag {
    /// Records the primary had, at its last ping, that this replica has not applied.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Seconds since this replica last held everything its primary had told it of
    /// (0 when caught up).
    pub seconds: f64,
    /// Seconds since the primary was last heard from (absent before it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard_seconds_ago: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // exactly these fields: additionalProperties false
pub struct ReplicaStatus {
    /// The replica's address as this node sees it.
    pub peer: String,
    /// Whether its connection started with a full copy (else it resumed).
    pub full_copy: bool,
    /// The position sent to it.
    pub position: u64,
    /// Records and bytes it has not been sent yet.
    pub lag_records: u64,
    pub lag_bytes: u64,
    pub connected_seconds: f64,
}

impl Replication {
    pub fn status(&self) -> ReplicationStatus {
        let (head, tail, held) = {
            let backlog = self.feed.lock();
            (backlog.head(), backlog.tail(), backlog.held())
        };
        let (primary, id) = {
            let role = self.role();
            (role.primary.clone(), role.id.clone())
        };
        let link = self.link.lock().expect("not poisoned");
        let lag = match &primary {
            Some(_) => Lag {
                records: link.primary_head.records.saturating_sub(head.records),
                bytes: link.primary_head.bytes.saturating_sub(head.bytes),
                seconds: match (link.primary_head.records > head.records, link.caught_up) {
                    (false, _) => 0.0,
                    (true, Some(at)) => at.elapsed().as_secs_f64(),
                    (true, None) => link.heard.map_or(0.0, |at| at.elapsed().as_secs_f64()),
                },
                heard_seconds_ago: link.heard.map(|at| at.elapsed().as_secs_f64()),
            },
            None => Lag::default(),
        };
        let replicas = self.links.lock().expect("not poisoned");
        let replicas = replicas
            .iter()
            .map(|replica| {
                let sent = *replica.sent.lock().expect("not poisoned");
                ReplicaStatus {
                    peer: replica.peer.clone(),
                    full_copy: replica.full,
                    position: sent.records,
                    lag_records: head.records.saturating_sub(sent.records),
                    lag_bytes: head.bytes.saturating_sub(sent.bytes),
                    connected_seconds: replica.since.elapsed().as_secs_f64(),
                }
            })
            .collect();
        ReplicationStatus {
            role: if primary.is_some() {
                "replica"
            } else {
                "primary"
            },
            link: primary.as_ref().map(|_| link.state),
            last_error: primary.as_ref().and(link.last_error.clone()),
            primary,
            replication_id: id,
            position: head.records,
            position_bytes: head.bytes,
            backlog_first_position: tail.records,
            backlog_bytes: held as u64,
            recording: self.feed.tapping(),
            fenced: self.store.replicated().is_some_and(|r| r.fence().is_some()),
            lag,
            replicas,
        }
    }

    /// The highest version applied from a primary.
    pub fn max_version(&self) -> u64 {
        self.max_version.load(Relaxed)
    }
}

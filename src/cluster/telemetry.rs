//! Cluster mode's metrics and its `/status` detail (component `cluster`).

use serde::Serialize;

/// Events published to the stream and acknowledged by it.
pub const PUBLISHED_TOTAL: &str = "cxrelay_cluster_published_total";
/// Events the stream dropped as duplicates of ones it holds (by message id).
pub const DUPLICATES_TOTAL: &str = "cxrelay_cluster_duplicates_total";
/// Events this node received from the stream again (not acknowledged in
/// time, or held by a node that died).
pub const REDELIVERIES_TOTAL: &str = "cxrelay_cluster_redeliveries_total";
/// Events waiting in a partition: not yet delivered, plus delivered and
/// not yet acknowledged (label `partition`).
pub const LAG: &str = "cxrelay_cluster_lag";
/// Live members of the cluster.
pub const NODES: &str = "cxrelay_cluster_nodes";
/// Partitions this node processes.
pub const PARTITIONS_OWNED: &str = "cxrelay_cluster_partitions_owned";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    PUBLISHED_TOTAL,
    DUPLICATES_TOTAL,
    REDELIVERIES_TOTAL,
    LAG,
    NODES,
    PARTITIONS_OWNED,
];

/// Exposes this node's counters at 0 from its start, so that `rate()` sees
/// the first event.
pub fn register() {
    for name in [PUBLISHED_TOTAL, DUPLICATES_TOTAL, REDELIVERIES_TOTAL] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!(PARTITIONS_OWNED).set(0.0);
}

/// A batch was acknowledged by the stream.
pub struct Published {
    /// Events stored.
    pub accepted: usize,
    /// Events dropped as duplicates.
    pub duplicates: usize,
}

impl Published {
    /// Counts it.
    pub fn emit(self) {
        metrics::counter!(PUBLISHED_TOTAL).increment(self.accepted as u64);
        metrics::counter!(DUPLICATES_TOTAL).increment(self.duplicates as u64);
    }
}

/// A member as `/status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its name.
    pub node: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it started (ms since the epoch).
    pub started_ms: i64,
}

/// A partition as `/status` shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PartitionStatus {
    /// Its number.
    pub partition: u32,
    /// The node it is assigned to.
    pub node: Option<String>,
    /// Events not yet delivered.
    pub pending: u64,
    /// Events delivered, not yet acknowledged.
    pub ack_pending: u64,
    /// Events delivered more than once, pending now.
    pub redelivered: u64,
}

/// A source lease as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseStatus {
    /// The source.
    pub source: String,
    /// The node holding it (none: free, a standby takes it).
    pub owner: Option<String>,
}

/// The `cluster` component's `/status` detail.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ClusterStatus {
    /// This node.
    pub node: String,
    /// Its roles.
    pub roles: Vec<&'static str>,
    /// The servers (no credentials).
    pub servers: Vec<String>,
    /// The stream.
    pub stream: String,
    /// Live members.
    pub nodes: Vec<NodeRecord>,
    /// Every partition: its node and lag.
    pub partitions: Vec<PartitionStatus>,
    /// Partitions this node processes.
    pub owned: Vec<u32>,
    /// Leases of the configured sources.
    pub leases: Vec<LeaseStatus>,
    /// Events waiting in all partitions.
    pub lag: u64,
    /// Events this node received again.
    pub redeliveries: u64,
    /// Events this node routed from the stream.
    pub consumed: u64,
    /// Events this node acknowledged to the stream.
    pub acknowledged: u64,
}

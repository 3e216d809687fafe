//! Cluster mode: several cxrelay processes share the work through NATS
//! JetStream instead of the embedded journal (`[cluster]`).
//!
//! - **Ingest** nodes publish every event to the stream, on the subject of
//!   its partition (a stable hash of its key), with its idempotency key as
//!   `Nats-Msg-Id`, and acknowledge upstream (webhook 202, checkpoint) only
//!   once the stream has acknowledged it ([`ClusterIngest`]).
//! - **Processing** nodes each pull the partitions assigned to them (the
//!   live members, sorted, share the partitions evenly: [`Membership`])
//!   from one durable consumer per partition whose priority group pins one
//!   client at a time, so a partition is never processed by two nodes at
//!   once; an event is acknowledged once every durable listener committed
//!   it ([`ProcessNode`]).
//! - **Sources** that pull from Genesys run only on the node holding their
//!   lease in a key-value bucket ([`lease`]); their checkpoints live in
//!   another, so whichever node takes a lease over resumes where the last
//!   owner stopped.

pub mod config;
pub mod dead_letters;
pub mod ingest;
pub mod lease;
pub mod membership;
pub mod nats;
pub mod partition;
pub mod process_node;
pub mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::ServerAddr;

pub use config::{ClusterConfig, Role};
pub use ingest::ClusterIngest;
pub use membership::Membership;
pub use process_node::ProcessNode;

use crate::config::Secrets;
use crate::nats_client::NatsAuth;

/// Why cluster mode could not start or carry on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// NATS refused or could not be reached.
    #[error("NATS: {0}")]
    Nats(String),
}

/// `[cluster]` as it runs: checked, secrets resolved.
#[derive(Clone)]
pub struct ClusterSettings {
    /// This node's name.
    pub node: String,
    /// What it does.
    pub roles: Vec<Role>,
    /// The servers.
    pub servers: Vec<ServerAddr>,
    /// The servers as shown.
    pub shown: Vec<String>,
    /// The event stream.
    pub stream: String,
    /// Copies of the stream and buckets.
    pub replicas: usize,
    /// Partitions.
    pub partitions: u32,
    /// Credentials.
    pub auth: NatsAuth,
    /// Require TLS.
    pub tls: bool,
    /// Extra CA certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// Messages a partition hands out before acknowledgements.
    pub max_ack_pending: usize,
    /// Redelivery after this without acknowledgement.
    pub ack_wait: Duration,
    /// A partition moves after its node stopped pulling this long.
    pub takeover_after: Duration,
    /// A member is gone after this without a heartbeat.
    pub node_ttl: Duration,
    /// A lease is gone after this without a renewal.
    pub lease_ttl: Duration,
    /// The stream's bound.
    pub max_bytes: u64,
    /// Longest wait for NATS.
    pub timeout: Duration,
    /// How long the stream remembers message ids (the idempotency window).
    pub duplicate_window: Duration,
}

impl ClusterSettings {
    /// The settings of a checked `[cluster]`; `idempotency_window` is
    /// `[service]`'s, which the stream's duplicate window follows.
    pub fn new(c: &ClusterConfig, secrets: &Secrets, idempotency_window: Duration) -> Self {
        // The loader refused a variable that is not set; an embedder that
        // skipped it connects without credentials and is told so by NATS.
        let auth = c
            .keys()
            .auth(|k| secrets.component("cluster", k).cloned())
            .unwrap_or(NatsAuth::None);
        ClusterSettings {
            node: c.node_name(),
            roles: c.roles.clone(),
            // Checked when the config was loaded.
            servers: c.nats_urls.iter().filter_map(|u| config::check_url(u).ok()).collect(),
            shown: c.nats_urls.iter().map(|u| crate::urls::redacted(u)).collect(),
            stream: c.stream.clone(),
            replicas: c.replicas,
            partitions: c.partitions,
            auth,
            tls: c.tls,
            tls_ca_file: c.tls_ca_file.clone(),
            max_ack_pending: c.max_ack_pending,
            ack_wait: c.ack_wait,
            takeover_after: c.takeover_after,
            node_ttl: c.node_ttl,
            lease_ttl: c.lease_ttl,
            max_bytes: c.max_bytes,
            timeout: c.timeout,
            duplicate_window: idempotency_window,
        }
    }

    /// Whether this node has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

//! What a listener shows in `/status`: its configuration (sink kind, queue
//! policy) and what its sink actor has done. Its queue's metrics are the
//! router's (see `src/http/metrics_export.rs`).

use serde::Serialize;

/// How a listener is set up, published when it is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ListenerStatus {
    /// The sink kind (`file`, `http`, ...).
    pub sink: &'static str,
    /// The queue's policy when full (`block`, `drop_newest`, `drop_oldest`).
    pub when_full: &'static str,
}

/// A sink actor's `/status` details, published after each commit attempt.
#[derive(Debug, Clone, Serialize)]
pub struct SinkStatus {
    /// Events written durably and acknowledged by this instance.
    pub committed_events: u64,
    /// Successful commits.
    pub commits: u64,
    /// Failed commit attempts.
    pub commit_failures: u64,
    /// Events given up on and sent to dead letters.
    pub dead_lettered: u64,
    /// Events a transform refused (sent to dead letters).
    pub transform_rejected: u64,
    /// Events held, not yet acknowledged.
    pub pending: usize,
    /// What the writer says of itself (file, position, endpoint...), while
    /// there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer: Option<serde_json::Value>,
}

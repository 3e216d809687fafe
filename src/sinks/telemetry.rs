//! What a listener shows in `/status`: its configuration (sink kind, queue
//! policy) and what its sink actor has done; and the metrics every sink
//! actor records, whatever its kind: latencies, errors, retries. Its
//! queue's counters are the router's (see `src/http/metrics_export.rs`).

use std::time::Duration;

use metrics::{counter, histogram, Counter, Histogram};
use serde::Serialize;

/// Seconds from an event's receipt to its sink's durable commit.
pub const END_TO_END_LATENCY_SECONDS: &str = "cxrelay_end_to_end_latency_seconds";
/// Seconds a sink's write attempt took, by outcome.
pub const SINK_COMMIT_SECONDS: &str = "cxrelay_sink_commit_seconds";
/// Seconds the oldest event of a batch waited in a listener's queue
/// before its sink took the batch.
pub const LISTENER_QUEUE_WAIT_SECONDS: &str = "cxrelay_listener_queue_wait_seconds";
/// Failed write attempts.
pub const SINK_ERRORS_TOTAL: &str = "cxrelay_sink_errors_total";
/// Write attempts made again after a failure.
pub const SINK_RETRIES_TOTAL: &str = "cxrelay_sink_retries_total";
/// Events written durably and acknowledged.
pub const SINK_COMMITTED_EVENTS_TOTAL: &str = "cxrelay_sink_committed_events_total";
/// Events a listener moved to dead letters (its sink gave up on them, or a
/// transform refused them).
pub const SINK_DEAD_LETTERS_TOTAL: &str = "cxrelay_sink_dead_letters_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    END_TO_END_LATENCY_SECONDS,
    SINK_COMMIT_SECONDS,
    LISTENER_QUEUE_WAIT_SECONDS,
    SINK_ERRORS_TOTAL,
    SINK_RETRIES_TOTAL,
    SINK_COMMITTED_EVENTS_TOTAL,
    SINK_DEAD_LETTERS_TOTAL,
];

/// Bucket bounds of the latency histograms, in seconds: from a few
/// milliseconds (a group commit, an fsync) to minutes (a sink retrying, a
/// replay after a restart).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Bucket bounds of the commit-duration histogram, in seconds: an fsync or
/// an HTTP round trip, up to the longest timeout a sink may have.
pub const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A listener's metric handles, registered once when its sink actor is
/// built, so a batch costs a few atomic updates and no lookups.
#[derive(Clone)]
pub struct SinkMetrics {
    end_to_end: Histogram,
    commit_ok: Histogram,
    commit_error: Histogram,
    queue_wait: Histogram,
    errors: Counter,
    retries: Counter,
    committed: Counter,
    dead_letters: Counter,
}

impl SinkMetrics {
    /// The handles of listener `listener`.
    pub fn new(listener: &str) -> Self {
        let l = listener.to_string();
        SinkMetrics {
            end_to_end: histogram!(END_TO_END_LATENCY_SECONDS, "listener" => l.clone()),
            commit_ok: histogram!(SINK_COMMIT_SECONDS, "listener" => l.clone(), "outcome" => "ok"),
            commit_error: histogram!(SINK_COMMIT_SECONDS, "listener" => l.clone(), "outcome" => "error"),
            queue_wait: histogram!(LISTENER_QUEUE_WAIT_SECONDS, "listener" => l.clone()),
            errors: counter!(SINK_ERRORS_TOTAL, "listener" => l.clone()),
            retries: counter!(SINK_RETRIES_TOTAL, "listener" => l.clone()),
            committed: counter!(SINK_COMMITTED_EVENTS_TOTAL, "listener" => l.clone()),
            dead_letters: counter!(SINK_DEAD_LETTERS_TOTAL, "listener" => l),
        }
    }

    /// The sink took a batch whose oldest event waited `waited` in the
    /// queue.
    pub fn batch_taken(&self, waited: Duration) {
        self.queue_wait.record(waited.as_secs_f64());
    }

    /// A write attempt finished after `took`.
    pub fn attempt_finished(&self, took: Duration, ok: bool) {
        let h = if ok { &self.commit_ok } else { &self.commit_error };
        h.record(took.as_secs_f64());
        if !ok {
            self.errors.increment(1);
        }
    }

    /// A batch is durable: counts its events and records two end-to-end
    /// samples, its oldest and its newest event's age, which bound every
    /// other event's (one pass over the batch; no per-event record).
    pub fn batch_committed(&self, received_at_ms: impl Iterator<Item = i64>, now_ms: i64) {
        let mut n = 0u64;
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for at in received_at_ms {
            n += 1;
            oldest = oldest.min(at);
            newest = newest.max(at);
        }
        if n == 0 {
            return;
        }
        self.committed.increment(n);
        // A clock stepped back makes no negative latency.
        let age = |at: i64| (now_ms.saturating_sub(at)).max(0) as f64 / 1000.0;
        self.end_to_end.record(age(oldest));
        if n > 1 {
            self.end_to_end.record(age(newest));
        }
    }

    /// A failed batch is tried again.
    pub fn retrying(&self) {
        self.retries.increment(1);
    }

    /// `n` events went to dead letters.
    pub fn dead_lettered(&self, n: usize) {
        self.dead_letters.increment(n as u64);
    }
}

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

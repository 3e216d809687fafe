//! What a nats sink reports: its metrics and its `/status` details.

use serde::Serialize;

/// Events stored by the stream (acknowledged publishes).
pub const PUBLISHED_TOTAL: &str = "cxrelay_nats_published_total";
/// Publishes the stream acknowledged as duplicates of a message it holds
/// (same `Nats-Msg-Id` within its duplicate window): retries after a lost
/// acknowledgement, not stored twice.
pub const DUPLICATES_TOTAL: &str = "cxrelay_nats_duplicates_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[PUBLISHED_TOTAL, DUPLICATES_TOTAL];

/// A batch was acknowledged by the stream.
#[derive(Debug)]
pub struct BatchPublished<'a> {
    /// The listener.
    pub listener: &'a str,
    /// Messages stored.
    pub stored: u64,
    /// Messages the stream already had.
    pub duplicates: u64,
}

impl BatchPublished<'_> {
    /// Counts it (no log: one per batch).
    pub fn emit(self) {
        metrics::counter!(PUBLISHED_TOTAL, "listener" => self.listener.to_string()).increment(self.stored);
        if self.duplicates > 0 {
            metrics::counter!(DUPLICATES_TOTAL, "listener" => self.listener.to_string()).increment(self.duplicates);
        }
    }
}

/// The writer's part of the listener's `/status` (never a credential).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NatsStatus {
    /// The servers, without credentials.
    pub servers: Vec<String>,
    /// `connected`, `disconnected`, `pending` or `not connected` (none yet).
    pub connection: &'static str,
    /// The stream checked or created, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Messages stored by this writer.
    pub published: u64,
    /// Publishes acknowledged as duplicates.
    pub duplicates: u64,
}

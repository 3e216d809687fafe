//! Everything the store reports: its dead-letter metric and the `/status`
//! details of its two actors (the store actor's housekeeping and the
//! journal writer's commits share the `store` component).

use std::collections::BTreeMap;

use serde::Serialize;

/// Dead letters stored, whoever sent them.
pub const DEAD_LETTERS_TOTAL: &str = "cxrelay_dead_letters_total";

/// Dead letters refused because their component keeps as many as it may.
pub const DEAD_LETTERS_DROPPED_TOTAL: &str = "cxrelay_dead_letters_dropped_total";
/// Bytes the journal holds.
pub const JOURNAL_BACKLOG_BYTES: &str = "cxrelay_journal_backlog_bytes";
/// Events the journal holds.
pub const JOURNAL_BACKLOG_EVENTS: &str = "cxrelay_journal_backlog_events";
/// Age of the oldest event the journal holds.
pub const JOURNAL_OLDEST_AGE_SECONDS: &str = "cxrelay_journal_oldest_age_seconds";
/// The journal's bound.
pub const JOURNAL_BOUND_BYTES: &str = "cxrelay_journal_bound_bytes";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    DEAD_LETTERS_TOTAL,
    DEAD_LETTERS_DROPPED_TOTAL,
    JOURNAL_BACKLOG_BYTES,
    JOURNAL_BACKLOG_EVENTS,
    JOURNAL_OLDEST_AGE_SECONDS,
    JOURNAL_BOUND_BYTES,
];

/// A dead letter was refused: its component keeps `cap` already.
#[derive(Debug)]
pub struct DeadLetterRefused<'a> {
    /// The component that sent it.
    pub component: &'a str,
    /// Dead letters a component may keep.
    pub cap: u64,
}

impl DeadLetterRefused<'_> {
    /// Counts it and says so.
    pub fn emit(self) {
        metrics::counter!(DEAD_LETTERS_DROPPED_TOTAL, "component" => self.component.to_string()).increment(1);
        tracing::warn!(component = %self.component, cap = self.cap,
            "dead letter dropped: the component keeps as many as it may");
    }
}

/// The journal's backlog against its bound, measured on the store's tick.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct JournalBacklog {
    /// Bytes held.
    pub journal_bytes: u64,
    /// The bound.
    pub max_journal_bytes: u64,
    /// Events held.
    pub journal_events: u64,
    /// Age of the oldest event held, in seconds.
    pub journal_oldest_age_s: f64,
}

impl JournalBacklog {
    /// Sets the gauges.
    pub fn emit(self) {
        metrics::gauge!(JOURNAL_BACKLOG_BYTES).set(self.journal_bytes as f64);
        metrics::gauge!(JOURNAL_BACKLOG_EVENTS).set(self.journal_events as f64);
        metrics::gauge!(JOURNAL_OLDEST_AGE_SECONDS).set(self.journal_oldest_age_s);
        metrics::gauge!(JOURNAL_BOUND_BYTES).set(self.max_journal_bytes as f64);
    }
}

/// Dead letters were stored (their senders log them).
#[derive(Debug)]
pub struct DeadLettersStored {
    /// How many.
    pub count: usize,
}

impl DeadLettersStored {
    /// Counts them.
    pub fn emit(self) {
        metrics::counter!(DEAD_LETTERS_TOTAL).increment(self.count as u64);
    }
}

/// The store actor's `/status` details, published on its tick (100 ms).
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus<'a> {
    /// The store's file.
    pub path: &'a str,
    /// Journal entries held, at the last look that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_entries: Option<u64>,
    /// The next journal position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
    /// Dead letters held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<u64>,
    /// Journal entries forgotten (every durable listener had them).
    pub truncated: u64,
    /// The highest position whose routing has completed.
    pub routed_upto: u64,
    /// Idempotency keys in memory.
    pub idempotency_cached_keys: usize,
    /// Each durable listener's saved position.
    pub acked_positions: BTreeMap<&'a str, u64>,
    /// The journal against its bound.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<JournalBacklog>,
}

/// The journal writer's `/status` details, published after each group
/// commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalStatus {
    /// Group commits.
    pub commits: u64,
    /// Events journaled.
    pub journaled_events: u64,
    /// Of the commits, those made on the thread that submitted them (an
    /// HTTP worker, while commits are quick) rather than the journal
    /// writer's.
    pub commits_in_place: u64,
    /// How long a group commit (write and sync) takes, recently, in µs.
    pub commit_us: u64,
}

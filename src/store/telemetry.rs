//! Everything the store reports: its dead-letter metric and the `/status`
//! details of its two actors (the store actor's housekeeping and the
//! journal writer's commits share the `store` component).

use std::collections::BTreeMap;

use serde::Serialize;

/// Dead letters stored, whoever sent them.
pub const DEAD_LETTERS_TOTAL: &str = "cxrelay_dead_letters_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[DEAD_LETTERS_TOTAL];

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
}

/// The journal writer's `/status` details, published after each group
/// commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JournalStatus {
    /// Group commits.
    pub commits: u64,
    /// Events journaled.
    pub journaled_events: u64,
}

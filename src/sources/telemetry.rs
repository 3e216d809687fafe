//! Telemetry every source shares: its kind in `/status`, and what the bulk
//! sources' [`Delivery`](super::delivery::Delivery) does with records that
//! cannot become events. Each kind's own metrics and status live in its
//! folder's `telemetry.rs`.

use serde::Serialize;

/// Records that went to dead letters (or would have, with the journal off).
pub const SOURCE_DEAD_LETTERS_TOTAL: &str = "cxrelay_source_dead_letters_total";
/// Records dropped, by reason (`no_dead_letter_store`: the journal is off).
pub const SOURCE_DROPPED_TOTAL: &str = "cxrelay_source_dropped_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[SOURCE_DEAD_LETTERS_TOTAL, SOURCE_DROPPED_TOTAL];

/// The part of every source's `/status` details that names its kind
/// (`generator`, `analytics_job`, ...; its component kind is `source`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SourceKindStatus {
    /// The `[[source]]` kind.
    pub kind: &'static str,
}

/// A bulk source's way out is made: its dead-letter and drop counters are
/// written at 0, so each series exists from the start and the first
/// increment shows in `rate()` and `increase()`.
#[derive(Debug)]
pub struct DeliveryStarted<'a> {
    /// The source.
    pub source: &'a str,
}

impl DeliveryStarted<'_> {
    /// Registers the counters.
    pub fn emit(self) {
        let source = self.source.to_string();
        metrics::counter!(SOURCE_DEAD_LETTERS_TOTAL, "source" => source.clone()).increment(0);
        metrics::counter!(SOURCE_DROPPED_TOTAL, "source" => source, "reason" => "no_dead_letter_store").increment(0);
    }
}

/// Records of a source are about to be kept in dead letters.
#[derive(Debug)]
pub struct DeadLettersKept<'a> {
    /// The source.
    pub source: &'a str,
    /// How many.
    pub records: usize,
    /// The first one's error.
    pub first_error: &'a str,
    /// Where the first one was in its input.
    pub first_position: Option<&'a str>,
}

impl DeadLettersKept<'_> {
    /// Counts them and says so in the log.
    pub fn emit(self) {
        metrics::counter!(SOURCE_DEAD_LETTERS_TOTAL, "source" => self.source.to_string())
            .increment(self.records as u64);
        tracing::warn!(source = %self.source, records = self.records, first = %self.first_error,
            position = ?self.first_position, "records go to dead letters");
    }
}

/// Records of a source could not become events and there is nowhere to
/// keep them (the journal is off): they are dropped.
#[derive(Debug)]
pub struct DeadLettersDropped<'a> {
    /// The source.
    pub source: &'a str,
    /// How many.
    pub records: usize,
    /// The first one's error.
    pub first_error: &'a str,
}

impl DeadLettersDropped<'_> {
    /// Counts them as dead letters and as dropped, and logs an error.
    pub fn emit(self) {
        let n = self.records as u64;
        metrics::counter!(SOURCE_DEAD_LETTERS_TOTAL, "source" => self.source.to_string()).increment(n);
        metrics::counter!(SOURCE_DROPPED_TOTAL, "source" => self.source.to_string(), "reason" => "no_dead_letter_store")
            .increment(n);
        tracing::error!(source = %self.source, records = self.records, first = %self.first_error,
            "records could not become events and the journal is off: they are dropped");
    }
}

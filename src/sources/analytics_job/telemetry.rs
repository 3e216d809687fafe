//! Everything an analytics job source reports: its metrics (each event
//! below counts and, where an operator wants to know, logs together) and
//! its `/status` details.

use serde::Serialize;

use super::AnalyticsJobSettings;
use crate::genesys::interval::{iso_ms, Interval};

/// Result pages committed.
pub const PAGES_TOTAL: &str = "cxrelay_analytics_pages_total";
/// Records committed as events.
pub const RECORDS_TOTAL: &str = "cxrelay_analytics_records_total";
/// Records dropped as already delivered (by their idempotency keys).
pub const DUPLICATES_TOTAL: &str = "cxrelay_analytics_duplicates_total";
/// Records not delivered in their window: still open at its end (a later
/// window delivers them once they end).
pub const HELD_OPEN_TOTAL: &str = "cxrelay_analytics_held_open_total";
/// Job submissions whose answer never came (the job may exist; it cannot
/// be looked up, so the window is submitted again).
pub const UNANSWERED_SUBMISSIONS_TOTAL: &str = "cxrelay_analytics_unanswered_submissions_total";
/// Jobs submitted again for the rest of a window, by reason.
pub const RESUBMISSIONS_TOTAL: &str = "cxrelay_analytics_resubmissions_total";
/// Jobs submitted.
pub const JOBS_SUBMITTED_TOTAL: &str = "cxrelay_analytics_jobs_submitted_total";
/// Jobs that ended FAILED.
pub const JOBS_FAILED_TOTAL: &str = "cxrelay_analytics_jobs_failed_total";
/// The end of the last window delivered (seconds since the epoch).
pub const DONE_UNTIL_SECONDS: &str = "cxrelay_analytics_done_until_seconds";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    PAGES_TOTAL,
    RECORDS_TOTAL,
    DUPLICATES_TOTAL,
    HELD_OPEN_TOTAL,
    UNANSWERED_SUBMISSIONS_TOTAL,
    RESUBMISSIONS_TOTAL,
    JOBS_SUBMITTED_TOTAL,
    JOBS_FAILED_TOTAL,
    DONE_UNTIL_SECONDS,
];

/// An analytics job source starts: every counter it has is written at 0,
/// so each series exists from the start and the first increment shows in
/// `rate()` and `increase()` (a series that appears at 1 hides it).
#[derive(Debug)]
pub struct SourceStarted<'a> {
    /// The source.
    pub source: &'a str,
}

impl SourceStarted<'_> {
    /// Registers the counters.
    pub fn emit(self) {
        let source = self.source.to_string();
        for name in [
            PAGES_TOTAL,
            RECORDS_TOTAL,
            DUPLICATES_TOTAL,
            HELD_OPEN_TOTAL,
            UNANSWERED_SUBMISSIONS_TOTAL,
            JOBS_SUBMITTED_TOTAL,
            JOBS_FAILED_TOTAL,
        ] {
            metrics::counter!(name, "source" => source.clone()).increment(0);
        }
        for reason in [ResubmitReason::StaleCursor, ResubmitReason::Gone] {
            metrics::counter!(RESUBMISSIONS_TOTAL, "source" => source.clone(), "reason" => reason.as_str())
                .increment(0);
        }
    }
}

/// A details job was submitted.
#[derive(Debug)]
pub struct JobSubmitted<'a> {
    /// The source.
    pub source: &'a str,
    /// The job's id.
    pub job: &'a str,
    /// What it covers.
    pub interval: Interval,
}

impl JobSubmitted<'_> {
    /// Counts and logs it.
    pub fn emit(self) {
        metrics::counter!(JOBS_SUBMITTED_TOTAL, "source" => self.source.to_string()).increment(1);
        tracing::info!(source = %self.source, job = %self.job, interval = %self.interval, "details job submitted");
    }
}

/// A details job ended FAILED.
#[derive(Debug)]
pub struct JobFailed<'a> {
    /// The source.
    pub source: &'a str,
    /// The job's id.
    pub job: &'a str,
    /// The job's error message.
    pub error: &'a str,
    /// FAILED jobs in this window so far, this one included.
    pub attempt: u32,
    /// Whether it is submitted again (else the source fails, and says so).
    pub retrying: bool,
}

impl JobFailed<'_> {
    /// Counts it; logs it when the job is submitted again.
    pub fn emit(self) {
        metrics::counter!(JOBS_FAILED_TOTAL, "source" => self.source.to_string()).increment(1);
        if self.retrying {
            tracing::warn!(source = %self.source, job = %self.job, error = %self.error,
                attempt = self.attempt, "details job FAILED; submitting it again");
        }
    }
}

/// Why the rest of a window goes in a new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResubmitReason {
    /// The cursor was refused while the job is still there.
    StaleCursor,
    /// The job expired, was cancelled or is unknown.
    Gone,
}

impl ResubmitReason {
    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ResubmitReason::StaleCursor => "stale_cursor",
            ResubmitReason::Gone => "gone",
        }
    }
}

/// The rest of a window is submitted again from the high-water mark.
#[derive(Debug)]
pub struct JobResubmitted<'a> {
    /// The source.
    pub source: &'a str,
    /// The job given up on.
    pub job: &'a str,
    /// Why, for the label.
    pub reason: ResubmitReason,
    /// Why, in words, for the log.
    pub why: &'a str,
    /// Where the new job starts (the high-water mark), if anywhere yet.
    pub from_ms: Option<i64>,
    /// Whether a new job follows (else the source gives up on the window).
    pub retrying: bool,
}

impl JobResubmitted<'_> {
    /// Counts it; logs it when a new job follows.
    pub fn emit(self) {
        metrics::counter!(RESUBMISSIONS_TOTAL, "source" => self.source.to_string(), "reason" => self.reason.as_str())
            .increment(1);
        if self.retrying {
            tracing::warn!(source = %self.source, job = %self.job, reason = self.why,
                from = %self.from_ms.map(iso_ms).unwrap_or_default(),
                "resubmitting the rest of the window from the high-water mark");
        }
    }
}

/// A results page is committed with its checkpoint (no log: there are
/// many, and `/status` shows the totals).
#[derive(Debug)]
pub struct PageCommitted<'a> {
    /// The source.
    pub source: &'a str,
    /// Records ingest accepted.
    pub records: usize,
    /// Records it dropped as already delivered.
    pub duplicates: usize,
    /// Records held for a later window (still open).
    pub held_open: usize,
}

impl PageCommitted<'_> {
    /// Counts the page and its records.
    pub fn emit(self) {
        let source = self.source.to_string();
        metrics::counter!(PAGES_TOTAL, "source" => source.clone()).increment(1);
        metrics::counter!(RECORDS_TOTAL, "source" => source.clone()).increment(self.records as u64);
        if self.duplicates > 0 {
            metrics::counter!(DUPLICATES_TOTAL, "source" => source.clone()).increment(self.duplicates as u64);
        }
        if self.held_open > 0 {
            metrics::counter!(HELD_OPEN_TOTAL, "source" => source).increment(self.held_open as u64);
        }
    }
}

/// A job submission went out and its answer never came.
#[derive(Debug)]
pub struct SubmissionUnanswered<'a> {
    /// The source.
    pub source: &'a str,
    /// What it was for.
    pub interval: Interval,
    /// Why no answer came.
    pub error: &'a str,
}

impl SubmissionUnanswered<'_> {
    /// Counts and logs it.
    pub fn emit(self) {
        metrics::counter!(UNANSWERED_SUBMISSIONS_TOTAL, "source" => self.source.to_string()).increment(1);
        tracing::warn!(source = %self.source, interval = %self.interval, error = %self.error,
            "a details job submission went unanswered; the API offers no way to find that job, so the window is submitted again (the lost one expires unused)");
    }
}

/// Everything up to `end_ms` is delivered.
#[derive(Debug)]
pub struct WindowDelivered<'a> {
    /// The source.
    pub source: &'a str,
    /// The window's end (ms since the epoch).
    pub end_ms: i64,
}

impl WindowDelivered<'_> {
    /// Moves the done-until gauge.
    pub fn emit(self) {
        metrics::gauge!(DONE_UNTIL_SECONDS, "source" => self.source.to_string()).set(self.end_ms as f64 / 1000.0);
    }
}

/// An analytics job source's `/status` details (its runner keeps one and
/// publishes it whole after each change: a poll, a page, a phase).
/// Fields without a value yet are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnalyticsJobStatus {
    /// What it fetches (the interval, rolling windows, or gaps).
    pub schedule: String,
    /// What it is doing (`submitting`, `polling`, `paging`, a wait's
    /// reason, `finished`, `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The window being fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Its current job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The job's state at the last poll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    /// Pages committed by this instance.
    pub pages: u64,
    /// Records committed by this instance.
    pub records: u64,
    /// Bytes of the records of the pages committed by this instance (as
    /// received), for rates and progress bars.
    pub bytes: u64,
    /// Records dropped as duplicates by this instance.
    pub duplicates: u64,
    /// Records held for a later window by this instance: still open at
    /// their window's end.
    pub held_open: u64,
    /// Job submissions whose answer never came.
    pub unanswered_submissions: u64,
    /// Records sent to dead letters by this instance.
    pub dead_lettered: u64,
    /// The last page that had dead letters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_dead_letter_page: Option<u64>,
    /// Resubmissions in the current window.
    pub resubmissions: u32,
    /// FAILED jobs in the current window.
    pub job_failures: u32,
    /// The latest `conversationStart` delivered in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_water: Option<String>,
    /// Everything before this is delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_until: Option<String>,
    /// How far the data lake has data (`/jobs/availability`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_available_until: Option<String>,
    /// Backfill: gap windows still to cover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_gaps: Option<usize>,
    /// Whether everything configured is delivered.
    pub finished: bool,
}

impl AnalyticsJobStatus {
    /// The status of a source that has not started its first window.
    pub fn new(settings: &AnalyticsJobSettings) -> Self {
        AnalyticsJobStatus {
            schedule: format!("{:?}", settings.schedule),
            ..AnalyticsJobStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_fresh_status_shows_its_counters_and_leaves_out_what_is_not_known() {
        let mut s = AnalyticsJobStatus {
            schedule: "Gaps".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"schedule": "Gaps", "pages": 0, "records": 0, "bytes": 0, "duplicates": 0, "held_open": 0,
                   "unanswered_submissions": 0, "dead_lettered": 0,
                   "resubmissions": 0, "job_failures": 0, "finished": false})
        );
        s.phase = Some("polling".into());
        s.job_state = Some("RUNNING".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (v["phase"].as_str(), v["job_state"].as_str()),
            (Some("polling"), Some("RUNNING"))
        );
    }

    #[test]
    fn resubmission_reasons_are_the_documented_labels() {
        assert_eq!(ResubmitReason::StaleCursor.as_str(), "stale_cursor");
        assert_eq!(ResubmitReason::Gone.as_str(), "gone");
    }
}

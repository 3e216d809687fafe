//! What an analytics job source commits with every page (atomically with
//! the page's events): where it is in its window, the job and the cursor
//! of the next page, and the high-water mark. A restart resumes exactly
//! there.

use serde::{Deserialize, Serialize};

use crate::sources::checkpoint::JsonCheckpoint;

use crate::genesys::interval::Interval;

/// The job being paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Its id.
    pub id: String,
    /// What it was submitted for.
    pub interval: Interval,
    /// Cursor of the next page to fetch; none before the first page.
    pub cursor: Option<String>,
    /// Pages of this job committed.
    pub pages: u64,
}

/// The saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Everything before this was delivered (ms since the epoch).
    pub done_until: Option<i64>,
    /// The window being fetched.
    pub window: Option<Interval>,
    /// Its job, once submitted.
    pub job: Option<JobProgress>,
    /// The latest `conversationStart` delivered in the window: a
    /// resubmission starts here.
    pub high_water: Option<i64>,
    /// Records delivered in the window.
    pub delivered: u64,
    /// FAILED jobs in the window so far.
    pub failures: u32,
    /// Resubmissions in the window after a stale cursor or a gone job.
    pub resubmissions: u32,
    /// Backfill: gap windows still to cover, sorted and disjoint (the one
    /// being covered is `window`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Interval>,
}

impl Checkpoint {
    /// Starts `window` afresh.
    pub fn begin(&mut self, window: Interval) {
        self.window = Some(window);
        self.job = None;
        self.high_water = None;
        self.delivered = 0;
        self.failures = 0;
        self.resubmissions = 0;
    }

    /// What is left of the window: from the high-water mark (inclusive: a
    /// conversation starting in the same millisecond may not have been
    /// delivered yet; duplicates are dropped by their idempotency keys).
    pub fn remaining(&self, window: Interval) -> Interval {
        let from = self
            .high_water
            .map_or(window.start_ms, |h| h.clamp(window.start_ms, window.end_ms - 1));
        Interval::new(from, window.end_ms)
    }

    /// The window is delivered.
    pub fn finish(&mut self, window: Interval) {
        self.done_until = Some(window.end_ms);
        self.window = None;
        self.job = None;
        self.high_water = None;
    }
}

impl JsonCheckpoint for Checkpoint {
    const KIND: &'static str = "analytics job";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_computes_what_remains() {
        let w = Interval::new(1000, 5000);
        let mut c = Checkpoint::default();
        c.begin(w);
        assert_eq!(c.remaining(w), w);
        c.high_water = Some(2500);
        c.job = Some(JobProgress {
            id: "j".into(),
            interval: w,
            cursor: Some("c".into()),
            pages: 3,
        });
        assert_eq!(Checkpoint::decode(Some(&c.encode())), c);
        assert_eq!(c.remaining(w), Interval::new(2500, 5000));
        c.finish(w);
        assert_eq!((c.done_until, c.job.is_none()), (Some(5000), true));
        assert_eq!(Checkpoint::decode(Some(b"garbage")), Checkpoint::default());
    }
}

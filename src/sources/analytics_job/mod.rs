//! `kind = "analytics_job"`: conversation details in bulk through the
//! analytics jobs API (genesys-api.md §3).
//!
//! For its interval (or each rolling window), the source submits a job,
//! polls its state with exponential backoff and jitter, then pages the
//! results by cursor with up to `prefetch` pages in flight. Each page is
//! committed with the next cursor and the high-water mark in one ingest
//! submit, so a restart resumes at the saved cursor. A stale cursor or a
//! job that is gone is resubmitted for the rest of the window from the
//! high-water mark; records already delivered are dropped by their
//! idempotency keys (the conversation id, across windows: each
//! conversation is delivered once, in the window where it ended; see
//! [`page`]). A FAILED job is
//! retried `max_job_attempts` times, then the source is marked failed with
//! the job's error message.

pub mod checkpoint;
mod config;
pub mod gap_queue;
mod job_runner;
pub mod jobs_api;
pub mod page;
pub mod page_fetcher;
pub mod telemetry;
pub mod window;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, Progress};
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::supervision::Shutdown;

pub use checkpoint::Checkpoint;
pub use config::{check_topic, start_analytics_job, AnalyticsJobConfig};
pub use gap_queue::GapQueue;
pub use window::{Plan, Schedule};

use crate::genesys::GenesysOrg;
use crate::sources::builder::API_CALL_PATIENCE;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::Delivery;
use crate::store::StoreDb;

/// Default topic of the events.
pub const DEFAULT_TOPIC: &str = "analytics.conversations";

/// How an analytics job source is set up.
#[derive(Debug, Clone)]
pub struct AnalyticsJobSettings {
    /// Source name (also the checkpoint's name).
    pub name: String,
    /// What to fetch.
    pub schedule: Schedule,
    /// Records per results page.
    pub page_size: u32,
    /// Pages fetched and not yet committed, at most.
    pub prefetch: usize,
    /// Delays between state polls (2 s, x1.5, up to 30 s, with jitter).
    pub poll: BackoffPolicy,
    /// Submissions of a job that ends FAILED before the source gives up.
    pub max_job_attempts: u32,
    /// Topic of the events.
    pub topic: String,
    /// Where gap windows come from (`Schedule::Gaps`).
    pub gaps: Option<GapQueue>,
}

impl AnalyticsJobSettings {
    /// The poll schedule the issue asks for, from `initial` up to `max`.
    pub fn poll_policy(initial: Duration, max: Duration) -> BackoffPolicy {
        BackoffPolicy {
            initial,
            multiplier: 1.5,
            max,
            randomization: 0.25,
            full_jitter: false,
        }
    }

    /// An instance holding a window that finishes no API call and commits
    /// no page for this long is stuck. Each poll of the job's state is
    /// progress, so a job that stays RUNNING for an hour is not stuck; the
    /// longest legitimate silence is one API call with its retries, after
    /// the longest wait between polls or between failed attempts.
    pub fn stuck_after(&self) -> Duration {
        API_CALL_PATIENCE + 2 * self.poll.max.max(job_runner::TRANSIENT_MAX_DELAY)
    }
}

/// The source actor: runs the job loop on its own arbiter; stopping the
/// actor drops the loop wherever it is (its last commit is the resume
/// point).
pub struct AnalyticsJob {
    settings: Arc<AnalyticsJobSettings>,
    org: GenesysOrg,
    delivery: Delivery,
    progress: Arc<Progress>,
    db: Option<Arc<StoreDb>>,
}

impl AnalyticsJob {
    /// A source calling `org`, handing pages to `delivery`, resuming from
    /// its checkpoint in `db`, reporting through `progress` (its instance's
    /// handle).
    pub fn new(
        settings: AnalyticsJobSettings,
        org: GenesysOrg,
        delivery: Delivery,
        progress: Arc<Progress>,
        db: Option<Arc<StoreDb>>,
    ) -> Self {
        AnalyticsJob {
            settings: Arc::new(settings),
            org,
            delivery,
            progress,
            db,
        }
    }

    fn component(&self) -> &Arc<Component> {
        &self.delivery.component
    }
}

impl Actor for AnalyticsJob {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(checkpoint) = Checkpoint::load_for_start(
            self.db.as_deref(),
            &self.delivery.ingest,
            &self.settings.name,
            self.component(),
        ) else {
            ctx.stop();
            return;
        };
        let runner = job_runner::JobRunner::new(
            self.settings.clone(),
            jobs_api::JobsApi::new(self.org.client()),
            self.delivery.clone(),
            self.progress.clone(),
            checkpoint,
            crate::sources::checkpoint::checkpointing(self.db.as_deref(), &self.delivery.ingest),
        );
        ctx.spawn(runner.run().into_actor(self));
    }
}

impl Handler<Shutdown> for AnalyticsJob {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stuck_threshold_outlasts_the_longest_wait_between_polls() {
        let mut s = AnalyticsJobSettings::backfill("b".into(), "t".into(), GapQueue::default());
        assert!(s.stuck_after() >= API_CALL_PATIENCE + 2 * job_runner::TRANSIENT_MAX_DELAY);
        let hour = Duration::from_secs(3600);
        s.poll = AnalyticsJobSettings::poll_policy(Duration::from_secs(2), hour);
        assert!(
            s.stuck_after() > API_CALL_PATIENCE + hour,
            "a configured hour between polls"
        );
    }
}

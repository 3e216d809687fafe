//! `kind = "recordings"`: recordings downloaded through recording batch
//! requests (genesys-api.md §4) into files, each announced by an event
//! with its metadata (path, size, SHA-256) once it is durable.
//!
//! Recordings are requested in batches of at most 100; each result URL is
//! downloaded as a stream into a `.part` file ([`recording_file`]) by the
//! same resuming reader as exports: a broken transfer continues with
//! `Range`, an expired URL is replaced by a fresh batch request for that
//! recording. The event and the checkpoint (recordings done) commit
//! together, so a restart downloads only what is left, resuming a
//! half-written file.

pub mod batch_api;
pub mod checkpoint;
mod config;
pub mod recording_file;
mod runner;
pub mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::Progress;
use cxrelay_actors::supervision::Shutdown;

pub use batch_api::RecordingRef;
pub use checkpoint::RecordingsCheckpoint;
pub use config::RecordingsConfig;

use crate::genesys::GenesysOrg;
use crate::sources::builder::API_CALL_PATIENCE;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::Delivery;
use crate::sources::export_download::ranged_body::MAX_RETRY_AFTER;
use crate::store::StoreDb;

/// Default topic of the events.
pub const DEFAULT_TOPIC: &str = "recordings.downloaded";

/// How a recordings source is set up.
#[derive(Debug, Clone)]
pub struct RecordingsSettings {
    /// Source name (also the checkpoint's name).
    pub name: String,
    /// What to download.
    pub recordings: Vec<RecordingRef>,
    /// Where the files go.
    pub output: PathBuf,
    /// Topic of the events.
    pub topic: String,
    /// Failed attempts in a row (no byte received in between) before a
    /// download gives up.
    pub max_resumes: u32,
    /// Longest silence of a transfer before it is resumed.
    pub idle_timeout: Duration,
    /// How long to wait for a batch to complete.
    pub poll: batch_api::PollSettings,
}

impl RecordingsSettings {
    /// An instance with recordings left that finishes no poll or request,
    /// receives no bytes and announces nothing for this long is stuck. A
    /// stalled transfer is cut off by `idle_timeout` and a batch is polled
    /// until it completes, each a unit; the longest legitimate silence is
    /// one API call with its retries plus the longest of the waits between
    /// attempts (a poll interval, a failed batch's backoff, a transfer's
    /// `idle_timeout`, a `Retry-After`). Waits on ingest do not count.
    pub fn stuck_after(&self) -> Duration {
        let renewal_poll = batch_api::PollSettings::default().backoff.max;
        let longest_wait = self
            .idle_timeout
            .max(self.poll.backoff.max)
            .max(renewal_poll)
            .max(runner::BATCH_RETRY_MAX);
        API_CALL_PATIENCE + MAX_RETRY_AFTER + 2 * longest_wait
    }
}

/// The source actor; the downloads run on its arbiter.
pub struct RecordingsSource {
    settings: Arc<RecordingsSettings>,
    org: GenesysOrg,
    delivery: Delivery,
    progress: Arc<Progress>,
    db: Option<Arc<StoreDb>>,
}

impl RecordingsSource {
    /// A source calling `org`, announcing recordings through `delivery`,
    /// resuming from its checkpoint in `db`, reporting through `progress`
    /// (its instance's handle).
    pub fn new(
        settings: RecordingsSettings,
        org: GenesysOrg,
        delivery: Delivery,
        progress: Arc<Progress>,
        db: Option<Arc<StoreDb>>,
    ) -> Self {
        RecordingsSource {
            settings: Arc::new(settings),
            org,
            delivery,
            progress,
            db,
        }
    }
}

impl Actor for RecordingsSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let component = self.delivery.component.clone();
        let Some(checkpoint) = RecordingsCheckpoint::load_for_start(
            self.db.as_deref(),
            &self.delivery.ingest,
            &self.settings.name,
            &component,
        ) else {
            ctx.stop();
            return;
        };
        let runner = runner::RecordingsRunner::new(
            self.settings.clone(),
            self.org.clone(),
            self.delivery.clone(),
            self.progress.clone(),
            checkpoint,
            crate::sources::checkpoint::checkpointing(self.db.as_deref(), &self.delivery.ingest),
        );
        ctx.spawn(runner.run().into_actor(self));
    }
}

impl Handler<Shutdown> for RecordingsSource {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stuck_threshold_outlasts_its_longest_configured_wait() {
        let hour = Duration::from_secs(3600);
        let mut s = RecordingsSettings {
            name: "r".into(),
            recordings: Vec::new(),
            output: PathBuf::from("out"),
            topic: DEFAULT_TOPIC.into(),
            max_resumes: 10,
            idle_timeout: Duration::from_secs(30),
            poll: batch_api::PollSettings::default(),
        };
        let base = s.stuck_after();
        assert!(base >= API_CALL_PATIENCE + MAX_RETRY_AFTER + 2 * runner::BATCH_RETRY_MAX);
        s.poll.backoff.max = hour;
        assert!(s.stuck_after() > API_CALL_PATIENCE + hour, "an hour between polls");
        s.idle_timeout = 2 * hour;
        assert!(
            s.stuck_after() > API_CALL_PATIENCE + 2 * hour,
            "two hours of silence before a resume"
        );
    }
}

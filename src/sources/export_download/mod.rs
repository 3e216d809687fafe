//! `kind = "export"`: a bulk export file (genesys-api.md §5) downloaded as
//! a stream and delivered record by record in constant memory.
//!
//! The body is read chunk by chunk ([`ranged_body`]: broken transfers are
//! resumed with `Range`, expired URLs asked for again) into a bounded
//! channel; a parser thread ([`parser`]) detects JSON array / NDJSON / ZIP
//! / gzip and walks the records (arrays split by [`json_array`]); batches of them are committed to the
//! journal with a checkpoint, so a restart resumes after the last
//! committed record. Malformed records go to dead letters with their
//! position.

pub mod checkpoint;
pub mod chunk_reader;
mod config;
pub mod download_url;
mod export_runner;
pub mod format;
pub mod json_array;
pub mod parser;
pub mod ranged_body;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::Progress;
use cxrelay_actors::supervision::Shutdown;

pub use checkpoint::ExportCheckpoint;
pub use config::ExportConfig;
pub use download_url::UrlOrigin;
pub use format::{Detected, ExportFormat};

use crate::genesys::GenesysOrg;
use crate::sources::builder::API_CALL_PATIENCE;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::Delivery;
use crate::store::StoreDb;

/// How an export source is set up.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Source name (also the checkpoint's name).
    pub name: String,
    /// Where the file is.
    pub origin: UrlOrigin,
    /// Its format (`auto`: detected).
    pub format: ExportFormat,
    /// Topic of the events.
    pub topic: String,
    /// Record field keying the events.
    pub key_field: String,
    /// Record field giving the event time.
    pub time_field: String,
    /// Records per ingest batch.
    pub batch_records: usize,
    /// Failed attempts in a row before the download gives up.
    pub max_resumes: u32,
    /// Longest silence of the transfer before it is resumed.
    pub idle_timeout: Duration,
}

impl ExportSettings {
    /// An instance downloading that receives no bytes, fails no attempt
    /// and commits no batch for this long is stuck. A stalled transfer is
    /// cut off by `idle_timeout` (a failed attempt, so progress); the
    /// longest legitimate silence is a fresh download URL asked of the API
    /// plus the longest `Retry-After` the reader honours. Waits on ingest
    /// do not count.
    pub fn stuck_after(&self) -> Duration {
        API_CALL_PATIENCE + ranged_body::MAX_RETRY_AFTER + 2 * self.idle_timeout
    }
}

/// The source actor; the download runs on its arbiter, the parsing on a
/// thread of its own.
pub struct ExportDownload {
    settings: Arc<ExportSettings>,
    org: Option<GenesysOrg>,
    delivery: Delivery,
    progress: Arc<Progress>,
    db: Option<Arc<StoreDb>>,
}

impl ExportDownload {
    /// A source handing records to `delivery`, resuming from its
    /// checkpoint in `db`, reporting through `progress` (its instance's
    /// handle); `org` resolves download ids and relative URLs.
    pub fn new(
        settings: ExportSettings,
        org: Option<GenesysOrg>,
        delivery: Delivery,
        progress: Arc<Progress>,
        db: Option<Arc<StoreDb>>,
    ) -> Self {
        ExportDownload {
            settings: Arc::new(settings),
            org,
            delivery,
            progress,
            db,
        }
    }
}

impl Actor for ExportDownload {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let component = self.delivery.component.clone();
        let Some(checkpoint) = ExportCheckpoint::load_for_start(
            self.db.as_deref(),
            &self.delivery.ingest,
            &self.settings.name,
            &component,
        ) else {
            ctx.stop();
            return;
        };
        let s = self.settings.clone();
        let org = self.org.clone();
        let body_component = component.clone();
        let make_body = move |pos: u64| {
            let url = download_url::DownloadUrl::new(
                s.origin.clone(),
                org.as_ref().map(|o| o.hosts.api.clone()),
                org.as_ref().map(|o| o.client()),
            );
            ranged_body::RangedBody::new(
                url,
                org.as_ref().map(|o| o.tokens.clone()),
                ranged_body::BodySettings::resuming(s.idle_timeout, s.max_resumes),
                body_component,
                pos,
            )
        };
        let runner = export_runner::ExportRunner::new(
            self.settings.clone(),
            self.delivery.clone(),
            self.progress.clone(),
            checkpoint,
            crate::sources::checkpoint::checkpointing(self.db.as_deref(), &self.delivery.ingest),
        );
        ctx.spawn(runner.run(make_body).into_actor(self));
    }
}

impl Handler<Shutdown> for ExportDownload {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stuck_threshold_outlasts_a_silence_cut_off_by_idle_timeout() {
        let hour = Duration::from_secs(3600);
        let s = ExportSettings {
            name: "e".into(),
            origin: UrlOrigin::Downloads("d".into()),
            format: ExportFormat::Auto,
            topic: "exports.e".into(),
            key_field: "conversationId".into(),
            time_field: "conversationStart".into(),
            batch_records: 500,
            max_resumes: 10,
            idle_timeout: hour,
        };
        assert!(s.stuck_after() > API_CALL_PATIENCE + ranged_body::MAX_RETRY_AFTER + hour);
    }
}

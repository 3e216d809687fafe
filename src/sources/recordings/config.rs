//! `kind = "recordings"`: its keys, their defaults and checks, and how it
//! is built.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::batch_api::PollSettings;
use super::{RecordingRef, RecordingsSettings, RecordingsSource, DEFAULT_TOPIC};
use crate::config::{duration, KeyProblem, KeyProblems, Named};
use crate::sources::analytics_job::check_topic;
use crate::sources::builder::{resolve_path, BuildError, SourceBuilder, SourceContext};

/// A recordings source's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// `conversationId/recordingId` of each recording to download.
    pub recordings: Vec<String>,
    /// The directory the files go to.
    pub output: PathBuf,
    /// Topic of the events.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Failed attempts in a row before a recording is reported unavailable.
    #[serde(default = "default_max_resumes")]
    pub max_resumes: u32,
    /// A transfer silent this long is resumed.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// First delay between polls of a batch until it is complete.
    #[serde(default = "default_poll_interval", with = "duration")]
    pub poll_interval: Duration,
    /// Longest delay between polls.
    #[serde(default = "default_poll_max_interval", with = "duration")]
    pub poll_max_interval: Duration,
}

fn default_topic() -> String {
    DEFAULT_TOPIC.into()
}
fn default_max_resumes() -> u32 {
    10
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_poll_interval() -> Duration {
    PollSettings::default().backoff.initial
}
fn default_poll_max_interval() -> Duration {
    PollSettings::default().backoff.max
}

impl TryFrom<Named<'_, RecordingsConfig>> for RecordingsSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(n: Named<'_, RecordingsConfig>) -> Result<Self, Self::Error> {
        let c = n.config;
        let mut p = KeyProblems::new();
        p.check(
            !c.recordings.is_empty(),
            "recordings",
            "a recordings source needs `recordings` (\"conversationId/recordingId\" of each)",
        );
        let mut seen = HashSet::new();
        let mut recordings = Vec::with_capacity(c.recordings.len());
        for r in &c.recordings {
            match RecordingRef::parse(r) {
                None => p.at("recordings", format!("`{r}` is not \"conversationId/recordingId\"")),
                Some(_) if !seen.insert(r.as_str()) => p.at("recordings", format!("`{r}` is listed twice")),
                Some(parsed) => recordings.push(parsed),
            }
        }
        p.check(c.max_resumes > 0, "max_resumes", "must be at least 1");
        p.check(!c.idle_timeout.is_zero(), "idle_timeout", "must be more than 0");
        p.check(!c.poll_interval.is_zero(), "poll_interval", "must be more than 0");
        p.check(
            c.poll_max_interval >= c.poll_interval,
            "poll_max_interval",
            "must not be less than `poll_interval`",
        );
        check_topic(&mut p, "topic", &c.topic);
        let mut poll = PollSettings::default();
        poll.backoff.initial = c.poll_interval;
        poll.backoff.max = c.poll_max_interval;
        p.finish(|| RecordingsSettings {
            name: n.name.to_string(),
            recordings,
            output: c.output.clone(),
            topic: c.topic.clone(),
            max_resumes: c.max_resumes,
            idle_timeout: c.idle_timeout,
            poll,
        })
    }
}

impl SourceBuilder for RecordingsConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        RecordingsSettings::try_from(Named { name, config: self })
            .err()
            .unwrap_or_default()
    }

    fn needs_genesys(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "{} recording(s) downloaded into {} (resumed up to {} times), an event for each",
            self.recordings.len(),
            self.output.display(),
            self.max_resumes
        )
    }

    fn produces(&self, _name: &str) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn resolve_paths(&mut self, base: &std::path::Path) {
        resolve_path(&mut self.output, base);
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let settings = RecordingsSettings::try_from(Named { name, config: self })?;
            std::fs::create_dir_all(&settings.output)
                .map_err(|e| BuildError::new(format!("cannot create {}: {e}", settings.output.display())))?;
            let org = cx.org()?;
            let component = cx.component(name, "recordings");
            // Resumed downloads are counted as exports count them.
            crate::telemetry::counters_at_zero(
                super::telemetry::METRICS
                    .iter()
                    .chain([&crate::sources::export_download::telemetry::RESUMES_TOTAL]),
                "source",
                name,
            );
            let delivery = cx.delivery(component.clone());
            let db = cx.db.clone();
            let stuck_after = settings.stuck_after();
            cx.supervise_on_own_thread(name, component, stuck_after, move |progress| {
                RecordingsSource::new(settings.clone(), org.clone(), delivery.clone(), progress, db.clone())
            })
            .await;
            Ok(())
        })
    }
}

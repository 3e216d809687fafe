//! `kind = "export"`: its keys, their defaults and checks, and how it is
//! built.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::telemetry::ExportStatus;
use super::{ExportDownload, ExportFormat, ExportSettings, UrlOrigin};
use crate::config::{duration, KeyProblem, KeyProblems, Named};
use crate::sources::analytics_job::check_topic;
use crate::sources::builder::{BuildError, SourceBuilder, SourceContext};

/// An export's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The file's URL (absolute, or a path on the API host), or `download_id`.
    pub url: Option<String>,
    /// A Genesys download id: its time-limited URL is asked for (again
    /// when it expires) through `/api/v2/downloads/{id}`.
    pub download_id: Option<String>,
    /// `auto`, `ndjson`, `json`, `zip` or `gzip`.
    #[serde(default)]
    pub format: ExportFormat,
    /// Record field keying the events.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// Record field giving the event time.
    #[serde(default = "default_time_field")]
    pub time_field: String,
    /// Records per ingest batch.
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// Failed attempts in a row before the download gives up.
    #[serde(default = "default_max_resumes")]
    pub max_resumes: u32,
    /// Longest silence of the transfer before it is resumed.
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// Topic of the events (default `exports.<name>`).
    pub topic: Option<String>,
}

fn default_key_field() -> String {
    "conversationId".into()
}
fn default_time_field() -> String {
    "conversationStart".into()
}
fn default_batch_records() -> usize {
    500
}
fn default_max_resumes() -> u32 {
    10
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

impl TryFrom<Named<'_, ExportConfig>> for ExportSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(n: Named<'_, ExportConfig>) -> Result<Self, Self::Error> {
        let c = n.config;
        let mut p = KeyProblems::new();
        let origin = match (&c.url, &c.download_id) {
            (None, None) => {
                p.at(
                    "url",
                    "an export source needs `url` (the file) or `download_id` (a Genesys download)",
                );
                None
            }
            (Some(_), Some(_)) => {
                p.at("download_id", "set `url` or `download_id`, not both");
                None
            }
            (Some(u), None) => {
                let ok = u.starts_with("http://") || u.starts_with("https://") || u.starts_with('/');
                p.check(
                    ok,
                    "url",
                    format!("`{u}` is neither an http(s):// URL nor a path on the API host"),
                );
                Some(UrlOrigin::Direct(u.clone()))
            }
            (None, Some(id)) => {
                let ok = !id.is_empty() && !id.contains(['/', '?', '#', ' ']);
                p.check(ok, "download_id", format!("`{id}` is not a download id"));
                Some(UrlOrigin::Downloads(id.clone()))
            }
        };
        p.check(
            (1..=100_000).contains(&c.batch_records),
            "batch_records",
            "must be between 1 and 100000",
        );
        p.check(c.max_resumes > 0, "max_resumes", "must be at least 1");
        p.check(!c.idle_timeout.is_zero(), "idle_timeout", "must be more than 0");
        p.check(!c.key_field.is_empty(), "key_field", "must not be empty");
        p.check(!c.time_field.is_empty(), "time_field", "must not be empty");
        if let Some(t) = &c.topic {
            check_topic(&mut p, "topic", t);
        }
        let origin = origin.unwrap_or_else(|| UrlOrigin::Direct(String::new()));
        p.finish(|| ExportSettings {
            name: n.name.to_string(),
            origin,
            format: c.format,
            topic: c.topic.clone().unwrap_or_else(|| format!("exports.{}", n.name)),
            key_field: c.key_field.clone(),
            time_field: c.time_field.clone(),
            batch_records: c.batch_records,
            max_resumes: c.max_resumes,
            idle_timeout: c.idle_timeout,
        })
    }
}

impl SourceBuilder for ExportConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        ExportSettings::try_from(Named { name, config: self })
            .err()
            .unwrap_or_default()
    }

    /// Download ids and paths on the API host go through the API.
    fn needs_genesys(&self) -> bool {
        self.download_id.is_some() || self.url.as_deref().is_some_and(|u| u.starts_with('/'))
    }

    fn describe(&self) -> String {
        let from = match (&self.url, &self.download_id) {
            (_, Some(id)) => format!("the Genesys download {id}"),
            // A presigned URL carries credentials in its query.
            (Some(u), None) => u.split('?').next().unwrap_or_default().to_string(),
            (None, None) => "nowhere".into(),
        };
        let format = match self.format {
            ExportFormat::Auto => "format detected from the file".to_string(),
            other => format!("{other:?} format").to_lowercase(),
        };
        format!(
            "one export file from {from} ({format}), keyed by `{}`, timed by `{}`, {} records per commit, resumed up to {} times",
            self.key_field, self.time_field, self.batch_records, self.max_resumes
        )
    }

    fn produces(&self, name: &str) -> Vec<String> {
        vec![self.topic.clone().unwrap_or_else(|| format!("exports.{name}"))]
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let settings = ExportSettings::try_from(Named { name, config: self })?;
            let component = cx.component(name, "export");
            component.set_status(&ExportStatus::new(&settings));
            crate::telemetry::counters_at_zero(super::telemetry::METRICS, "source", name);
            let org = cx.org.clone();
            let delivery = cx.delivery(component.clone());
            let db = cx.db.clone();
            let stuck_after = settings.stuck_after();
            cx.supervise_on_own_thread(name, component, stuck_after, move |progress| {
                ExportDownload::new(settings.clone(), org.clone(), delivery.clone(), progress, db.clone())
            })
            .await;
            Ok(())
        })
    }
}

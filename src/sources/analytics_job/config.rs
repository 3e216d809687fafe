//! `kind = "analytics_job"`: its keys, their defaults and checks, and how
//! it is built (also as a notifications source's backfill job).

use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::registry::Component;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::telemetry::AnalyticsJobStatus;
use super::{AnalyticsJob, AnalyticsJobSettings, GapQueue, Schedule, DEFAULT_TOPIC};
use crate::config::{duration, KeyProblem, KeyProblems, Named};
use crate::genesys::interval::{parse_iso_ms, Interval};
use crate::sources::builder::{BuildError, SourceBuilder, SourceContext};

/// An analytics job's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsJobConfig {
    /// The interval to fetch once, `start/end` in ISO-8601 (or `every`).
    pub interval: Option<String>,
    /// Rolling windows of this length instead of `interval`.
    #[serde(default, with = "duration::option")]
    pub every: Option<Duration>,
    /// (Rolling) how far behind now a window must end.
    #[serde(default = "default_lag", with = "duration")]
    pub lag: Duration,
    /// (Rolling) where the first window starts (default: the latest
    /// complete window).
    pub start: Option<String>,
    /// (Rolling) longest job when catching up after downtime.
    #[serde(default = "default_catch_up", with = "duration")]
    pub catch_up: Duration,
    /// Records per results page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Result pages fetched and not yet committed, at most.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// First delay between job state polls (then x1.5 with jitter).
    #[serde(default = "default_poll_interval", with = "duration")]
    pub poll_interval: Duration,
    /// Longest delay between job state polls.
    #[serde(default = "default_poll_max_interval", with = "duration")]
    pub poll_max_interval: Duration,
    /// Submissions of a job that ends FAILED before the source is marked failed.
    #[serde(default = "default_max_job_attempts")]
    pub max_job_attempts: u32,
    /// Topic of the events.
    #[serde(default = "default_topic")]
    pub topic: String,
}

fn default_page_size() -> u32 {
    1000
}
fn default_prefetch() -> usize {
    2
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_poll_max_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_max_job_attempts() -> u32 {
    3
}
fn default_topic() -> String {
    DEFAULT_TOPIC.into()
}
fn default_catch_up() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_lag() -> Duration {
    Duration::from_secs(300)
}

/// Refuses a topic with wildcards, empty segments or spaces (a source
/// publishes on one concrete topic).
pub fn check_topic(p: &mut KeyProblems, key: &str, topic: &str) {
    let bad =
        topic.split('.').any(|seg| seg.is_empty() || seg == "*" || seg == ">") || topic.contains(char::is_whitespace);
    if bad {
        p.at(
            key,
            format!("`{topic}` is not a topic (dot-separated words, no wildcards)"),
        );
    }
}

impl TryFrom<Named<'_, AnalyticsJobConfig>> for AnalyticsJobSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(n: Named<'_, AnalyticsJobConfig>) -> Result<Self, Self::Error> {
        let c = n.config;
        let mut p = KeyProblems::new();
        let schedule = match (&c.interval, c.every) {
            (None, None) => {
                p.at(
                    "interval",
                    "an analytics_job source needs `interval` (\"start/end\" in ISO-8601) or `every` (rolling windows)",
                );
                None
            }
            (Some(_), Some(_)) => {
                p.at("every", "set `interval` or `every`, not both");
                None
            }
            (Some(i), None) => match Interval::parse(i) {
                Ok(i) => Some(Schedule::Fixed(i)),
                Err(e) => {
                    p.at("interval", e.to_string());
                    None
                }
            },
            (None, Some(every)) => {
                p.check(every >= Duration::from_secs(1), "every", "must be at least 1s");
                let start = match c.start.as_deref().map(parse_iso_ms).transpose() {
                    Ok(s) => s,
                    Err(e) => {
                        p.at("start", e.to_string());
                        None
                    }
                };
                p.check(
                    c.catch_up >= every && c.catch_up <= default_catch_up(),
                    "catch_up",
                    "must be at least `every` and at most 24h",
                );
                Some(Schedule::Rolling {
                    every,
                    lag: c.lag,
                    start,
                    catch_up_ms: c.catch_up.as_millis() as i64,
                })
            }
        };
        if c.every.is_none() {
            p.check(c.start.is_none(), "start", "applies only to rolling windows (`every`)");
        }
        p.check(
            (1..=1000).contains(&c.page_size),
            "page_size",
            "must be between 1 and 1000",
        );
        p.check((1..=16).contains(&c.prefetch), "prefetch", "must be between 1 and 16");
        p.check(!c.poll_interval.is_zero(), "poll_interval", "must be more than 0");
        p.check(
            c.poll_max_interval >= c.poll_interval,
            "poll_max_interval",
            "must not be less than `poll_interval`",
        );
        p.check(c.max_job_attempts > 0, "max_job_attempts", "must be at least 1");
        check_topic(&mut p, "topic", &c.topic);
        p.finish(|| AnalyticsJobSettings {
            name: n.name.to_string(),
            schedule: schedule.unwrap_or(Schedule::Gaps),
            page_size: c.page_size,
            prefetch: c.prefetch,
            poll: AnalyticsJobSettings::poll_policy(c.poll_interval, c.poll_max_interval),
            max_job_attempts: c.max_job_attempts,
            topic: c.topic.clone(),
            gaps: None,
        })
    }
}

impl AnalyticsJobSettings {
    /// The backfill job of a notifications source: an analytics job whose
    /// windows are the gaps handed to `queue`, with default paging.
    pub fn backfill(name: String, topic: String, queue: GapQueue) -> Self {
        AnalyticsJobSettings {
            name,
            schedule: Schedule::Gaps,
            page_size: default_page_size(),
            prefetch: default_prefetch(),
            poll: AnalyticsJobSettings::poll_policy(default_poll_interval(), default_poll_max_interval()),
            max_job_attempts: default_max_job_attempts(),
            topic,
            gaps: Some(queue),
        }
    }
}

/// Starts an analytics job source under supervision, on its own arbiter.
pub async fn start_analytics_job(
    settings: AnalyticsJobSettings,
    cx: &SourceContext,
    component: Arc<Component>,
) -> Result<(), BuildError> {
    component.set_status(&AnalyticsJobStatus::new(&settings));
    super::telemetry::SourceStarted { source: &settings.name }.emit();
    let org = cx.org()?;
    let delivery = cx.delivery(component.clone());
    let db = cx.db.clone();
    let (name, stuck_after) = (settings.name.clone(), settings.stuck_after());
    cx.supervise_on_own_thread(&name, component, stuck_after, move |progress| {
        AnalyticsJob::new(settings.clone(), org.clone(), delivery.clone(), progress, db.clone())
    })
    .await;
    Ok(())
}

impl SourceBuilder for AnalyticsJobConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        AnalyticsJobSettings::try_from(Named { name, config: self })
            .err()
            .unwrap_or_default()
    }

    fn needs_genesys(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let what = match (&self.interval, self.every) {
            (Some(i), _) => {
                let span = Interval::parse(i)
                    .map(|iv| {
                        let ms = (iv.end_ms - iv.start_ms).max(0) as u64;
                        format!(" ({})", humantime::format_duration(Duration::from_millis(ms)))
                    })
                    .unwrap_or_default();
                format!("the interval {i}{span} once, then idle")
            }
            (None, Some(every)) => {
                let from = match &self.start {
                    Some(s) => format!("from {s}"),
                    None => "from the latest complete window".to_string(),
                };
                format!(
                    "rolling windows of {}, each fetched once at least {} behind now, {from}",
                    humantime::format_duration(every),
                    humantime::format_duration(self.lag)
                )
            }
            (None, None) => "nothing (no `interval` nor `every`)".into(),
        };
        format!(
            "conversation details jobs for {what}; pages of {} records, {} fetched ahead",
            self.page_size, self.prefetch
        )
    }

    fn produces(&self, _name: &str) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let settings = AnalyticsJobSettings::try_from(Named { name, config: self })?;
            start_analytics_job(settings, cx, cx.component(name, "analytics_job")).await
        })
    }
}

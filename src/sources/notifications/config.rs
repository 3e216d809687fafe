//! `kind = "notifications"`: its keys, their defaults and checks, and how
//! it is built (one supervised actor per channel, and a backfill job when
//! asked for).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::channel::ChannelSettings;
use super::{plan, Backfill, GapHandler, NotificationsSettings, NotificationsSource, RecordOnly, SourceParts};
use crate::config::{duration, KeyProblem, KeyProblems, Named};
use crate::sources::analytics_job::{check_topic, start_analytics_job, AnalyticsJobSettings, GapQueue, DEFAULT_TOPIC};
use crate::sources::builder::{template_pattern, BuildError, SourceBuilder, SourceContext};

/// A notifications source's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Topic templates whose `{name}` placeholders take the ids of `ids.name`.
    pub topics: Vec<String>,
    /// Ids substituted into the placeholders of `topics`.
    #[serde(default)]
    pub ids: BTreeMap<String, Vec<String>>,
    /// Topics per channel.
    #[serde(default = "default_max_topics_per_channel")]
    pub max_topics_per_channel: usize,
    /// Channels this source may open.
    #[serde(default = "default_max_channels")]
    pub max_channels: usize,
    /// Time between `{"message":"ping"}`.
    #[serde(default = "default_ping_interval", with = "duration")]
    pub ping_interval: Duration,
    /// No frame for this long means the socket is dead.
    #[serde(default = "default_silence_timeout", with = "duration")]
    pub silence_timeout: Duration,
    /// Ceiling of the first reconnect delay (full jitter).
    #[serde(default = "default_reconnect_base", with = "duration")]
    pub reconnect_base: Duration,
    /// Largest reconnect delay.
    #[serde(default = "default_reconnect_cap", with = "duration")]
    pub reconnect_cap: Duration,
    /// Failed attempts in a row before a channel is marked failed.
    #[serde(default = "default_retry_limit")]
    pub retry_limit: u32,
    /// A socket up this long starts its retries over.
    #[serde(default = "default_retry_reset_after", with = "duration")]
    pub retry_reset_after: Duration,
    /// Largest frame accepted; bigger ones are dead-lettered.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Cover each gap's conversations with an analytics details job.
    #[serde(default)]
    pub backfill: bool,
    /// Topic of the backfilled records.
    #[serde(default = "default_backfill_topic")]
    pub backfill_topic: String,
    /// Renew a channel this long before it expires.
    #[serde(default = "default_renew_before", with = "duration")]
    pub renew_before: Duration,
}

fn default_max_topics_per_channel() -> usize {
    plan::MAX_TOPICS_PER_CHANNEL
}
fn default_max_channels() -> usize {
    plan::MAX_CHANNELS
}
fn default_ping_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_silence_timeout() -> Duration {
    Duration::from_secs(35)
}
fn default_reconnect_base() -> Duration {
    Duration::from_secs(1)
}
fn default_reconnect_cap() -> Duration {
    Duration::from_secs(30)
}
fn default_retry_limit() -> u32 {
    20
}
fn default_retry_reset_after() -> Duration {
    Duration::from_secs(60)
}
fn default_max_frame_bytes() -> usize {
    1 << 20
}
fn default_backfill_topic() -> String {
    DEFAULT_TOPIC.into()
}
fn default_renew_before() -> Duration {
    Duration::from_secs(3600)
}

impl NotificationsConfig {
    /// Topics per channel, within Genesys's limit.
    fn per_channel(&self) -> usize {
        self.max_topics_per_channel.clamp(1, plan::MAX_TOPICS_PER_CHANNEL)
    }
}

impl TryFrom<Named<'_, NotificationsConfig>> for NotificationsSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(n: Named<'_, NotificationsConfig>) -> Result<Self, Self::Error> {
        let c = n.config;
        let mut p = KeyProblems::new();
        p.check(
            (1..=plan::MAX_TOPICS_PER_CHANNEL).contains(&c.max_topics_per_channel),
            "max_topics_per_channel",
            format!(
                "must be 1 to {} (Genesys's limit per channel)",
                plan::MAX_TOPICS_PER_CHANNEL
            ),
        );
        p.check(
            (1..=plan::MAX_CHANNELS).contains(&c.max_channels),
            "max_channels",
            format!("must be 1 to {} (Genesys's limit per OAuth client)", plan::MAX_CHANNELS),
        );
        for (key, d) in [
            ("ping_interval", c.ping_interval),
            ("silence_timeout", c.silence_timeout),
            ("reconnect_base", c.reconnect_base),
            ("reconnect_cap", c.reconnect_cap),
            ("retry_reset_after", c.retry_reset_after),
        ] {
            p.check(!d.is_zero(), key, "must be more than zero");
        }
        p.check(
            c.ping_interval < c.silence_timeout,
            "ping_interval",
            "must be shorter than `silence_timeout` (pongs keep a quiet socket alive)",
        );
        p.check(
            c.reconnect_base <= c.reconnect_cap,
            "reconnect_base",
            "must not be more than `reconnect_cap`",
        );
        p.check(c.max_frame_bytes > 0, "max_frame_bytes", "must be at least 1");
        p.check(c.retry_limit > 0, "retry_limit", "must be at least 1");
        check_topic(&mut p, "backfill_topic", &c.backfill_topic);
        p.check(
            !c.topics.is_empty(),
            "topics",
            "a notifications source needs at least one topic",
        );
        for unused in plan::unused_ids(&c.topics, &c.ids) {
            p.at(&format!("ids.{unused}"), format!("no topic uses `{{{unused}}}`"));
        }
        let channels = match plan::expand(&c.topics, &c.ids)
            .and_then(|topics| plan::pack(topics, c.per_channel(), c.max_channels.clamp(1, plan::MAX_CHANNELS)))
        {
            Ok(channels) => channels,
            Err(e) => {
                if !c.topics.is_empty() {
                    p.at("topics", e.to_string());
                }
                Vec::new()
            }
        };
        p.finish(|| NotificationsSettings {
            channel: ChannelSettings {
                source: Arc::from(n.name),
                ping_interval: c.ping_interval,
                silence_timeout: c.silence_timeout,
                reconnect_base: c.reconnect_base,
                reconnect_cap: c.reconnect_cap,
                retry_limit: c.retry_limit,
                retry_reset_after: c.retry_reset_after,
                max_frame_bytes: c.max_frame_bytes,
                renew_before: c.renew_before,
                connect_timeout: Duration::from_secs(10),
                old_socket_grace: Duration::from_secs(90),
            },
            plan: channels,
            max_topics_per_channel: c.per_channel(),
            max_channels: c.max_channels,
        })
    }
}

impl SourceBuilder for NotificationsConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        NotificationsSettings::try_from(Named { name, config: self })
            .err()
            .unwrap_or_default()
    }

    fn needs_genesys(&self) -> bool {
        true
    }

    fn channels_needed(&self) -> usize {
        plan::expand(&self.topics, &self.ids)
            .map(|t| plan::channels_needed(t.len(), self.per_channel()))
            .unwrap_or(0)
    }

    fn describe(&self) -> String {
        let topics = plan::expand(&self.topics, &self.ids).unwrap_or_default();
        let packing = plan::pack(
            topics.clone(),
            self.per_channel(),
            self.max_channels.clamp(1, plan::MAX_CHANNELS),
        )
        .map(|channels| {
            let sizes: Vec<String> = channels.iter().map(|c| c.len().to_string()).collect();
            format!("{} channel(s) holding {} topics", channels.len(), sizes.join(" + "))
        })
        .unwrap_or_else(|e| format!("no channel: {e}"));
        let backfill = if self.backfill {
            format!("; gaps backfilled by an analytics job as {}", self.backfill_topic)
        } else {
            "; gaps recorded, not backfilled".to_string()
        };
        format!(
            "{} topic(s) from {} template(s) over WebSocket, {packing} (at most {} per channel, {} channels){backfill}",
            topics.len(),
            self.topics.len(),
            self.per_channel(),
            self.max_channels
        )
    }

    /// Every expanded topic, and the backfill's.
    fn produces(&self, _name: &str) -> Vec<String> {
        let mut topics = plan::expand(&self.topics, &self.ids)
            .unwrap_or_else(|_| self.topics.iter().map(|t| template_pattern(t)).collect());
        if self.backfill {
            topics.push(self.backfill_topic.clone());
        }
        topics
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let settings = NotificationsSettings::try_from(Named { name, config: self })?;
            let component = cx.component(name, "notifications");
            let gaps: Arc<dyn GapHandler> = if self.backfill {
                // `<source>/backfill`: an analytics job whose windows are the gaps.
                let queue = GapQueue::default();
                let job = format!("{name}/backfill");
                let settings = AnalyticsJobSettings::backfill(job.clone(), self.backfill_topic.clone(), queue.clone());
                start_analytics_job(settings, cx, cx.component(&job, "backfill")).await?;
                Arc::new(Backfill::new(queue))
            } else {
                Arc::new(RecordOnly)
            };
            let parts = SourceParts {
                org: cx.org()?,
                ingest: cx.ingest.clone(),
                dead_letters: cx.dead_letters.clone(),
                gaps,
                registry: cx.registry.clone(),
                supervisor: cx.supervisor.clone(),
            };
            let source = NotificationsSource::start(name, settings, parts, component).await;
            cx.notifications.insert(source);
            Ok(())
        })
    }
}

//! The `notifications` source: real-time events over Genesys notification
//! channels (WebSocket), genesys-api.md §2.
//!
//! - [`plan`]: topic templates expanded with the configured ids, packed
//!   into as few channels as the limits allow.
//! - [`channel`]: `NotificationChannel`, one supervised actor per channel
//!   (lifecycle, renewal, reconnects, handoff).
//! - [`socket`]: one socket's frames into ingest (group commit), pings,
//!   silence detection; [`frames`] and [`reassembly`] read the frames.
//! - [`reconnect`]: close codes and the backoff; [`gaps`]: what was lost;
//!   [`backfill`]: gaps handed to an analytics job (`backfill = true`).
//! - [`control`]: runtime control messages; [`NotificationsSource`] routes
//!   them for the admin API.

pub mod backfill;
pub mod channel;
pub mod channel_api;
mod config;
pub mod control;
pub mod counters;
pub mod frames;
pub mod gaps;
pub mod group_commit;
pub mod plan;
pub mod reassembly;
pub mod reconnect;
pub mod socket;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentKind, ComponentState};
use cxrelay_actors::supervision::{ChildSpec, RestartPolicy, Supervise, Supervisor};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

pub use backfill::Backfill;
pub use channel::{ChannelParts, ChannelSettings, ChannelSlot, NotificationChannel};
pub use config::NotificationsConfig;
pub use control::{AddTopics, ChannelView, GetChannel, RemoveTopics, RestartChannel, TopicChange};
pub use gaps::{GapHandler, RecordOnly};

use crate::genesys::GenesysOrg;
use crate::ingest::Ingest;
use crate::sources::telemetry::SourceKindStatus;
use crate::store::PutDeadLetters;
use telemetry::NotificationsSourceStatus;

/// The source kind, shown in each channel's status too.
const SOURCE_KIND: &str = "notifications";
/// How long an admin request waits for a channel actor.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// A `notifications` source's settings (see [`NotificationsConfig`]).
#[derive(Debug, Clone)]
pub struct NotificationsSettings {
    /// Shared by its channels.
    pub channel: ChannelSettings,
    /// The topics of each channel.
    pub plan: Vec<Vec<String>>,
    /// Topics per channel.
    pub max_topics_per_channel: usize,
    /// Channels it may open.
    pub max_channels: usize,
}

/// What a source's channels are built with.
#[derive(Clone)]
pub struct SourceParts {
    /// The org.
    pub org: GenesysOrg,
    /// Where events go.
    pub ingest: Ingest,
    /// Where malformed frames go.
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// What happens to gaps.
    pub gaps: Arc<dyn GapHandler>,
    /// Status.
    pub registry: cxrelay_actors::Registry,
    /// Supervision.
    pub supervisor: Addr<Supervisor>,
}

/// A running `notifications` source: its channels, and runtime control
/// routed to them.
pub struct NotificationsSource {
    name: String,
    settings: NotificationsSettings,
    parts: SourceParts,
    component: Arc<Component>,
    slots: RwLock<Vec<Arc<ChannelSlot>>>,
    /// Serialises topic changes (which channel gets what).
    changes: tokio::sync::Mutex<()>,
    /// Threads of the channels, stopped with the source.
    arbiters: Mutex<Vec<Arbiter>>,
}

/// A source's channels, for the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    /// The source.
    pub source: String,
    /// Its channels.
    pub channels: Vec<ChannelView>,
}

impl NotificationsSource {
    /// Starts the source's channels under `supervisor`.
    pub async fn start(
        name: &str,
        settings: NotificationsSettings,
        parts: SourceParts,
        component: Arc<Component>,
    ) -> Arc<NotificationsSource> {
        let source = Arc::new(NotificationsSource {
            name: name.to_string(),
            parts,
            component,
            slots: RwLock::new(Vec::new()),
            changes: tokio::sync::Mutex::new(()),
            arbiters: Mutex::new(Vec::new()),
            settings,
        });
        for topics in source.settings.plan.clone() {
            source.add_channel(topics).await;
        }
        source.describe();
        source.component.set_state(ComponentState::Running);
        tracing::info!(source = %source.name, channels = source.slots.read().len(),
            topics = source.settings.plan.iter().map(Vec::len).sum::<usize>(), "notifications source started");
        source
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) {
        let slots = self.slots.read();
        self.component.set_status(&NotificationsSourceStatus {
            channels: slots.iter().map(|s| s.name.clone()).collect(),
            topics: slots.iter().map(|s| s.topics.lock().len()).sum(),
            max_topics_per_channel: self.settings.max_topics_per_channel,
        });
    }

    async fn add_channel(&self, topics: Vec<String>) -> Arc<ChannelSlot> {
        let index = self.slots.read().len();
        let arbiter = Arbiter::new();
        let slot = Arc::new(ChannelSlot {
            index,
            name: format!("{}/channel-{index}", self.name),
            topics: Mutex::new(topics),
            counters: Default::default(),
            addr: Mutex::new(None),
            arbiter: arbiter.handle(),
        });
        self.arbiters.lock().push(arbiter);
        self.slots.write().push(slot.clone());
        // Each channel is a source of its own to the supervisor, which stops
        // sources by kind at shutdown.
        let component = self.parts.registry.register(&slot.name, ComponentKind::Source, true);
        component.set_status(&SourceKindStatus { kind: SOURCE_KIND });
        let stuck_after = self.settings.channel.stuck_after();
        let parts = ChannelParts {
            settings: Arc::new(self.settings.channel.clone()),
            slot: slot.clone(),
            org: self.parts.org.clone(),
            ingest: self.parts.ingest.clone(),
            dead_letters: self.parts.dead_letters.clone(),
            gaps: self.parts.gaps.clone(),
            component,
        };
        let spec = ChildSpec::new(slot.name.clone(), ComponentKind::Source, move || {
            let parts = parts.clone();
            // Taken here, right after the supervisor made the new instance's
            // handle: the actor is built later, on the channel's thread.
            let progress = parts.component.report_progress(stuck_after);
            NotificationChannel::start_in_arbiter(&parts.slot.arbiter.clone(), move |_| {
                NotificationChannel::new(parts, progress)
            })
        })
        .policy(RestartPolicy::default());
        let _ = self.parts.supervisor.send(Supervise(spec)).await;
        slot
    }

    fn channel_addr(slot: &ChannelSlot) -> Option<Addr<NotificationChannel>> {
        slot.addr.lock().clone().filter(|a| a.connected())
    }

    /// Every channel's view.
    pub async fn view(&self) -> SourceView {
        let slots: Vec<Arc<ChannelSlot>> = self.slots.read().clone();
        let mut channels = Vec::with_capacity(slots.len());
        for slot in slots {
            let view = match Self::channel_addr(&slot) {
                Some(addr) => tokio::time::timeout(ASK_TIMEOUT, addr.send(GetChannel))
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            };
            channels.push(view.unwrap_or_else(|| ChannelView {
                index: slot.index,
                name: slot.name.clone(),
                state: "restarting",
                reason: Some("the channel actor is being restarted".into()),
                channel_id: None,
                topics: slot.topics.lock().len(),
                permitted: 0,
                pending: slot.topics.lock().len(),
                rejected: Vec::new(),
                socket_up: false,
                retry_attempt: 0,
                gaps: serde_json::Value::Null,
                counters: slot.counters.to_json(),
            }));
        }
        SourceView {
            source: self.name.clone(),
            channels,
        }
    }

    /// Adds topics at run time: onto the channels with the most room, and
    /// onto new channels when those are full (up to `max_channels`).
    /// Topics the source already has are left alone.
    pub async fn add_topics(&self, topics: Vec<String>) -> Vec<TopicChange> {
        let _one_at_a_time = self.changes.lock().await;
        let mut out = Vec::new();
        let mut by_slot: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut fresh: Vec<String> = Vec::new();
        let mut room: Vec<(usize, usize)>;
        {
            let slots = self.slots.read();
            let have: std::collections::HashSet<String> = slots.iter().flat_map(|s| s.topics.lock().clone()).collect();
            for t in topics {
                if let Err(e) = plan::check_topic(&t) {
                    out.push(refused(&t, e.to_string()));
                } else if have.contains(&t) || fresh.contains(&t) {
                    out.push(TopicChange {
                        topic: t.clone(),
                        channel: slots
                            .iter()
                            .find(|s| s.topics.lock().contains(&t))
                            .map_or(0, |s| s.index),
                        state: "permitted",
                        reason: Some("already subscribed".into()),
                    });
                } else {
                    fresh.push(t);
                }
            }
            room = slots
                .iter()
                .map(|s| {
                    (
                        s.index,
                        self.settings
                            .max_topics_per_channel
                            .saturating_sub(s.topics.lock().len()),
                    )
                })
                .collect();
        }
        let mut new_channel_topics: Vec<Vec<String>> = Vec::new();
        for t in fresh {
            // The channel with the most room takes it.
            room.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            match room.first_mut() {
                Some((index, left)) if *left > 0 => {
                    *left -= 1;
                    by_slot.entry(*index).or_default().push(t);
                }
                _ => {
                    let open = self.slots.read().len() + new_channel_topics.len();
                    match new_channel_topics.last_mut() {
                        Some(last) if last.len() < self.settings.max_topics_per_channel => last.push(t),
                        _ if open < self.settings.max_channels => new_channel_topics.push(vec![t]),
                        _ => out.push(refused(
                            &t,
                            format!(
                                "no room: {} channels of {} topics are full (max_channels, max_topics_per_channel)",
                                self.settings.max_channels, self.settings.max_topics_per_channel
                            ),
                        )),
                    }
                }
            }
        }
        let slots: Vec<Arc<ChannelSlot>> = self.slots.read().clone();
        for (index, topics) in by_slot {
            let Some(slot) = slots.get(index) else { continue };
            match Self::channel_addr(slot) {
                Some(addr) => match tokio::time::timeout(ASK_TIMEOUT, addr.send(AddTopics(topics.clone()))).await {
                    Ok(Ok(changes)) => out.extend(changes),
                    _ => out.extend(topics.iter().map(|t| failed(t, index, "the channel did not answer"))),
                },
                None => {
                    // Restarting: the new actor reads the slot's topics.
                    slot.topics.lock().extend(topics.iter().cloned());
                    out.extend(topics.iter().map(|t| TopicChange {
                        topic: t.clone(),
                        channel: index,
                        state: "pending",
                        reason: None,
                    }));
                }
            }
        }
        for topics in new_channel_topics {
            let slot = self.add_channel(topics.clone()).await;
            tracing::info!(source = %self.name, channel = %slot.name, topics = topics.len(), "opening another channel for added topics");
            out.extend(topics.into_iter().map(|t| TopicChange {
                topic: t,
                channel: slot.index,
                state: "pending",
                reason: Some("on a new channel, subscribed once it is created".into()),
            }));
        }
        self.describe();
        out
    }

    /// Removes topics at run time (channels stay, even if empty, so that
    /// their room can be reused).
    pub async fn remove_topics(&self, topics: Vec<String>) -> Vec<TopicChange> {
        let _one_at_a_time = self.changes.lock().await;
        let slots: Vec<Arc<ChannelSlot>> = self.slots.read().clone();
        let mut out = Vec::new();
        let mut left: Vec<String> = topics;
        for slot in &slots {
            let mine: Vec<String> = {
                let have = slot.topics.lock();
                left.iter().filter(|t| have.contains(t)).cloned().collect()
            };
            if mine.is_empty() {
                continue;
            }
            left.retain(|t| !mine.contains(t));
            match Self::channel_addr(slot) {
                Some(addr) => match tokio::time::timeout(ASK_TIMEOUT, addr.send(RemoveTopics(mine.clone()))).await {
                    Ok(Ok(changes)) => out.extend(changes),
                    _ => out.extend(mine.iter().map(|t| failed(t, slot.index, "the channel did not answer"))),
                },
                None => {
                    slot.topics.lock().retain(|t| !mine.contains(t));
                    out.extend(mine.iter().map(|t| TopicChange {
                        topic: t.clone(),
                        channel: slot.index,
                        state: "removed",
                        reason: None,
                    }));
                }
            }
        }
        out.extend(left.into_iter().map(|t| TopicChange {
            topic: t,
            channel: 0,
            state: "unknown",
            reason: Some("not a topic of this source".into()),
        }));
        self.describe();
        out
    }

    /// Restarts a failed channel; answers whether it was failed, or `None`
    /// when there is no such channel.
    pub async fn restart_channel(&self, index: usize) -> Option<bool> {
        let slot = self.slots.read().get(index).cloned()?;
        let addr = Self::channel_addr(&slot)?;
        tokio::time::timeout(ASK_TIMEOUT, addr.send(RestartChannel))
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Channels now.
    pub fn channels(&self) -> usize {
        self.slots.read().len()
    }
}

impl Drop for NotificationsSource {
    fn drop(&mut self) {
        for a in self.arbiters.lock().iter() {
            a.stop();
        }
    }
}

fn refused(topic: &str, why: String) -> TopicChange {
    TopicChange {
        topic: topic.to_string(),
        channel: 0,
        state: "refused",
        reason: Some(why),
    }
}

fn failed(topic: &str, channel: usize, why: &str) -> TopicChange {
    TopicChange {
        topic: topic.to_string(),
        channel,
        state: "failed",
        reason: Some(why.to_string()),
    }
}

/// The running notifications sources, by name (for the admin API).
#[derive(Clone, Default)]
pub struct NotificationSources {
    inner: Arc<RwLock<BTreeMap<String, Arc<NotificationsSource>>>>,
}

impl NotificationSources {
    /// Adds a running source.
    pub fn insert(&self, source: Arc<NotificationsSource>) {
        self.inner.write().insert(source.name.clone(), source);
    }

    /// A source by name.
    pub fn get(&self, name: &str) -> Option<Arc<NotificationsSource>> {
        self.inner.read().get(name).cloned()
    }

    /// Every source.
    pub fn all(&self) -> Vec<Arc<NotificationsSource>> {
        self.inner.read().values().cloned().collect()
    }
}

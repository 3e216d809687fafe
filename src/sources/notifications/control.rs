//! Runtime control of a channel, by actor message: add and remove topics
//! without restarting it, look at it, restart it once it has failed.

use actix::prelude::*;
use serde::Serialize;

/// Adds topics to the channel (`POST .../subscriptions`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<TopicChange>")]
pub struct AddTopics(pub Vec<String>);

/// Removes topics from the channel (`PUT .../subscriptions` with the rest).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<TopicChange>")]
pub struct RemoveTopics(pub Vec<String>);

/// Describes the channel.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ChannelView")]
pub struct GetChannel;

/// Starts a failed channel again (its retries start over). Answers whether
/// it was failed.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct RestartChannel;

/// What happened to one topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicChange {
    /// The topic.
    pub topic: String,
    /// The channel's number within its source.
    pub channel: usize,
    /// `permitted`, `rejected`, `pending` (applied when the channel is
    /// connected again), `removed`, `unknown` (not on this source),
    /// `refused` (no room), or `failed` (the call failed; see `reason`).
    pub state: &'static str,
    /// Why, for `rejected`, `refused` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A topic Genesys rejected.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejected {
    /// The topic.
    pub topic: String,
    /// Genesys's reason.
    pub reason: String,
}

/// One channel, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// Its number within its source.
    pub index: usize,
    /// Its component name (`<source>/channel-<n>`).
    pub name: String,
    /// `starting`, `connecting`, `connected`, `retrying`, `paused`,
    /// `failed`, `stopping`.
    pub state: &'static str,
    /// Why, when retrying, paused or failed.
    pub reason: Option<String>,
    /// The Genesys channel id, when there is one.
    pub channel_id: Option<String>,
    /// Topics asked for.
    pub topics: usize,
    /// Topics subscribed.
    pub permitted: usize,
    /// Topics waiting for the channel to connect.
    pub pending: usize,
    /// Topics Genesys rejected.
    pub rejected: Vec<Rejected>,
    /// Whether a socket is up.
    pub socket_up: bool,
    /// Failed attempts in a row.
    pub retry_attempt: u32,
    /// Gaps: count, total and recent.
    pub gaps: serde_json::Value,
    /// Frame, event and malformed counters.
    pub counters: serde_json::Value,
}

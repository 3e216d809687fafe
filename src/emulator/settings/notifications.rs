//! `[emulator.notifications]`: limits, heartbeats and traffic of the
//! notifications API.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[emulator.notifications]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Most topics on one channel; more is a 400 (Genesys: 1000).
    pub max_topics: usize,
    /// Most channels per OAuth client; one more evicts the oldest, idle
    /// channels first (Genesys: 20).
    pub max_channels: usize,
    /// How long a channel lives unless its subscriptions are PUT again.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub channel_lifetime: Duration,
    /// Time between `WebSocket Heartbeat` frames.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub heartbeat_interval: Duration,
    /// Topic patterns (`*` one segment, `>` the rest) this org may not
    /// subscribe to: they come back `Rejected` (missing permissions).
    pub denied_topics: Vec<String>,
    /// Size of the oversized frames sent by the `malformed_frames` fault.
    pub oversized_frame_bytes: usize,
    /// Size of each piece of a fragmented message (`fragment_frames`).
    pub fragment_bytes: usize,
    /// Events remembered per channel for its record of what was sent
    /// (counts go on).
    pub record_limit: usize,
    /// Traffic started as soon as a channel exists (e.g. for `cxrelay
    /// demo`); `POST /_emulator/traffic` replaces it.
    pub traffic: Option<TrafficSettings>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            max_topics: 1000,
            max_channels: 20,
            channel_lifetime: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(30),
            denied_topics: Vec::new(),
            oversized_frame_bytes: 1_200_000,
            fragment_bytes: 1024,
            record_limit: 1_000_000,
            traffic: None,
        }
    }
}

/// A traffic run as asked for (`POST /_emulator/traffic`, or the
/// `[emulator.notifications.traffic]` section).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrafficRequest {
    /// Events per second, over all channels (absent or 0: as fast as the
    /// sockets take them).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Stop after this many events (absent: run until stopped).
    #[serde(default)]
    pub count: Option<u64>,
    /// Only this channel's topics, sent to it alone.
    #[serde(default)]
    pub channel: Option<String>,
    /// Pad every event body to about this many bytes.
    #[serde(default)]
    pub payload_bytes: Option<usize>,
    /// Only these topics (default: every subscribed topic).
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Time of the first lifecycle, ms since the epoch (default: now).
    #[serde(default)]
    pub start_ms: Option<i64>,
    /// Lifecycles interleaved at once (default 8).
    #[serde(default)]
    pub in_flight: Option<usize>,
}

/// The traffic section of the emulator's settings.
pub type TrafficSettings = TrafficRequest;

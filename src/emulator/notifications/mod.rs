//! The notifications API of the emulator (genesys-api.md §2): channels and
//! their subscriptions over REST, one WebSocket per channel, and the
//! traffic that flows on it.
//!
//! - [`channels`]: the channel table and the REST endpoints (limits, expiry,
//!   eviction of the oldest channel, per-topic rejections).
//! - [`channel_socket`]: the WebSocket endpoint (heartbeats, ping/pong,
//!   socket faults).
//! - [`traffic`]: the deterministic event generator and its control
//!   endpoint, with a record of what was sent on each channel.
//!
//! Per-topic rejections are answered as Genesys does for topics an OAuth
//! client lacks permission for: the request succeeds, and each topic in the
//! answer carries `"state":"Permitted"` or `"state":"Rejected"` with a
//! `"rejectionReason"`. Rejected topics are not subscribed.

pub mod channel_socket;
pub mod channels;
mod frames;
pub mod traffic;

use std::time::Duration;

use actix_web::web;
use serde::Deserialize;

pub use channels::{ChannelRecord, Notifications, RecordSnapshot};
pub use traffic::{TrafficControl, TrafficRequest, TrafficSettings, TrafficStatus};

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
    /// Events remembered per channel for [`ChannelRecord`] (counts go on).
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

/// Registers the notification routes (REST, WebSocket, traffic control).
pub fn routes(cfg: &mut web::ServiceConfig) {
    const CHANNELS: &str = "/api/v2/notifications/channels";
    cfg.route(CHANNELS, web::post().to(channels::create))
        .route(CHANNELS, web::get().to(channels::list))
        .route(&format!("{CHANNELS}/{{id}}"), web::head().to(channels::head))
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::get().to(channels::get_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::put().to(channels::put_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::post().to(channels::post_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::delete().to(channels::delete_subscriptions),
        )
        .route("/channels/{id}", web::get().to(channel_socket::connect))
        .route("/_emulator/traffic", web::post().to(traffic::start))
        .route("/_emulator/traffic", web::get().to(traffic::status))
        .route("/_emulator/traffic", web::delete().to(traffic::stop))
        .route(
            "/_emulator/traffic/channels/{id}",
            web::get().to(traffic::channel_record),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_from_toml() {
        let s: crate::emulator::EmulatorSettings = toml::from_str(
            r#"
            seed = 3
            [notifications]
            max_topics = 10
            channel_lifetime = "2h"
            heartbeat_interval = "5s"
            denied_topics = ["v2.analytics.>"]
            traffic = { rate = 20, payload_bytes = 1500 }
            "#,
        )
        .unwrap();
        let n = &s.notifications;
        assert_eq!((n.max_topics, n.max_channels), (10, 20));
        assert_eq!(n.channel_lifetime, Duration::from_secs(7200));
        assert_eq!(n.heartbeat_interval, Duration::from_secs(5));
        let t = n.traffic.as_ref().unwrap();
        assert_eq!((t.rate, t.payload_bytes, t.count), (Some(20.0), Some(1500), None));
        assert!(
            toml::from_str::<NotificationSettings>("max_topic = 1").is_err(),
            "typos are refused"
        );
    }
}

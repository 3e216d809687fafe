//! Everything a notifications source reports: the per-channel metrics, the
//! `/status` details of each channel and of the source. Channels publish
//! once a second (and on every change of state), copying counters their
//! sockets keep in atomics, so the frame path pays no metrics call.

use std::collections::BTreeMap;

use serde::Serialize;

use super::control::Rejected;
use super::counters::ChannelCounters;
use super::frames::{MalformedReason, SystemMessage};

/// Frames read (any kind).
pub const FRAMES_TOTAL: &str = "cxrelay_notification_frames_total";
/// Events handed to ingest.
pub const EVENTS_TOTAL: &str = "cxrelay_notification_events_total";
/// Events ingest accepted.
pub const COMMITTED_TOTAL: &str = "cxrelay_notification_committed_total";
/// Events read and then refused by ingest: lost.
pub const LOST_TOTAL: &str = "cxrelay_notification_lost_total";
/// Heartbeats consumed.
pub const HEARTBEATS_TOTAL: &str = "cxrelay_notification_heartbeats_total";
/// Pongs consumed.
pub const PONGS_TOTAL: &str = "cxrelay_notification_pongs_total";
/// Malformed frames kept in dead letters.
pub const DEAD_LETTERED_TOTAL: &str = "cxrelay_notification_dead_lettered_total";
/// Malformed frames, by reason.
pub const MALFORMED_TOTAL: &str = "cxrelay_notification_malformed_total";
/// Gaps recorded (a socket down, or cxrelay not running).
pub const GAPS_TOTAL: &str = "cxrelay_notification_gaps_total";
/// Seconds of gaps.
pub const GAP_SECONDS_TOTAL: &str = "cxrelay_notification_gap_seconds_total";
/// Sockets that ended, by reason (close code, `abnormal`, `silent`).
pub const DISCONNECTS_TOTAL: &str = "cxrelay_notification_disconnects_total";
/// Whether the channel's socket is up.
pub const SOCKET_UP: &str = "cxrelay_notification_socket_up";
/// Topics by state (`subscribed`, `rejected`).
pub const TOPICS: &str = "cxrelay_notification_topics";
/// `v2.system.*` messages, by `type` (never ingested as events).
pub const SYSTEM_MESSAGES_TOTAL: &str = "cxrelay_notification_system_messages_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    FRAMES_TOTAL,
    EVENTS_TOTAL,
    COMMITTED_TOTAL,
    LOST_TOTAL,
    HEARTBEATS_TOTAL,
    PONGS_TOTAL,
    DEAD_LETTERED_TOTAL,
    MALFORMED_TOTAL,
    GAPS_TOTAL,
    GAP_SECONDS_TOTAL,
    DISCONNECTS_TOTAL,
    SOCKET_UP,
    TOPICS,
    SYSTEM_MESSAGES_TOTAL,
];

/// One channel's metrics at a moment: the counters so far (kept across
/// sockets and restarts, so written as absolute values) and its gauges.
#[derive(Debug)]
pub struct ChannelMetrics<'a> {
    /// The source.
    pub source: &'a str,
    /// The channel's component name.
    pub channel: &'a str,
    /// What its sockets counted.
    pub counters: &'a ChannelCounters,
    /// Gaps so far.
    pub gaps: u64,
    /// Their total length.
    pub gap_ms: u64,
    /// Sockets ended, by reason.
    pub disconnects: &'a BTreeMap<String, u64>,
    /// Whether a socket is up.
    pub socket_up: bool,
    /// Topics subscribed (asked for and not rejected).
    pub subscribed: usize,
    /// Topics Genesys rejected.
    pub rejected: usize,
}

impl ChannelMetrics<'_> {
    /// Writes them into the recorder.
    pub fn emit(self) {
        use metrics::{counter, gauge};
        let (source, channel) = (self.source.to_string(), self.channel.to_string());
        let labels = [("source", source.clone()), ("channel", channel.clone())];
        let k = self.counters;
        for (name, value) in [
            (FRAMES_TOTAL, &k.frames),
            (EVENTS_TOTAL, &k.events),
            (COMMITTED_TOTAL, &k.committed),
            (LOST_TOTAL, &k.lost),
            (HEARTBEATS_TOTAL, &k.heartbeats),
            (PONGS_TOTAL, &k.pongs),
            (DEAD_LETTERED_TOTAL, &k.dead_lettered),
        ] {
            counter!(name, &labels).absolute(ChannelCounters::get(value));
        }
        for r in MalformedReason::ALL {
            counter!(MALFORMED_TOTAL, "source" => source.clone(), "channel" => channel.clone(), "reason" => r.as_str())
                .absolute(ChannelCounters::get(&k.malformed[r.index()]));
        }
        for kind in SystemMessage::ALL {
            counter!(SYSTEM_MESSAGES_TOTAL, "source" => source.clone(), "channel" => channel.clone(), "type" => kind.as_str())
                .absolute(ChannelCounters::get(&k.system[kind.index()]));
        }
        counter!(GAPS_TOTAL, &labels).absolute(self.gaps);
        counter!(GAP_SECONDS_TOTAL, &labels).absolute(self.gap_ms / 1000);
        for (reason, n) in self.disconnects {
            counter!(DISCONNECTS_TOTAL, "source" => source.clone(), "channel" => channel.clone(), "reason" => reason.clone())
                .absolute(*n);
        }
        // Close codes are Genesys's to choose; the two endings cxrelay names
        // itself exist from the start, so an alert sees the first one.
        for reason in ["abnormal", "silent"] {
            if !self.disconnects.contains_key(reason) {
                counter!(DISCONNECTS_TOTAL, "source" => source.clone(), "channel" => channel.clone(), "reason" => reason)
                    .increment(0);
            }
        }
        gauge!(SOCKET_UP, &labels).set(if self.socket_up { 1.0 } else { 0.0 });
        gauge!(TOPICS, "source" => source.clone(), "channel" => channel.clone(), "state" => "subscribed")
            .set(self.subscribed as f64);
        gauge!(TOPICS, "source" => source, "channel" => channel, "state" => "rejected").set(self.rejected as f64);
    }
}

/// A channel's topics by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TopicCounts {
    /// Asked for.
    pub total: usize,
    /// Subscribed.
    pub permitted: usize,
    /// Waiting for the channel to connect.
    pub pending: usize,
    /// Rejected by Genesys.
    pub rejected: usize,
}

/// A channel's socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SocketStatus {
    /// Whether one is up.
    pub up: bool,
    /// Since when (ms since the epoch).
    pub up_since_ms: Option<i64>,
    /// Sockets being let go after a handoff.
    pub retiring: usize,
}

/// A channel's reconnect attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetryStatus {
    /// Failed attempts in a row.
    pub attempt: u32,
    /// Failed attempts in a row before the channel is failed.
    pub limit: u32,
    /// When the next attempt goes (ms from now), if one is scheduled.
    pub next_in_ms: Option<u64>,
    /// The ceiling its delay was drawn under.
    pub ceiling_ms: Option<u64>,
}

/// Most rejected topics listed in a channel's status (all are counted).
pub const REJECTED_SHOWN: usize = 50;

/// A notification channel's `/status` details, published whole once a
/// second and on every change of state.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    /// The source.
    pub source: String,
    /// `starting`, `connecting`, `connected`, `retrying`, `paused`,
    /// `failed`, `stopping`.
    pub state: &'static str,
    /// The Genesys channel id, when there is one.
    pub channel_id: Option<String>,
    /// Topics by state.
    pub topics: TopicCounts,
    /// Rejected topics with Genesys's reasons (the first
    /// [`REJECTED_SHOWN`]).
    pub rejected_topics: Vec<Rejected>,
    /// The socket.
    pub socket: SocketStatus,
    /// Reconnect attempts.
    pub retry: RetryStatus,
    /// Sockets ended, by reason.
    pub reconnects: BTreeMap<String, u64>,
    /// How the last socket ended.
    pub last_close: Option<String>,
    /// When it ended (ms since the epoch), once one has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_close_at_ms: Option<i64>,
    /// Renewals of the channel.
    pub renewals: u64,
    /// Channels created (more than one: it was recreated).
    pub channels_created: u64,
    /// Gaps: count, total and recent.
    pub gaps: serde_json::Value,
    /// What its sockets counted (see [`ChannelCounters`]).
    pub counters: serde_json::Value,
    /// The last ingest or dead-letter error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ingest_error: Option<String>,
}

/// A notifications source's own `/status` details (each channel has its
/// own entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationsSourceStatus {
    /// Its channels' component names.
    pub channels: Vec<String>,
    /// Topics over all its channels.
    pub topics: usize,
    /// Topics one channel takes at most.
    pub max_topics_per_channel: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_channel_status_keeps_the_documented_shape() {
        let status = ChannelStatus {
            source: "queues".into(),
            state: "connected",
            channel_id: None,
            topics: TopicCounts {
                total: 3,
                permitted: 2,
                pending: 0,
                rejected: 1,
            },
            rejected_topics: vec![Rejected {
                topic: "t".into(),
                reason: "no".into(),
            }],
            socket: SocketStatus::default(),
            retry: RetryStatus::default(),
            reconnects: BTreeMap::from([("1006".to_string(), 2)]),
            last_close: None,
            last_close_at_ms: None,
            renewals: 0,
            channels_created: 1,
            gaps: json!({"count": 0}),
            counters: json!({"frames": 0}),
            last_ingest_error: None,
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(
            v["topics"],
            json!({"total": 3, "permitted": 2, "pending": 0, "rejected": 1})
        );
        assert_eq!(v["socket"], json!({"up": false, "up_since_ms": null, "retiring": 0}));
        assert_eq!(
            v["retry"],
            json!({"attempt": 0, "limit": 0, "next_in_ms": null, "ceiling_ms": null})
        );
        assert_eq!(v["reconnects"]["1006"], 2);
        assert!(
            v["channel_id"].is_null() && v["last_close"].is_null(),
            "null until known"
        );
        assert!(v.get("last_close_at_ms").is_none() && v.get("last_ingest_error").is_none());
    }

    #[test]
    fn every_malformed_reason_and_metric_is_named_once() {
        let mut names = METRICS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        assert!(MalformedReason::ALL.iter().all(|r| !r.as_str().is_empty()));
    }
}

//! How the bundled emulator behaves: the `[emulator]` config section, also
//! read by `cxrelay emulator`. Every settings type lives under here, below
//! everything that acts on them.
//!
//! - [`bulk`]: `[emulator.bulk]` (analytics jobs, recordings, exports).
//! - [`notifications`]: `[emulator.notifications]` (channels, traffic).

pub mod bulk;
pub mod notifications;

use std::time::Duration;

use serde::Deserialize;

use super::faults::ScheduledFault;

/// Everything the emulator can be told up front. Faults can also be armed
/// at run time through `POST /_emulator/faults`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorSettings {
    /// Seed of every generated id, record and event: the same seed gives
    /// the same data.
    pub seed: u64,
    /// The OAuth client the emulator accepts.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Lifetime of issued tokens (Genesys: 5 min to 48 h, default 24 h).
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub token_lifetime: Duration,
    /// Requests per minute per OAuth client before 429 (0: no limit).
    pub requests_per_minute: u32,
    /// Artificial delay added to every API answer.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub latency: Duration,
    /// Faults armed at given times after start.
    pub faults: Vec<ScheduledFault>,
    /// Analytics jobs, recordings and export files (`[emulator.bulk]`).
    #[serde(default)]
    pub bulk: bulk::BulkSettings,
    /// The notifications API: limits, heartbeats, traffic.
    #[serde(default)]
    pub notifications: notifications::NotificationSettings,
}

impl Default for EmulatorSettings {
    fn default() -> Self {
        EmulatorSettings {
            seed: 1,
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            token_lifetime: Duration::from_secs(86_399),
            requests_per_minute: 300,
            latency: Duration::ZERO,
            faults: Vec::new(),
            bulk: Default::default(),
            notifications: Default::default(),
        }
    }
}

/// The client id the emulator accepts unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "cxrelay-emulator";
/// Its secret (the emulator is a local test double: this is not a secret).
pub const DEFAULT_CLIENT_SECRET: &str = "cxrelay-emulator-secret";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_section_reads_from_toml() {
        let s: EmulatorSettings = toml::from_str(
            r#"
seed = 7
[bulk]
conversations_per_hour = 10000
cursor_ttl = "30s"
[[bulk.exports]]
id = "history"
format = "json"
container = "zip"
bytes = "1GB"
[[faults]]
kind = "cut_download"
after_bytes = 1000
"#,
        )
        .unwrap();
        assert_eq!(s.bulk.cursor_ttl, Duration::from_secs(30));
        assert_eq!(s.bulk.exports[0].bytes, Some(1_000_000_000));
        assert_eq!(
            (s.bulk.exports[0].format, s.bulk.exports[0].container),
            (bulk::ExportFormat::Json, bulk::Container::Zip)
        );
        assert!(toml::from_str::<EmulatorSettings>("[bulk]\ncursor_tl = \"1s\"\n").is_err());
    }

    #[test]
    fn the_notifications_section_reads_from_toml() {
        let s: EmulatorSettings = toml::from_str(
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
            toml::from_str::<notifications::NotificationSettings>("max_topic = 1").is_err(),
            "typos are refused"
        );
    }
}

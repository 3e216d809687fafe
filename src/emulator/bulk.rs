//! The emulator's bulk side: analytics details jobs and queries,
//! recording batch downloads and export files. Its settings are the
//! `[emulator.bulk]` section; its state is one field of the emulator's
//! world.

use std::time::Duration;

use actix_web::web;
use serde::Deserialize;

use super::analytics::JobBook;
use super::exports::{ExportCatalog, ExportSpec, UrlSigner};
use super::recordings::RecordingBook;
use super::records::Timeline;

/// `[emulator.bulk]`: how the bulk APIs behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSettings {
    /// How densely conversations happen in the data lake: an interval of
    /// H hours holds H x this many (exactly, when 3,600,000,000 divided by
    /// it is a whole number of microseconds, e.g. 10,000/h: 20 h hold
    /// 200,000).
    pub conversations_per_hour: f64,
    /// How far the data lake lags real time (`dataAvailabilityDate` is
    /// now minus this); jobs only see conversations before it.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub data_lag: Duration,
    /// How long a submitted job stays QUEUED...
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub job_queued: Duration,
    /// ...then PENDING, before it is FULFILLED.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub job_pending: Duration,
    /// How long a FULFILLED job's results are kept before it is EXPIRED.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub job_ttl: Duration,
    /// How long a results cursor stays valid after it is handed out.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub cursor_ttl: Duration,
    /// Largest `pageSize` of job results.
    pub max_page_size: u32,
    /// Largest `paging.pageSize` of the synchronous query.
    pub max_query_page_size: u32,
    /// How long a recording batch request stays InProgress.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub recording_delay: Duration,
    /// Size of each downloadable recording.
    pub recording_bytes: u64,
    /// Lifetime of download URLs (recordings and exports).
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub download_ttl: Duration,
    /// Export files served under `/downloads/exports/<id>`.
    pub exports: Vec<ExportSpec>,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            conversations_per_hour: 600.0,
            data_lag: Duration::from_secs(15 * 60),
            job_queued: Duration::from_secs(1),
            job_pending: Duration::from_secs(2),
            job_ttl: Duration::from_secs(3600),
            cursor_ttl: Duration::from_secs(600),
            max_page_size: 1000,
            max_query_page_size: 100,
            recording_delay: Duration::from_secs(1),
            recording_bytes: 256 * 1024,
            download_ttl: Duration::from_secs(15 * 60),
            exports: Vec::new(),
        }
    }
}

/// The bulk side's state.
#[derive(Debug)]
pub struct BulkState {
    /// Where conversations are on the timeline.
    pub timeline: Timeline,
    /// Submitted details jobs and the pages served.
    pub jobs: JobBook,
    /// Recording batch requests.
    pub recordings: RecordingBook,
    /// Export files and their layouts.
    pub exports: ExportCatalog,
    /// Signs and checks download URLs.
    pub urls: UrlSigner,
}

impl BulkState {
    /// A fresh state for `seed` and `settings`.
    pub fn new(seed: u64, settings: &BulkSettings) -> Self {
        BulkState {
            timeline: Timeline::new(seed, settings.conversations_per_hour),
            jobs: JobBook::new(seed),
            recordings: RecordingBook::new(seed),
            exports: ExportCatalog::new(seed, &settings.exports),
            urls: UrlSigner::new(seed, settings.download_ttl),
        }
    }
}

/// Registers the bulk routes (before any catch-all).
pub fn routes(cfg: &mut web::ServiceConfig) {
    super::analytics::routes(cfg);
    super::recordings::routes(cfg);
    super::exports::routes(cfg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::exports::{Container, ExportFormat};
    use crate::emulator::EmulatorSettings;

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
            (ExportFormat::Json, Container::Zip)
        );
        assert!(toml::from_str::<EmulatorSettings>("[bulk]\ncursor_tl = \"1s\"\n").is_err());
    }
}

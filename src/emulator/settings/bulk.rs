//! `[emulator.bulk]`: how the analytics, recording and export APIs behave,
//! and the export files to serve.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// `[emulator.bulk]`: how the bulk APIs behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSettings {
    /// How densely conversations happen in the data lake: an interval of
    /// H hours holds H x this many (exactly, when 3,600,000,000 divided by
    /// it is a whole number of microseconds, e.g. 10,000/h: 20 h hold
    /// 200,000).
    pub conversations_per_hour: f64,
    /// Share of conversations (0 to 1) that last hours, spanning analytics
    /// windows.
    pub long_conversations: f64,
    /// The longest such a conversation talks.
    #[serde(deserialize_with = "crate::wire::duration::deserialize")]
    pub long_conversation_max: Duration,
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
            long_conversations: 0.02,
            long_conversation_max: Duration::from_secs(3 * 3600),
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

/// Record framing of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One record per line.
    #[default]
    Ndjson,
    /// One JSON array.
    Json,
}

/// What an export's records come wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// Nothing.
    #[default]
    None,
    /// One stored ZIP entry.
    Zip,
    /// gzip.
    Gzip,
}

/// One `[[emulator.bulk.exports]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// Its id (the URL path segment).
    pub id: String,
    /// Record framing.
    #[serde(default)]
    pub format: ExportFormat,
    /// Container.
    #[serde(default)]
    pub container: Container,
    /// Number of records...
    pub records: Option<u64>,
    /// ...or the approximate size of the records (e.g. `"2GB"`, `"512MiB"`).
    #[serde(default, deserialize_with = "byte_size")]
    pub bytes: Option<u64>,
    /// Size of each record (at least 768).
    #[serde(default = "default_record_bytes")]
    pub record_bytes: u64,
    /// Every n-th record is malformed (0: none).
    #[serde(default)]
    pub malformed_every: u64,
    /// Name of the entry inside a ZIP (default `<id>.ndjson` or `<id>.json`).
    pub entry_name: Option<String>,
}

fn default_record_bytes() -> u64 {
    1024
}

/// Parses `"2GB"`, `"512MiB"`, `"1000"` or an integer.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a size like \"2GB\""))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    Ok((value * mult) as u64)
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        N(u64),
        S(String),
    }
    match Option::<Size>::deserialize(d)? {
        None => Ok(None),
        Some(Size::N(n)) => Ok(Some(n)),
        Some(Size::S(s)) => parse_byte_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_byte_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_byte_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5 kb").unwrap(), 1500);
        assert!(parse_byte_size("2 parsecs").is_err());
    }
}

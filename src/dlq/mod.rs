//! `cxrelay dlq`: list, show, send back and purge dead letters.
//!
//! Works on the store file directly when no cxrelay runs on it (read-only
//! for what only looks; a store is never created), and through the admin
//! API of the cxrelay that holds it otherwise.

mod offline;
mod online;
pub mod render;

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;

pub use offline::run_offline;
pub use online::run_online;
pub use render::render;

use crate::config::Config;
use crate::store::store_actor::ReplayReport;
use crate::store::{DeadLetter, StoreError};

/// Which dead letters a command is about, besides ids and dates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only those meant for this listener.
    pub listener: Option<String>,
    /// Only those from this source.
    pub source: Option<String>,
}

impl Filter {
    /// Whether `l` passes.
    pub fn accepts(&self, l: &DeadLetter) -> bool {
        self.listener
            .as_ref()
            .is_none_or(|want| l.listener.as_ref() == Some(want))
            && self.source.as_ref().is_none_or(|want| &l.source == want)
    }

    /// Whether it lets everything pass.
    pub fn is_empty(&self) -> bool {
        self.listener.is_none() && self.source.is_none()
    }
}

/// What to do.
#[derive(Debug, Clone)]
pub enum DlqCommand {
    /// List dead letters.
    List {
        /// Only ids above this.
        after: u64,
        /// At most this many.
        limit: usize,
        /// Only these.
        filter: Filter,
    },
    /// One dead letter, whole.
    Show(u64),
    /// Send dead letters back.
    Replay {
        /// These ids (`None`: all that pass the filter).
        ids: Option<Vec<u64>>,
        /// Only these.
        filter: Filter,
        /// Say what would be sent back; change nothing.
        dry_run: bool,
    },
    /// Remove dead letters.
    Purge {
        /// Those recorded before this time (ms since the epoch).
        before_ms: i64,
        /// Only these.
        filter: Filter,
        /// Say what would be removed; change nothing.
        dry_run: bool,
    },
}

/// What a dry run found.
#[derive(Debug, Default, Clone, serde::Serialize, PartialEq, Eq)]
pub struct Plan {
    /// Dead letters that would be sent back or removed, by listener (or
    /// component, for a purge).
    pub by_target: BTreeMap<String, usize>,
    /// Those that could not be sent back, with why.
    pub refused: Vec<(u64, String)>,
}

impl Plan {
    /// Dead letters it counts.
    pub fn total(&self) -> usize {
        self.by_target.values().sum()
    }

    /// Counts `l` as something a replay would send back (or refuse).
    fn replay(&mut self, l: &DeadLetter) {
        if l.to_event().is_some() {
            let target = l.listener.clone().unwrap_or_else(|| "(routed by topic)".into());
            *self.by_target.entry(target).or_default() += 1;
        } else {
            self.refused
                .push((l.id, "not replayable: it does not hold a whole event".into()));
        }
    }

    /// Counts `l` as something a purge would remove.
    fn purge(&mut self, l: &DeadLetter) {
        *self.by_target.entry(l.component.clone()).or_default() += 1;
    }
}

/// What a command produced.
#[derive(Debug)]
pub enum DlqOutput {
    /// Listed dead letters.
    Listed(Vec<DeadLetter>),
    /// One dead letter.
    Shown(Box<DeadLetter>),
    /// Replay report.
    Replayed(ReplayReport),
    /// Purge count.
    Purged(usize),
    /// What a replay would do.
    WouldReplay(Plan),
    /// What a purge would do.
    WouldPurge(Plan),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The store could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The running service's admin API refused or failed.
    #[error("admin API at {url}: {message}")]
    Admin {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// No dead letter has that id.
    #[error("no dead letter {0}")]
    NotFound(u64),
}

/// Parses a point in time: `2024-05-01` (midnight UTC), an RFC 3339 time,
/// or a duration before now (`7d`, `36h`, `90m`, as durations are written
/// in the config), into ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, DlqError> {
    parse_time_at(s, cxrelay_actors::event::now_ms())
}

/// [`parse_time`] with "now" given.
pub fn parse_time_at(s: &str, now_ms: i64) -> Result<i64, DlqError> {
    if let Ok(ago) = humantime::parse_duration(s) {
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(ago));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    time::OffsetDateTime::parse(&full, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            DlqError::Usage(format!(
                "`{s}` is neither a duration before now (7d, 36h), a date (2024-05-01) nor an RFC 3339 time"
            ))
        })
}

/// Runs `cmd` on the store file, or through the admin API when a running
/// cxrelay holds the store (or `url` is given).
pub fn run(config: &Config, url: Option<&str>, cmd: &DlqCommand) -> Result<DlqOutput, DlqError> {
    if url.is_none() {
        match run_offline(&config.service.data_dir, cmd) {
            Err(DlqError::Store(StoreError::Locked(_))) => {}
            other => return other,
        }
    }
    let base = url
        .map(str::to_string)
        .unwrap_or_else(|| format!("http://{}", config.http.listen));
    let token = config
        .http
        .admin_token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|t| !t.is_empty());
    actix::System::new().block_on(async move { run_online(&base, token.as_deref(), cmd).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_times_and_durations_before_now_parse() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
        let now = 10 * 86_400_000;
        assert_eq!(parse_time_at("7d", now).unwrap(), 3 * 86_400_000);
        assert_eq!(parse_time_at("36h", now).unwrap(), now - 36 * 3_600_000);
        let e = parse_time("yesterday").unwrap_err().to_string();
        assert!(e.contains("7d") && e.contains("2024-05-01"), "{e}");
    }

    #[test]
    fn filters_pass_what_they_name() {
        let ev = std::sync::Arc::new(cxrelay_actors::Event::builder("src", "a.b").payload("{}").build());
        let l = DeadLetter::for_event(&ev, "sink:out", Some("out"), "HTTP 500", 1);
        assert!(Filter::default().accepts(&l));
        let by = |listener: Option<&str>, source: Option<&str>| Filter {
            listener: listener.map(str::to_string),
            source: source.map(str::to_string),
        };
        assert!(by(Some("out"), Some("src")).accepts(&l));
        assert!(!by(Some("other"), None).accepts(&l));
        assert!(!by(None, Some("other")).accepts(&l));
    }
}

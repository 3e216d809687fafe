//! `cxrelay dlq`: list, send back and purge dead letters.
//!
//! Works on the store file directly when no cxrelay runs on it; when one
//! does (the store is locked), goes through its admin API instead.

use std::path::Path;

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::config::Config;
use crate::store::dead_letter_table::ReplayPages;
use crate::store::store_actor::ReplayReport;
use crate::store::{DeadLetter, StoreDb, StoreError};

/// What to do.
#[derive(Debug, Clone)]
pub enum DlqCommand {
    /// List dead letters.
    List {
        /// Only ids above this.
        after: u64,
        /// At most this many.
        limit: usize,
    },
    /// Send dead letters back (`None`: all).
    Replay(Option<Vec<u64>>),
    /// Remove dead letters recorded before this time (ms since the epoch).
    Purge(i64),
}

/// What a command produced.
#[derive(Debug)]
pub enum DlqOutput {
    /// Listed dead letters.
    Listed(Vec<DeadLetter>),
    /// Replay report.
    Replayed(ReplayReport),
    /// Purge count.
    Purged(usize),
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
}

/// Parses `2024-05-01T00:00:00Z` or `2024-05-01` (midnight UTC) into ms.
pub fn parse_time(s: &str) -> Result<i64, DlqError> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    time::OffsetDateTime::parse(&full, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|e| DlqError::Usage(format!("`{s}` is not a date (2024-05-01) or RFC 3339 time: {e}")))
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Runs a command on the store file in `data_dir`.
/// Dead letters replayed per commit (memory holds one page).
const REPLAY_PAGE: usize = 1000;

pub fn run_offline(data_dir: &Path, cmd: &DlqCommand) -> Result<DlqOutput, DlqError> {
    let db = StoreDb::open(data_dir, 0, 1)?;
    Ok(match cmd {
        DlqCommand::List { after, limit } => DlqOutput::Listed(db.dead_letters(*after, *limit)?),
        DlqCommand::Replay(ids) => {
            // Journaled with their listener as target, a page at a time:
            // delivered when cxrelay next starts.
            let mut pages = ReplayPages::new(ids.clone(), REPLAY_PAGE);
            let (mut replayed, mut refused) = (0, Vec::new());
            while let Some((mut appends, not)) = pages.next_page(&db)? {
                refused.extend(not);
                replayed += appends.iter().map(|a| a.events.len()).sum::<usize>();
                db.append(&mut appends, cxrelay_actors::event::now_ms())?;
            }
            DlqOutput::Replayed(ReplayReport { replayed, refused })
        }
        DlqCommand::Purge(before) => DlqOutput::Purged(db.purge_dead_letters(*before)?),
    })
}

/// Runs a command through a running service's admin API at `base`.
pub async fn run_online(base: &str, token: Option<&str>, cmd: &DlqCommand) -> Result<DlqOutput, DlqError> {
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let base = base.trim_end_matches('/');
    let admin_error = |message: String| DlqError::Admin {
        url: base.to_string(),
        message,
    };
    let with_auth = |r: awc::ClientRequest| match token {
        Some(t) => r.insert_header(("authorization", format!("Bearer {t}"))),
        None => r,
    };
    let response = match cmd {
        DlqCommand::List { after, limit } => {
            with_auth(client.get(format!("{base}/admin/dead-letters?after={after}&limit={limit}")))
                .send()
                .await
        }
        DlqCommand::Replay(ids) => {
            let body = match ids {
                Some(ids) => json!({ "ids": ids }),
                None => json!({ "all": true }),
            };
            with_auth(client.post(format!("{base}/admin/dead-letters/replay")))
                .send_json(&body)
                .await
        }
        DlqCommand::Purge(before) => {
            with_auth(client.post(format!("{base}/admin/dead-letters/purge")))
                .send_json(&json!({ "before_ms": before }))
                .await
        }
    };
    let mut response = response.map_err(|e| admin_error(e.to_string()))?;
    let body = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| admin_error(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| admin_error(e.to_string()))?;
    if !response.status().is_success() {
        let why = value["error"].as_str().unwrap_or("request failed");
        return Err(admin_error(format!("{}: {why}", response.status())));
    }
    let bad = |e: serde_json::Error| admin_error(format!("unexpected answer: {e}"));
    Ok(match cmd {
        DlqCommand::List { .. } => {
            DlqOutput::Listed(serde_json::from_value(value["dead_letters"].clone()).map_err(bad)?)
        }
        DlqCommand::Replay(_) => DlqOutput::Replayed(ReplayReport {
            replayed: value["replayed"].as_u64().unwrap_or(0) as usize,
            refused: serde_json::from_value(value["refused"].clone()).map_err(bad)?,
        }),
        DlqCommand::Purge(_) => DlqOutput::Purged(value["purged"].as_u64().unwrap_or(0) as usize),
    })
}

/// Runs `cmd` offline, or through the admin API if the store is in use.
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

/// Human-readable rendering of a command's output.
pub fn render(out: &DlqOutput, as_json: bool) -> String {
    match out {
        DlqOutput::Listed(letters) if as_json => serde_json::to_string_pretty(letters).unwrap_or_default(),
        DlqOutput::Listed(letters) => {
            let mut s = format!(
                "{:<6} {:<25} {:<18} {:<14} {:>8}  {:<40} {}\n",
                "ID", "TIME", "COMPONENT", "LISTENER", "ATTEMPTS", "TOPIC", "ERROR"
            );
            for l in letters {
                let error: String = l.error.chars().take(80).collect();
                s.push_str(&format!(
                    "{:<6} {:<25} {:<18} {:<14} {:>8}  {:<40} {}\n",
                    l.id,
                    format_ms(l.at_ms),
                    l.component,
                    l.listener.as_deref().unwrap_or("-"),
                    l.attempts,
                    if l.topic.is_empty() { "-" } else { &l.topic },
                    error
                ));
            }
            s.push_str(&format!("{} dead letter(s)\n", letters.len()));
            s
        }
        DlqOutput::Replayed(r) if as_json => json!({"replayed": r.replayed, "refused": r.refused}).to_string(),
        DlqOutput::Replayed(r) => {
            let mut s = format!("{} dead letter(s) sent back\n", r.replayed);
            for (id, why) in &r.refused {
                s.push_str(&format!("  {id}: {why}\n"));
            }
            s
        }
        DlqOutput::Purged(n) if as_json => json!({ "purged": n }).to_string(),
        DlqOutput::Purged(n) => format!("{n} dead letter(s) purged\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse() {
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_time("yesterday").is_err());
    }
}

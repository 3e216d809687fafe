//! Gaps: Genesys queues nothing while a socket is down, so every
//! disconnect loses the events of its window (from the last frame of the
//! old socket to the first frame of the new one). Each gap is recorded in
//! `/status` and counted in metrics, and handed to a [`GapHandler`].
//!
//! Backfill: the conversation topics of a gap window can be covered from
//! the analytics details API: with `backfill = true` the source is given
//! [`super::Backfill`] in place of [`RecordOnly`]; [`backfill_window`] says
//! which window and which conversations are concerned.

use std::collections::VecDeque;

use serde::Serialize;

/// Gaps kept in `/status` per channel.
const RECENT: usize = 20;

/// A window in which events were lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The last frame of the socket that went away (ms since the epoch).
    pub from_ms: i64,
    /// The first frame of the next socket.
    pub to_ms: i64,
    /// Why the socket went away.
    pub reason: String,
}

impl Gap {
    /// Its length in ms.
    pub fn duration_ms(&self) -> u64 {
        (self.to_ms - self.from_ms).max(0) as u64
    }
}

/// The gaps of one channel: the one open now, recent ones, totals.
#[derive(Debug, Default)]
pub struct GapLog {
    open: Option<(i64, String)>,
    recent: VecDeque<Gap>,
    count: u64,
    total_ms: u64,
}

impl GapLog {
    /// A socket went away after its last frame at `last_frame_ms`. A gap
    /// already open stays open from its first start.
    pub fn open(&mut self, last_frame_ms: i64, reason: String) {
        if self.open.is_none() {
            self.open = Some((last_frame_ms, reason));
        }
    }

    /// Whether a gap is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The first frame of a new socket arrived: the open gap, if any, is
    /// over.
    pub fn close(&mut self, first_frame_ms: i64) -> Option<Gap> {
        let (from_ms, reason) = self.open.take()?;
        let gap = Gap {
            from_ms,
            to_ms: first_frame_ms.max(from_ms),
            reason,
        };
        self.count += 1;
        self.total_ms += gap.duration_ms();
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(gap.clone());
        Some(gap)
    }

    /// Gaps closed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their total length in ms.
    pub fn total_ms(&self) -> u64 {
        self.total_ms
    }

    /// For `/status`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "total_ms": self.total_ms,
            "open_since_ms": self.open.as_ref().map(|o| o.0),
            "recent": self.recent,
        })
    }
}

/// What a backfill of a gap would cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackfillWindow {
    /// The gap as an ISO-8601 interval (`start/end`).
    pub interval: String,
    /// The conversation topics of the channel (what the details API can
    /// cover); other topics (presence, ...) cannot be backfilled.
    pub conversation_topics: usize,
}

/// The backfill window of a gap for a channel with `topics`, when it has
/// conversation topics.
pub fn backfill_window(gap: &Gap, topics: &[String]) -> Option<BackfillWindow> {
    let conversation_topics = topics
        .iter()
        .filter(|t| t.starts_with("v2.detail.events.conversation.") || t.ends_with(".conversations"))
        .count();
    (conversation_topics > 0).then(|| BackfillWindow {
        interval: format!("{}/{}", iso(gap.from_ms), iso(gap.to_ms)),
        conversation_topics,
    })
}

fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// What happens to a gap once it is known (besides status and metrics).
pub trait GapHandler: Send + Sync {
    /// Channel `channel` of source `source` lost the events of `gap`.
    fn gap(&self, source: &str, channel: &str, gap: &Gap, backfill: Option<&BackfillWindow>);
}

/// Logs the gap; nothing is backfilled (the default, `backfill = false`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordOnly;

impl GapHandler for RecordOnly {
    fn gap(&self, source: &str, channel: &str, gap: &Gap, backfill: Option<&BackfillWindow>) {
        tracing::warn!(
            source,
            channel,
            from_ms = gap.from_ms,
            to_ms = gap.to_ms,
            duration_ms = gap.duration_ms(),
            reason = %gap.reason,
            backfill_interval = backfill.map(|b| b.interval.as_str()),
            "events published during this window were lost (Genesys does not queue them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_runs_from_the_last_frame_to_the_next_first_frame() {
        let mut log = GapLog::default();
        assert_eq!(log.close(5), None, "no gap without a disconnect");
        log.open(1_000, "1011".into());
        log.open(1_500, "again".into());
        assert!(log.is_open());
        let g = log.close(3_500).unwrap();
        assert_eq!((g.from_ms, g.to_ms, g.reason.as_str()), (1_000, 3_500, "1011"));
        assert_eq!((log.count(), log.total_ms()), (1, 2_500));
        assert_eq!(log.to_json()["recent"][0]["to_ms"], 3_500);
    }

    #[test]
    fn only_conversation_topics_can_be_backfilled() {
        let g = Gap {
            from_ms: 1_714_572_000_000,
            to_ms: 1_714_572_060_000,
            reason: String::new(),
        };
        assert_eq!(backfill_window(&g, &["v2.users.u.presence".into()]), None);
        let w = backfill_window(
            &g,
            &[
                "v2.routing.queues.q.conversations".into(),
                "v2.detail.events.conversation.c.acd.start".into(),
            ],
        )
        .unwrap();
        assert_eq!(w.interval, "2024-05-01T14:00:00.000Z/2024-05-01T14:01:00.000Z");
        assert_eq!(w.conversation_topics, 2);
    }
}

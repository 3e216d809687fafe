//! Backfill: the conversations of a gap are covered from the analytics
//! details API. Each gap of a channel with conversation topics is handed to
//! the source's backfill job (an analytics job source whose windows are the
//! gaps), which fetches the conversations that started in the window once
//! the data lake has them and delivers them as conversation detail records.

use super::gaps::{BackfillWindow, Gap, GapHandler, RecordOnly};
use crate::genesys::interval::Interval;
use crate::sources::analytics_job::GapQueue;

/// Hands gaps to a backfill job (and logs them like [`RecordOnly`]).
#[derive(Debug, Clone)]
pub struct Backfill {
    queue: GapQueue,
}

impl Backfill {
    /// Gaps go to `queue`, which the backfill job takes them from.
    pub fn new(queue: GapQueue) -> Self {
        Backfill { queue }
    }
}

impl GapHandler for Backfill {
    fn gap(&self, source: &str, channel: &str, gap: &Gap, backfill: Option<&BackfillWindow>) {
        RecordOnly.gap(source, channel, gap, backfill);
        // Presence and other non-conversation topics cannot be backfilled.
        if backfill.is_some() && gap.to_ms > gap.from_ms {
            self.queue.push(Interval::new(gap.from_ms, gap.to_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gaps_of_conversation_topics_are_handed_in() {
        let q = GapQueue::default();
        let b = Backfill::new(q.clone());
        let gap = Gap {
            from_ms: 1_000,
            to_ms: 4_000,
            reason: "1011".into(),
        };
        b.gap("s", "c", &gap, None);
        assert!(q.take().is_empty());
        let window = super::super::gaps::backfill_window(&gap, &["v2.routing.queues.q.conversations".into()]);
        b.gap("s", "c", &gap, window.as_ref());
        assert_eq!(q.take(), [Interval::new(1_000, 4_000)]);
    }
}

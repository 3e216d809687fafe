//! What a channel shows of itself: its view for the admin API, its
//! `/status` details and metrics (see [`telemetry`](super::super::telemetry)),
//! and its progress report to the supervisor, all refreshed on the same
//! one-second tick.

use std::time::Instant;

use super::super::channel_api::TopicState;
use super::super::control::{ChannelView, Rejected};
use super::super::counters::ChannelCounters;
use super::super::telemetry::{ChannelMetrics, ChannelStatus, RetryStatus, SocketStatus, TopicCounts, REJECTED_SHOWN};
use super::NotificationChannel;

impl NotificationChannel {
    /// The channel as the admin API shows it.
    pub(super) fn view(&self) -> ChannelView {
        let mut rejected = Vec::new();
        let (mut permitted, mut pending) = (0, 0);
        for (topic, state) in &self.states {
            match state {
                TopicState::Permitted => permitted += 1,
                TopicState::Pending => pending += 1,
                TopicState::Rejected(reason) => rejected.push(Rejected {
                    topic: topic.clone(),
                    reason: reason.clone(),
                }),
            }
        }
        ChannelView {
            index: self.p.slot.index,
            name: self.p.slot.name.clone(),
            state: self.phase.label(),
            reason: self.phase.reason(),
            channel_id: self.channel.as_ref().map(|c| c.id.clone()),
            topics: self.states.len(),
            permitted,
            pending,
            rejected,
            socket_up: self.socket.is_some(),
            retry_attempt: self.retries.attempts(),
            gaps: self.gaps.to_json(),
            counters: self.p.slot.counters.to_json(),
        }
    }

    /// Copies state and counters into `/status` and `/metrics`, and tells
    /// the supervisor how the channel is doing.
    pub(super) fn publish(&mut self) {
        let v = self.view();
        let rejected_n = v.rejected.len();
        let status = ChannelStatus {
            source: self.p.settings.source.to_string(),
            state: v.state,
            channel_id: v.channel_id,
            topics: TopicCounts {
                total: v.topics,
                permitted: v.permitted,
                pending: v.pending,
                rejected: rejected_n,
            },
            rejected_topics: v.rejected.into_iter().take(REJECTED_SHOWN).collect(),
            socket: SocketStatus {
                up: v.socket_up,
                up_since_ms: self.socket_up_since,
                retiring: self.retiring.len(),
            },
            retry: RetryStatus {
                attempt: v.retry_attempt,
                limit: self.retries.limit(),
                next_in_ms: self
                    .next_retry
                    .map(|(_, at)| at.saturating_duration_since(Instant::now()).as_millis() as u64),
                ceiling_ms: self.next_retry.map(|(n, _)| n.ceiling.as_millis() as u64),
            },
            reconnects: self.reconnects.clone(),
            last_close: self.last_close.clone(),
            last_close_at_ms: self.last_close_at_ms,
            renewals: self.renewals,
            channels_created: self.channels_created,
            gaps: v.gaps,
            counters: v.counters,
            last_ingest_error: self.p.slot.counters.last_error.lock().clone(),
        };
        self.p.component.set_status(&status);
        ChannelMetrics {
            source: &self.p.settings.source,
            channel: &self.p.slot.name,
            counters: &self.p.slot.counters,
            gaps: self.gaps.count(),
            gap_ms: self.gaps.total_ms(),
            disconnects: &self.reconnects,
            socket_up: self.socket.is_some(),
            subscribed: self.states.len() - rejected_n,
            rejected: rejected_n,
        }
        .emit();
        self.report_progress();
    }

    /// Progress, read off the counters the sockets keep (so the frame path
    /// pays nothing more): a frame read, a ping sent or a commit finished
    /// since the last look is a unit. The channel is busy while it is
    /// establishing, or has a socket up: a live socket pings every
    /// `ping_interval` even when no event comes (and when ingest holds it
    /// back), so only a socket task that stopped turning goes silent. With
    /// no socket (waiting to retry, paused, failed) it holds no work.
    fn report_progress(&mut self) {
        let k = &self.p.slot.counters;
        let turned = [&k.frames, &k.pings, &k.committed, &k.duplicates, &k.lost]
            .into_iter()
            .map(ChannelCounters::get)
            .fold(0u64, u64::wrapping_add);
        if turned != self.turned {
            self.turned = turned;
            self.progress.advance();
        }
        self.progress.set_busy(self.busy || self.socket.is_some());
    }
}

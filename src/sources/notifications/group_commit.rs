//! Group commit for a socket: frames batch up while a submit is in flight,
//! a few submits may be in flight at once (the journal commits one while
//! the next waits), and past that the socket is not read: Genesys's TCP
//! stream waits in the kernel, which is the backpressure. Never one commit
//! per frame, and never an unbounded queue.

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use cxrelay_actors::Event;
use serde::{Deserialize, Serialize};

use crate::ingest::{Ingest, IngestBatch, IngestError, Receipt};
use crate::sources::checkpoint::JsonCheckpoint;

/// What a channel commits with its events: when it last heard from
/// Genesys, so that a restart knows where its gap began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCheckpoint {
    /// The last frame read (ms since the epoch); 0: none yet.
    pub last_frame_ms: i64,
}

impl JsonCheckpoint for ChannelCheckpoint {
    const KIND: &'static str = "notification channel";
}

/// A submit that finished.
#[derive(Debug)]
pub struct Submitted {
    /// Events it carried.
    pub events: usize,
    /// What ingest said.
    pub result: Result<Receipt, IngestError>,
}

/// Batches events into ingest submits.
pub struct GroupCommit {
    ingest: Ingest,
    pending: Vec<Event>,
    in_flight: FuturesOrdered<LocalBoxFuture<'static, Submitted>>,
    max_in_flight: usize,
    max_batch: usize,
    /// Where the channel's checkpoint is kept (none: not kept).
    checkpoint_key: Option<String>,
    last_frame_ms: i64,
    checkpointed_ms: i64,
}

impl GroupCommit {
    /// At most `max_in_flight` submits of at most `max_batch` events.
    pub fn new(ingest: Ingest, max_in_flight: usize, max_batch: usize) -> Self {
        GroupCommit {
            ingest,
            pending: Vec::with_capacity(max_batch.min(4096)),
            in_flight: FuturesOrdered::new(),
            max_in_flight: max_in_flight.max(1),
            max_batch: max_batch.max(1),
            checkpoint_key: None,
            last_frame_ms: 0,
            checkpointed_ms: 0,
        }
    }

    /// Commits a [`ChannelCheckpoint`] under `key` with every submit.
    pub fn with_checkpoint(mut self, key: String) -> Self {
        self.checkpoint_key = Some(key);
        self
    }

    /// A frame (of any kind) was read at `at_ms`.
    pub fn saw_frame(&mut self, at_ms: i64) {
        self.last_frame_ms = self.last_frame_ms.max(at_ms);
    }

    /// Commits the checkpoint alone when frames came (heartbeats, say)
    /// since it was last committed and no events are on their way to
    /// carry it: a quiet channel's restart gap then starts at its last
    /// heartbeat, not at its last event hours ago.
    pub fn checkpoint_idle(&mut self) {
        if self.checkpoint_key.is_none()
            || self.last_frame_ms <= self.checkpointed_ms
            || !self.pending.is_empty()
            || !self.in_flight.is_empty()
            || !self.ingest.is_available()
        {
            return;
        }
        self.submit(Vec::new());
    }

    fn submit(&mut self, events: Vec<Event>) {
        let n = events.len();
        // With events still pending after this batch, what was heard last
        // is not durable yet: the batch vouches only for its own last event.
        let heard = match events.last() {
            Some(last) if !self.pending.is_empty() => last.received_at,
            _ => self.last_frame_ms,
        };
        let checkpoint = self.checkpoint_key.clone().map(|key| {
            self.checkpointed_ms = heard;
            (key, ChannelCheckpoint { last_frame_ms: heard }.encode())
        });
        let ingest = self.ingest.clone();
        self.in_flight.push_back(Box::pin(async move {
            let batch = IngestBatch {
                checkpoint,
                ..IngestBatch::of(events)
            };
            let result = ingest.submit(batch).await;
            Submitted { events: n, result }
        }));
    }

    /// Adds an event to the next batch.
    pub fn push(&mut self, ev: Event) {
        self.pending.push(ev);
    }

    /// Events waiting for a submit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Submits in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the socket may be read: there is room in the next batch or
    /// for another submit.
    pub fn can_take_more(&self) -> bool {
        self.pending.len() < self.max_batch || self.in_flight.len() < self.max_in_flight
    }

    /// Hands the pending events over when nothing is in flight (latency),
    /// or when a full batch waits and a submit slot is free (throughput).
    /// Holds them while the store is unavailable (they are retried, not
    /// lost: Genesys would not send them again).
    pub fn submit_ready(&mut self) {
        while !self.pending.is_empty() && self.in_flight.len() < self.max_in_flight {
            let full = self.pending.len() >= self.max_batch;
            if !(self.in_flight.is_empty() || full) || !self.ingest.is_available() {
                return;
            }
            let n = self.pending.len().min(self.max_batch);
            let rest = if n < self.pending.len() {
                self.pending.split_off(n)
            } else {
                Vec::with_capacity(self.max_batch.min(4096))
            };
            let events = std::mem::replace(&mut self.pending, rest);
            self.submit(events);
        }
    }

    /// The next submit to finish, in submit order (pending forever when
    /// none is in flight).
    pub async fn next_committed(&mut self) -> Submitted {
        match self.in_flight.next().await {
            Some(s) => s,
            None => std::future::pending().await,
        }
    }

    /// Submits everything pending and waits for every submit; answers what
    /// finished (a store that stays unavailable leaves events pending).
    pub async fn flush(&mut self) -> Vec<Submitted> {
        let mut done = Vec::new();
        self.checkpoint_idle();
        loop {
            self.submit_ready();
            match self.in_flight.next().await {
                Some(s) => done.push(s),
                None => return done,
            }
        }
    }
}

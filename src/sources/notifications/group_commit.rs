//! Group commit for a socket: frames batch up while a submit is in flight,
//! a few submits may be in flight at once (the journal commits one while
//! the next waits), and past that the socket is not read: Genesys's TCP
//! stream waits in the kernel, which is the backpressure. Never one commit
//! per frame, and never an unbounded queue.

use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use cxrelay_actors::Event;

use crate::ingest::{Ingest, IngestBatch, IngestError, Receipt};

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
        }
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
            let ingest = self.ingest.clone();
            self.in_flight.push_back(Box::pin(async move {
                let result = ingest.submit(IngestBatch::of(events)).await;
                Submitted { events: n, result }
            }));
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
        loop {
            self.submit_ready();
            match self.in_flight.next().await {
                Some(s) => done.push(s),
                None => return done,
            }
        }
    }
}

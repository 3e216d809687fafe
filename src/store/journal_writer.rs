//! The journal writer: group commit, then publish.
//!
//! Appends wait in a bounded channel; the writer takes everything that is
//! waiting (up to a limit), commits it in one durable write, answers every
//! caller (that is the durability point), and waits until the publisher
//! has routed the events, which waits while `block` listeners are full.
//! While it waits, new appends queue in the channel and callers wait:
//! backpressure reaches the sources.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::committer::Committer;
use super::db::Append;
use crate::ingest::IngestError;

/// Most appends merged into one transaction.
const MAX_GROUP: usize = 256;

/// What a committed append reports back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events journaled.
    pub accepted: usize,
    /// Events dropped as idempotent duplicates.
    pub duplicates: usize,
}

/// One append waiting for the group commit.
pub struct AppendRequest {
    /// What to append.
    pub append: Append,
    /// Answered once committed (or refused).
    pub reply: oneshot::Sender<Result<AppendOutcome, IngestError>>,
}

/// The way into the journal writer. Counts appends from the moment they are
/// handed over until their events are routed, so that shutdown can wait for
/// exactly those.
#[derive(Clone)]
pub struct AppendQueue {
    tx: mpsc::Sender<AppendRequest>,
    outstanding: Arc<AtomicUsize>,
    capacity: usize,
}

impl AppendQueue {
    /// A queue of at most `capacity` waiting appends, and its receiving end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<AppendRequest>) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        (
            AppendQueue {
                tx,
                outstanding: Arc::new(AtomicUsize::new(0)),
                capacity,
            },
            rx,
        )
    }

    /// Hands an append over, waiting while the queue is full.
    pub async fn send(&self, req: AppendRequest) -> Result<(), IngestError> {
        let counted = Outstanding::new(&self.outstanding);
        // Waiting is the rare case: its future (several hundred bytes) is
        // boxed there, so the future of every request that hands an append
        // over stays small.
        let sent = match self.tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(req)) => Box::pin(self.tx.send(req)).await.map_err(|_| ()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        };
        sent.map(|()| counted.handed_over())
            .map_err(|()| IngestError::ShuttingDown)
    }

    /// Marks one append as handled by a consumer other than the journal
    /// writer (cluster mode sends dead letters back through the stream).
    pub fn finished(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    /// Appends handed over whose events are not yet routed.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// How many appends may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn outstanding_count(&self) -> Arc<AtomicUsize> {
        self.outstanding.clone()
    }
}

/// An append counted as outstanding until it is handed over. Its count is
/// taken back unless it was: refused by a closed queue, abandoned while
/// the queue was full (a webhook whose ack timeout ran out drops the
/// send), or dropped with its thread before a commit, it will never be
/// routed, and shutdown, which waits for the count to reach zero, would
/// wait for it until its deadline.
pub(super) struct Outstanding {
    count: Option<Arc<AtomicUsize>>,
}

impl Outstanding {
    pub(super) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Outstanding {
            count: Some(count.clone()),
        }
    }

    /// Handed over: whoever commits it takes the count back once the
    /// append's events are routed.
    pub(super) fn handed_over(mut self) {
        self.count = None;
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        if let Some(c) = &self.count {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Commits what sources send through the journal queue, in groups.
pub struct JournalWriter {
    committer: Arc<Committer>,
    rx: Option<mpsc::Receiver<AppendRequest>>,
}

impl JournalWriter {
    /// A writer taking appends from `rx` and committing them with
    /// `committer`.
    pub fn new(committer: Arc<Committer>, rx: mpsc::Receiver<AppendRequest>) -> Self {
        JournalWriter {
            committer,
            rx: Some(rx),
        }
    }
}

impl Actor for JournalWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(rx) = self.rx.take() {
            ctx.add_stream(ReceiverStream::new(rx).ready_chunks(MAX_GROUP));
        }
    }
}

impl StreamHandler<Vec<AppendRequest>> for JournalWriter {
    fn handle(&mut self, requests: Vec<AppendRequest>, ctx: &mut Self::Context) {
        // The next group waits until this one is routed: while a `block`
        // listener is full, appends queue and their senders wait.
        let routed = self.committer.commit(requests, 0);
        ctx.wait(
            async move {
                let _ = routed.await;
            }
            .into_actor(self),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AppendRequest {
        AppendRequest {
            append: Append::default(),
            reply: oneshot::channel().0,
        }
    }

    #[tokio::test]
    async fn a_full_queue_holds_the_sender_until_there_is_room_and_a_closed_one_refuses() {
        let (queue, mut rx) = AppendQueue::new(1);
        queue.send(request()).await.unwrap();
        let waiting = queue.clone();
        let second = tokio::spawn(async move { waiting.send(request()).await });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "a full queue makes the sender wait");
        assert_eq!(queue.outstanding(), 2);
        rx.recv().await.unwrap();
        second.await.unwrap().unwrap();
        rx.recv().await.unwrap();
        drop(rx);
        assert!(matches!(queue.send(request()).await, Err(IngestError::ShuttingDown)));
        assert_eq!(queue.outstanding(), 2, "a refused append is not outstanding");
    }

    #[tokio::test(start_paused = true)]
    async fn an_append_abandoned_while_the_queue_is_full_is_not_outstanding() {
        let (queue, _rx) = AppendQueue::new(1);
        queue.send(request()).await.unwrap();
        // A sender whose caller gives up while it waits for room (a
        // webhook's ack timeout).
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(20), queue.send(request())).await;
        assert!(gave_up.is_err(), "the queue is full: the sender waits");
        assert_eq!(queue.outstanding(), 1, "only the append in the queue is outstanding");
    }
}

//! The journal writer: group commit, then publish.
//!
//! Appends wait in a bounded channel; the writer takes everything that is
//! waiting (up to a limit), commits it in one durable transaction, answers
//! every caller (that is the durability point: a webhook may answer 202),
//! and only then publishes the events to the router, waiting while `block`
//! listeners are full. While it waits, new appends queue in the channel and
//! callers wait: backpressure reaches the sources.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::{Event, Router};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::db::{Append, StoreDb};
use super::routes::Routes;
use super::telemetry::JournalStatus;
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
}

impl AppendQueue {
    /// A queue of at most `capacity` waiting appends, and its receiving end.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<AppendRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            AppendQueue {
                tx,
                outstanding: Arc::new(AtomicUsize::new(0)),
            },
            rx,
        )
    }

    /// Hands an append over, waiting while the queue is full.
    pub async fn send(&self, req: AppendRequest) -> Result<(), IngestError> {
        let mut counted = Counted::new(&self.outstanding);
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
}

/// An append counted as outstanding while it waits for room. Its count is
/// taken back unless it was handed over: refused by a closed queue, or
/// abandoned while the queue was full (a webhook whose ack timeout ran
/// out drops the send), it will never be routed, and shutdown, which
/// waits for the count to reach zero, would wait for it until its
/// deadline.
struct Counted<'a> {
    count: &'a AtomicUsize,
    handed_over: bool,
}

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Counted {
            count,
            handed_over: false,
        }
    }

    /// In the queue: the journal writer takes the count back once the
    /// append's events are routed.
    fn handed_over(&mut self) {
        self.handed_over = true;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Commits appends in groups and publishes them.
pub struct JournalWriter {
    db: Arc<StoreDb>,
    router: Addr<Router>,
    routed_upto: Arc<AtomicU64>,
    component: Arc<Component>,
    rx: Option<mpsc::Receiver<AppendRequest>>,
    outstanding: Arc<AtomicUsize>,
    commits: u64,
    events: u64,
}

impl JournalWriter {
    /// A writer taking appends from `rx`. `routed_upto` is raised to the
    /// highest position whose routing has completed.
    pub fn new(
        db: Arc<StoreDb>,
        router: Addr<Router>,
        routed_upto: Arc<AtomicU64>,
        component: Arc<Component>,
        queue: &AppendQueue,
        rx: mpsc::Receiver<AppendRequest>,
    ) -> Self {
        JournalWriter {
            db,
            router,
            routed_upto,
            component,
            rx: Some(rx),
            outstanding: queue.outstanding.clone(),
            commits: 0,
            events: 0,
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
        let count = requests.len();
        let (mut appends, replies): (Vec<Append>, Vec<_>) = requests.into_iter().map(|r| (r.append, r.reply)).unzip();
        let now = cxrelay_actors::event::now_ms();
        let dups = match self.db.append(&mut appends, now) {
            Ok(d) => d,
            Err(e) => {
                let msg = e.to_string();
                self.component.fail(ComponentState::Paused, msg.clone());
                for r in replies {
                    let _ = r.send(Err(IngestError::StoreUnavailable(msg.clone())));
                }
                self.outstanding.fetch_sub(count, Ordering::AcqRel);
                return;
            }
        };
        self.commits += 1;
        let mut routes = Routes::default();
        let mut max_seq = 0;
        for ((a, reply), d) in appends.into_iter().zip(replies).zip(dups) {
            let accepted = a.events.len() - d;
            self.events += accepted as u64;
            let _ = reply.send(Ok(AppendOutcome {
                accepted,
                duplicates: d,
            }));
            let events: Vec<Arc<Event>> = a.events.into_iter().filter(|e| e.seq != 0).map(Arc::new).collect();
            if let Some(last) = events.last() {
                max_seq = max_seq.max(last.seq);
            }
            routes.push(a.target, events);
        }
        if self.component.state() != ComponentState::Running {
            self.component.set_state(ComponentState::Running);
            self.component.clear_error();
        }
        self.component.set_status(&JournalStatus {
            commits: self.commits,
            journaled_events: self.events,
        });
        let router = self.router.clone();
        let routed = self.routed_upto.clone();
        let outstanding = self.outstanding.clone();
        ctx.wait(
            async move {
                routes.deliver(&router).await;
                routed.fetch_max(max_seq, Ordering::AcqRel);
                outstanding.fetch_sub(count, Ordering::AcqRel);
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

//! Bounded listener queues that really bound memory.
//!
//! actix mailboxes do not: `do_send` ignores capacity and `send` queues even
//! when full. Every listener therefore sits behind one of these queues; the
//! router pushes into it and a pump hands batches to the listener actor,
//! waiting for each to be handled, so at most `capacity` events plus one
//! batch in flight exist per listener.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// What a full queue does with a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The publisher waits until there is room: backpressure reaches the
    /// source, nothing is dropped.
    #[default]
    Block,
    /// The new event is dropped and counted.
    DropNewest,
    /// The oldest queued event is dropped and counted to make room.
    DropOldest,
}

impl WhenFull {
    /// Name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            WhenFull::Block => "block",
            WhenFull::DropNewest => "drop_newest",
            WhenFull::DropOldest => "drop_oldest",
        }
    }

    /// True for policies that never lose an event.
    pub fn is_lossless(self) -> bool {
        matches!(self, WhenFull::Block)
    }
}

/// Why an event did not reach a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `drop_newest` and the queue was full.
    QueueFull,
    /// `drop_oldest` evicted it to make room.
    Evicted,
    /// The listener was gone.
    ListenerGone,
}

impl DropReason {
    /// Label value used in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Evicted => "evicted_oldest",
            DropReason::ListenerGone => "listener_gone",
        }
    }
}

/// Counters of one queue, readable without locking.
#[derive(Debug, Default)]
pub struct QueueStats {
    capacity: usize,
    enqueued: AtomicU64,
    delivered: AtomicU64,
    dropped_full: AtomicU64,
    dropped_evicted: AtomicU64,
    dropped_gone: AtomicU64,
    depth: AtomicUsize,
    high_water: AtomicUsize,
    in_flight: AtomicUsize,
    /// Highest journal position pushed into this queue.
    last_pushed_seq: AtomicU64,
    /// Highest journal position the listener has acknowledged as durable.
    acked_seq: AtomicU64,
    blocked: AtomicBool,
    /// When the oldest event of the batch last taken was queued: the
    /// listener reads it as it takes that batch (one batch is in flight at
    /// a time), so its wait costs a clock read per batch published (per
    /// event pushed alone) and one lock per batch taken.
    batch_queued_at: Mutex<Option<Instant>>,
}

/// A point-in-time copy of [`QueueStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueSnapshot {
    /// Configured bound.
    pub capacity: usize,
    /// Events accepted into the queue.
    pub enqueued: u64,
    /// Events handed to the listener.
    pub delivered: u64,
    /// Dropped because the queue was full (`drop_newest`).
    pub dropped_queue_full: u64,
    /// Evicted to make room (`drop_oldest`).
    pub dropped_evicted_oldest: u64,
    /// Dropped because the listener was gone.
    pub dropped_listener_gone: u64,
    /// Events waiting now.
    pub depth: usize,
    /// Highest depth seen.
    pub high_water: usize,
    /// Events handed to the listener and not yet handled.
    pub in_flight: usize,
    /// Whether a publisher is waiting for room right now.
    pub blocked: bool,
    /// Highest journal position acknowledged by the listener.
    pub acked_seq: u64,
}

impl QueueSnapshot {
    /// Total dropped events for every reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_evicted_oldest + self.dropped_listener_gone
    }
}

impl QueueStats {
    /// Counters for a queue bounded at `capacity` (shareable across
    /// re-subscriptions of the same listener, so positions survive a
    /// restarted listener actor).
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(QueueStats {
            capacity: capacity.max(1),
            ..QueueStats::default()
        })
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            capacity: self.capacity,
            enqueued: self.enqueued.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_evicted_oldest: self.dropped_evicted.load(Ordering::Relaxed),
            dropped_listener_gone: self.dropped_gone.load(Ordering::Relaxed),
            depth: self.depth.load(Ordering::Relaxed),
            high_water: self.high_water.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            acked_seq: self.acked_seq.load(Ordering::Acquire),
        }
    }

    /// Events waiting now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// True when nothing is queued or being handled.
    pub fn is_idle(&self) -> bool {
        self.depth.load(Ordering::Acquire) == 0 && self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Records that the listener made everything up to `seq` durable.
    pub fn ack(&self, seq: u64) {
        self.acked_seq.fetch_max(seq, Ordering::AcqRel);
    }

    /// Highest acknowledged journal position.
    pub fn acked_seq(&self) -> u64 {
        self.acked_seq.load(Ordering::Acquire)
    }

    /// How long the oldest event of the batch last taken from the queue
    /// has waited since it was queued (`None` before any batch). Read by
    /// the listener as it takes the batch, it is that batch's queue wait.
    pub fn batch_waited(&self) -> Option<Duration> {
        self.batch_queued_at.lock().map(|at| at.elapsed())
    }

    /// Highest journal position ever pushed into the queue.
    pub fn last_pushed_seq(&self) -> u64 {
        self.last_pushed_seq.load(Ordering::Acquire)
    }

    pub(crate) fn count_drop(&self, reason: DropReason, n: u64) {
        let c = match reason {
            DropReason::QueueFull => &self.dropped_full,
            DropReason::Evicted => &self.dropped_evicted,
            DropReason::ListenerGone => &self.dropped_gone,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn begin_delivery(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn end_delivery(&self, n: usize, delivered: bool) {
        if delivered {
            self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Something that carries a journal position (for ack bookkeeping).
pub trait Positioned {
    /// The journal position, 0 if none.
    fn position(&self) -> u64;
}

impl Positioned for Arc<crate::Event> {
    fn position(&self) -> u64 {
        self.seq
    }
}

impl Positioned for u64 {
    fn position(&self) -> u64 {
        *self
    }
}

/// Outcome of a non-waiting push.
#[derive(Debug)]
pub enum Pushed<T> {
    /// The item is queued.
    Queued,
    /// The item (or an older one, for `drop_oldest`) was dropped and counted.
    Dropped(DropReason),
    /// `block` policy and no room: the item is handed back.
    Full(T),
}

struct Inner<T> {
    /// Each item with when it was queued.
    items: VecDeque<(T, Instant)>,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue with a full-queue policy.
pub struct ListenerQueue<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    policy: WhenFull,
    not_empty: Notify,
    not_full: Notify,
    stats: Arc<QueueStats>,
}

impl<T: Positioned> ListenerQueue<T> {
    /// A queue of at most `capacity` items (at least 1).
    pub fn new(capacity: usize, policy: WhenFull) -> Self {
        Self::with_stats(policy, QueueStats::new(capacity))
    }

    /// A queue reporting into existing counters (their capacity is the bound).
    pub fn with_stats(policy: WhenFull, stats: Arc<QueueStats>) -> Self {
        let capacity = stats.capacity.max(1);
        ListenerQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(4096)),
                closed: false,
            }),
            capacity,
            policy,
            not_empty: Notify::new(),
            not_full: Notify::new(),
            stats,
        }
    }

    /// The queue's counters.
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    /// The configured policy.
    pub fn policy(&self) -> WhenFull {
        self.policy
    }

    /// The configured bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn accept(&self, inner: &mut Inner<T>, item: T, now: Instant) {
        let seq = item.position();
        let was_empty = inner.items.is_empty();
        inner.items.push_back((item, now));
        let depth = inner.items.len();
        self.stats.depth.store(depth, Ordering::Release);
        self.stats.high_water.fetch_max(depth, Ordering::Relaxed);
        self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
        if seq > 0 {
            self.stats.last_pushed_seq.fetch_max(seq, Ordering::AcqRel);
        }
        if was_empty {
            self.not_empty.notify_one();
        }
    }

    /// Pushes without waiting, applying the policy when full.
    pub fn try_push(&self, item: T) -> Pushed<T> {
        // Read before the lock: the clock is not the queue's to hold up.
        self.try_push_at(item, Instant::now())
    }

    /// [`try_push`](Self::try_push) of an item that arrived at `now`: a
    /// publisher handing over a batch reads the clock once for all of it
    /// (a clock read is a fair part of what routing one event costs).
    pub fn try_push_at(&self, item: T, now: Instant) -> Pushed<T> {
        let mut inner = self.inner.lock();
        if inner.closed {
            self.stats.count_drop(DropReason::ListenerGone, 1);
            return Pushed::Dropped(DropReason::ListenerGone);
        }
        if inner.items.len() < self.capacity {
            self.accept(&mut inner, item, now);
            return Pushed::Queued;
        }
        match self.policy {
            WhenFull::Block => Pushed::Full(item),
            WhenFull::DropNewest => {
                self.stats.count_drop(DropReason::QueueFull, 1);
                Pushed::Dropped(DropReason::QueueFull)
            }
            WhenFull::DropOldest => {
                inner.items.pop_front();
                self.stats.count_drop(DropReason::Evicted, 1);
                self.accept(&mut inner, item, now);
                Pushed::Dropped(DropReason::Evicted)
            }
        }
    }

    /// Pushes, waiting for room under the `block` policy. Returns once the
    /// item is queued or dropped by policy.
    pub async fn push(&self, item: T) {
        let mut item = match self.try_push(item) {
            Pushed::Full(item) => item,
            _ => return,
        };
        self.stats.blocked.store(true, Ordering::Relaxed);
        loop {
            let notified = self.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_push(item) {
                Pushed::Full(back) => item = back,
                _ => break,
            }
            notified.await;
        }
        self.stats.blocked.store(false, Ordering::Relaxed);
    }

    /// Waits for at least one item and takes up to `max`. `None` once the
    /// queue is closed and empty.
    pub async fn pop_batch(&self, max: usize) -> Option<Vec<T>> {
        loop {
            {
                let mut inner = self.inner.lock();
                if !inner.items.is_empty() {
                    let was_full = inner.items.len() >= self.capacity;
                    let n = inner.items.len().min(max.max(1));
                    *self.stats.batch_queued_at.lock() = inner.items.front().map(|(_, at)| *at);
                    let batch: Vec<T> = inner.items.drain(..n).map(|(item, _)| item).collect();
                    self.stats.depth.store(inner.items.len(), Ordering::Release);
                    // Counted in flight before the depth drop becomes visible
                    // to anyone checking for idleness.
                    self.stats.begin_delivery(batch.len());
                    drop(inner);
                    if was_full {
                        self.not_full.notify_waiters();
                    }
                    return Some(batch);
                }
                if inner.closed {
                    return None;
                }
            }
            self.not_empty.notified().await;
        }
    }

    /// Closes the queue: waiting and future pushes drop (counted as
    /// `listener_gone`), the consumer drains what is left, then gets `None`.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.not_empty.notify_one();
        self.not_full.notify_waiters();
    }

    /// Closes the queue and discards what it holds, counting the items as
    /// dropped because the listener is gone.
    pub fn close_and_discard(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.closed = true;
        let n = inner.items.len();
        inner.items.clear();
        self.stats.depth.store(0, Ordering::Release);
        drop(inner);
        self.stats.count_drop(DropReason::ListenerGone, n as u64);
        self.not_empty.notify_one();
        self.not_full.notify_waiters();
        n
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_newest_keeps_the_oldest_and_counts() {
        let q = ListenerQueue::<u64>::new(3, WhenFull::DropNewest);
        for i in 1..=5 {
            q.try_push(i);
        }
        let s = q.stats().snapshot();
        assert_eq!((s.depth, s.dropped_queue_full, s.high_water), (3, 2, 3));
        let batch = futures_util::FutureExt::now_or_never(q.pop_batch(10)).unwrap().unwrap();
        assert_eq!(batch, vec![1, 2, 3]);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let q = ListenerQueue::<u64>::new(3, WhenFull::DropOldest);
        for i in 1..=5 {
            q.try_push(i);
        }
        assert_eq!(q.stats().snapshot().dropped_evicted_oldest, 2);
        let batch = futures_util::FutureExt::now_or_never(q.pop_batch(10)).unwrap().unwrap();
        assert_eq!(batch, vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn block_waits_for_room_and_loses_nothing() {
        let q = Arc::new(ListenerQueue::<u64>::new(2, WhenFull::Block));
        q.push(1).await;
        q.push(2).await;
        let q2 = q.clone();
        let producer = tokio::spawn(async move {
            for i in 3..=100 {
                q2.push(i).await;
            }
            q2.close();
        });
        let mut got = Vec::new();
        while let Some(batch) = q.pop_batch(7).await {
            assert!(batch.len() <= 2);
            q.stats().end_delivery(batch.len(), true);
            got.extend(batch);
        }
        producer.await.unwrap();
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
        let s = q.stats().snapshot();
        assert_eq!((s.dropped(), s.high_water, s.delivered), (0, 2, 100));
    }

    #[tokio::test]
    async fn close_releases_a_blocked_publisher() {
        let q = Arc::new(ListenerQueue::<u64>::new(1, WhenFull::Block));
        q.push(1).await;
        let q2 = q.clone();
        let blocked = tokio::spawn(async move { q2.push(2).await });
        tokio::task::yield_now().await;
        assert_eq!(q.close_and_discard(), 1);
        blocked.await.unwrap();
        assert_eq!(q.stats().snapshot().dropped_listener_gone, 2);
        assert!(q.pop_batch(1).await.is_none());
    }

    #[test]
    fn a_batch_reports_how_long_its_oldest_event_waited() {
        let q = ListenerQueue::<u64>::new(8, WhenFull::Block);
        assert_eq!(q.stats().batch_waited(), None, "no batch taken yet");
        q.try_push(1);
        // Time has to pass for a wait to be measured (not synchronisation).
        std::thread::sleep(Duration::from_millis(30));
        q.try_push(2);
        let batch = futures_util::FutureExt::now_or_never(q.pop_batch(10)).unwrap().unwrap();
        assert_eq!(batch, vec![1, 2]);
        let waited = q.stats().batch_waited().unwrap();
        assert!(
            waited >= Duration::from_millis(30),
            "the oldest event's wait: {waited:?}"
        );
    }

    #[test]
    fn tracks_positions_for_acknowledgement() {
        let q = ListenerQueue::<u64>::new(8, WhenFull::Block);
        q.try_push(5);
        q.try_push(9);
        assert_eq!(q.stats().last_pushed_seq(), 9);
        q.stats().ack(5);
        q.stats().ack(3);
        assert_eq!(q.stats().acked_seq(), 5);
    }
}

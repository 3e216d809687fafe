use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;

use crate::event::Event;
use crate::queue::{QueueSnapshot, QueueStats, WhenFull};
use crate::topic::PatternError;

/// Identifies one subscription for the lifetime of the router.
pub type ListenerId = u64;

/// Lets a listener acknowledge events as durably handled.
///
/// Acknowledging position `p` says: every event up to `p` that this
/// listener was given is safe. Positions are the events' `seq`.
#[derive(Debug, Clone)]
pub struct AckHandle(pub(crate) Arc<QueueStats>);

impl AckHandle {
    /// Acknowledges into `stats` (for listeners driven without a router,
    /// such as tests).
    pub fn new(stats: Arc<QueueStats>) -> Self {
        AckHandle(stats)
    }

    /// Acknowledges everything up to `seq`.
    pub fn ack_upto(&self, seq: u64) {
        self.0.ack(seq);
    }

    /// Acknowledges a batch: its highest position.
    pub fn ack_batch(&self, events: &[Arc<Event>]) {
        if let Some(max) = events.iter().map(|e| e.seq).max() {
            self.0.ack(max);
        }
    }
}

/// A batch of events for a listener actor. The router waits for the handler
/// to return before sending the next batch, which is what bounds memory.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Which subscription these events came through.
    pub listener: ListenerId,
    /// The events, in publish order.
    pub events: Vec<Arc<Event>>,
    /// Acknowledges durable handling.
    pub ack: AckHandle,
}

impl Deliver {
    /// How long the oldest event of this batch waited in the listener's
    /// queue, measured now: called as a listener takes the batch, it is
    /// the batch's queue wait (`None` when the batch did not come through
    /// a queue).
    pub fn waited(&self) -> Option<Duration> {
        self.ack.0.batch_waited()
    }
}

/// Registers a listener.
#[derive(Message)]
#[rtype(result = "Result<Subscription, PatternError>")]
pub struct Subscribe {
    /// Name shown in status and metrics.
    pub name: String,
    /// Topic patterns (NATS syntax).
    pub patterns: Vec<String>,
    /// Where batches go.
    pub recipient: Recipient<Deliver>,
    /// Queue bound in events.
    pub capacity: usize,
    /// Policy when the queue is full.
    pub when_full: WhenFull,
    /// Largest batch handed over at once.
    pub batch_max: usize,
    /// Keep the queue when the listener's actor dies, and hand it (with the
    /// batch that was in flight) to the next actor that subscribes under the
    /// same name. For listeners that must not lose events when their actor
    /// is restarted; the default prunes dead listeners.
    pub keep_when_gone: bool,
    /// Reuse these counters (and acknowledged position) instead of fresh
    /// ones; their capacity is the queue bound.
    pub stats: Option<Arc<QueueStats>>,
}

impl Subscribe {
    /// A subscription with defaults: capacity 1024, `block`, batches of 256.
    pub fn new(name: impl Into<String>, patterns: Vec<String>, recipient: Recipient<Deliver>) -> Self {
        Subscribe {
            name: name.into(),
            patterns,
            recipient,
            capacity: 1024,
            when_full: WhenFull::Block,
            batch_max: 256,
            keep_when_gone: false,
            stats: None,
        }
    }

    /// Sets the queue bound.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the full-queue policy.
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }

    /// Sets the largest batch.
    pub fn batch_max(mut self, batch_max: usize) -> Self {
        self.batch_max = batch_max;
        self
    }

    /// Keeps the queue for a replacement actor when this one dies.
    pub fn keep_when_gone(mut self, keep: bool) -> Self {
        self.keep_when_gone = keep;
        self
    }

    /// Reuses existing counters.
    pub fn with_stats(mut self, stats: Arc<QueueStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

/// Names a listener: by id, or by the name it subscribed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerRef {
    /// By id.
    Id(ListenerId),
    /// By name.
    Name(String),
}

impl From<ListenerId> for ListenerRef {
    fn from(id: ListenerId) -> Self {
        ListenerRef::Id(id)
    }
}

impl From<&str> for ListenerRef {
    fn from(name: &str) -> Self {
        ListenerRef::Name(name.to_string())
    }
}

impl From<String> for ListenerRef {
    fn from(name: String) -> Self {
        ListenerRef::Name(name)
    }
}

/// A live subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Its id.
    pub id: ListenerId,
    /// Its queue counters (also the acknowledged position).
    pub stats: Arc<QueueStats>,
}

/// Removes a listener; what is queued is still handed to it, then its pump
/// ends. Answers whether the listener existed.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Unsubscribe(pub ListenerId);

/// Reports that a listener's actor is gone (sent by its pump).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ListenerGone(pub ListenerId);

/// Publishes events to every listener whose pattern matches. The reply
/// arrives once every event is queued or dropped by policy: with `block`
/// listeners that are full, the publisher waits.
#[derive(Message)]
#[rtype(result = "PublishOutcome")]
pub struct Publish {
    /// Events in order.
    pub events: Vec<Arc<Event>>,
}

/// Publishes events to one listener only, regardless of its patterns
/// (replay after a restart, dead letters sent back). Answers whether the
/// listener exists.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct PublishTo {
    /// The listener.
    pub listener: ListenerRef,
    /// Events in order.
    pub events: Vec<Arc<Event>>,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Events that matched at least one listener.
    pub routed: usize,
    /// Events no listener wanted (counted, not an error).
    pub unrouted: usize,
}

/// Lists subscriptions.
#[derive(Message)]
#[rtype(result = "Vec<ListenerInfo>")]
pub struct ListListeners;

/// One subscription, for status.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerInfo {
    /// Id.
    pub id: ListenerId,
    /// Name.
    pub name: String,
    /// Patterns.
    pub patterns: Vec<String>,
    /// Full-queue policy.
    pub when_full: WhenFull,
    /// True while its actor is gone and the queue waits for a replacement.
    pub orphaned: bool,
    /// Queue counters.
    pub queue: QueueSnapshot,
}

/// Waits until every listener queue is empty and nothing is in flight, or
/// the timeout passes. Answers whether everything drained.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain {
    /// Longest wait.
    pub timeout: Duration,
}
